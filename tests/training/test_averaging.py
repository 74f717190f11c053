"""WiSE-FT weight averaging (training/averaging.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embedloop.errors import ConfigError
from embedloop.training.averaging import (
    GRID,
    SOUP_FREE_PASSES,
    TRAIN_PASSES_PER_TEXT,
    average_into,
    choose_alpha,
    interpolate,
    running_mean,
    snapshot,
    soup_draws,
)


def tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    model.register_buffer("positions", torch.arange(3))  # an integer buffer: never averaged
    return model


def test_running_mean_of_three_models_is_their_uniform_average():
    states = [snapshot(tiny(seed)) for seed in (0, 1, 2)]
    mean = None
    for count, state in enumerate(states, start=1):
        mean = running_mean(mean, state, count)
    assert mean is not None
    for key, value in mean.items():
        if value.is_floating_point():
            assert torch.allclose(value, sum(s[key] for s in states) / 3, atol=1e-6), key
    assert torch.equal(mean["positions"], torch.arange(3))
    assert mean["0.weight"] is not states[0]["0.weight"]  # the first set is copied, never aliased


@pytest.mark.parametrize(
    ("rows", "items", "cap", "expected"),
    [
        (170, 5183, 2.0, 3),  # SciFact, one round: training is 0.4 x the re-embedding, three draws fit in 2x
        (339, 3633, 2.0, 2),  # NFCorpus seed 13: training 1.3 x the re-embedding, a third draw would pass 2x
        (296, 3633, 2.0, 2),  # NFCorpus seed 1: the fewest rows of the three seeds, still two
        (193, 5183, 2.0, 3),  # SciFact seed 1: the most rows of its three seeds, still three
        (5000, 100, 2.0, 2),  # training dominates: two draws at most double a cycle
        (339, 3633, 1.0, 1),  # cap 1: no draw beyond the first
        (339, 3633, 3.0, 3),  # a wider cap lets all three through
        (339, 3633, 0.0, 3),  # 0: no limit
        (339, 0, 2.0, 3),  # catalog size unknown: no limit
        (40, 20, 2.0, 3),  # a tiny cycle: the extra draws cost seconds, always trained
    ],
)
def test_soup_draws_keep_the_cycle_within_the_cost_cap(rows: int, items: int, cap: float, expected: int):
    assert soup_draws(3, rows, 4, 1, items, cap) == expected


def test_soup_draws_cost_in_text_passes():
    # R + k·D <= cap·(R + D) with D = passes per text · rows · texts · epochs: at the bound k draws still fit
    rows, texts, epochs = 100, 4, 2  # D = 2880 passes, above the free allowance
    draw = TRAIN_PASSES_PER_TEXT * rows * texts * epochs
    assert draw > SOUP_FREE_PASSES
    fits_three = round(draw * (3 - 2.0) / (2.0 - 1))  # R with cap + (cap - 1)·R/D == 3
    assert soup_draws(5, rows, texts, epochs, fits_three, 2.0) == 3
    assert soup_draws(5, rows, texts, epochs, fits_three - 1, 2.0) == 2
    assert soup_draws(1, rows, texts, epochs, fits_three, 2.0) == 1


def test_averaging_two_models_gives_the_interpolated_tensors():
    a, b = tiny(0), tiny(1)
    start = snapshot(b)
    expected = {k: 0.25 * v + 0.75 * start[k] for k, v in a.state_dict().items() if v.is_floating_point()}
    average_into(a, start, 0.25)
    for key, value in a.state_dict().items():
        if key in expected:
            assert torch.allclose(value, expected[key]), key
    assert torch.equal(a.state_dict()["positions"], torch.arange(3))


def test_alpha_one_is_a_no_op_and_alpha_zero_is_the_start():
    a, b = tiny(0), tiny(1)
    before = snapshot(a)
    average_into(a, snapshot(b), 1.0)
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    average_into(a, snapshot(b), 0.0)
    assert all(torch.equal(b.state_dict()[k], v) for k, v in a.state_dict().items())


def test_snapshot_is_detached_from_training():
    a = tiny(0)
    start = snapshot(a)
    with torch.no_grad():
        a[0].weight.add_(1.0)
    assert not torch.equal(start["0.weight"], a[0].weight)


def test_mismatched_models_are_refused_with_a_reason():
    a = tiny(0)
    with pytest.raises(ConfigError, match="different parameters"):
        interpolate(a.state_dict(), {"x": torch.zeros(1)}, 0.5)
    other = snapshot(a)
    other["0.weight"] = torch.zeros(2, 2)
    with pytest.raises(ConfigError, match="shapes"):
        interpolate(a.state_dict(), other, 0.5)
    with pytest.raises(ConfigError, match="alpha"):
        interpolate(a.state_dict(), snapshot(a), 1.5)


def test_choose_alpha_loads_the_best_scoring_interpolation():
    trained, start = tiny(0), snapshot(tiny(1))
    weights = snapshot(trained)
    key = "0.weight"
    # a score that peaks at a quarter of the way from the start to the trained weights
    target = 0.25 * weights[key] + 0.75 * start[key]
    alpha, scores = choose_alpha(trained, start, lambda m: -float((m.state_dict()[key] - target).abs().sum()))
    assert alpha == 0.25 and set(scores) == set(GRID)
    assert torch.allclose(trained.state_dict()[key], target)


def test_choose_alpha_keeps_the_start_when_nothing_beats_it_and_ties_go_to_the_larger_step():
    trained, start = tiny(0), snapshot(tiny(1))
    key = "0.weight"
    alpha, _ = choose_alpha(trained, start, lambda m: -float((m.state_dict()[key] - start[key]).abs().sum()))
    assert alpha == 0.0 and torch.equal(trained.state_dict()[key], start[key])
    alpha, scores = choose_alpha(tiny(0), start, lambda m: 0.5)
    assert alpha == 1.0 and set(scores.values()) == {0.5}
