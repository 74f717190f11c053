"""WiSE-FT weight averaging (training/averaging.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embedloop.errors import ConfigError
from embedloop.training.averaging import (
    GRID,
    SOUP_FREE_TOKENS,
    TRAIN_PASSES_PER_TOKEN,
    average_into,
    choose_alpha,
    interpolate,
    running_mean,
    snapshot,
    soup_draws,
    token_total,
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


SCIFACT_ROW, SCIFACT_DOC = 22.4 + 3 * 127.6, 127.6  # tokens: a claim and three abstracts; an abstract (MiniLM)
NFCORPUS_ROW, NFCORPUS_DOC = 7.0 + 3 * 127.2, 127.2


@pytest.mark.parametrize(
    ("row_tokens", "epochs", "catalog_tokens", "cap", "expected"),
    [
        (193 * SCIFACT_ROW, 1, 5183 * SCIFACT_DOC, 2.0, 3),  # SciFact one round (most rows of 3 seeds): 3 fit in 2x
        (339 * NFCORPUS_ROW, 1, 3633 * NFCORPUS_DOC, 2.0, 2),  # NFCorpus seed 13: training 1.3x the re-embedding
        (296 * NFCORPUS_ROW, 1, 3633 * NFCORPUS_DOC, 2.0, 2),  # NFCorpus seed 1, the fewest rows: still two
        (5000 * NFCORPUS_ROW, 1, 100 * NFCORPUS_DOC, 2.0, 2),  # training dominates: two draws at most double a cycle
        (339 * NFCORPUS_ROW, 1, 3633 * NFCORPUS_DOC, 1.0, 1),  # cap 1: no draw beyond the first
        (339 * NFCORPUS_ROW, 1, 3633 * NFCORPUS_DOC, 3.0, 3),  # a wider cap lets all three through
        (339 * NFCORPUS_ROW, 1, 3633 * NFCORPUS_DOC, 0.0, 3),  # 0: no limit
        (339 * NFCORPUS_ROW, 1, 0.0, 2.0, 3),  # catalog unknown: no limit
        (120 * 36.0, 3, 20 * 10.0, 2.0, 3),  # the spec's 20-security example: short texts, seconds, always all
    ],
)
def test_soup_draws_keep_the_cycle_within_the_cost_cap(
    row_tokens: float, epochs: int, catalog_tokens: float, cap: float, expected: int
):
    assert soup_draws(3, row_tokens, epochs, catalog_tokens, cap) == expected


def test_soup_draws_cost_in_token_passes():
    # R + k·D <= cap·(R + D) with D = passes per token · row tokens · epochs: at the bound k draws still fit
    row_tokens, epochs = 100_000.0, 2
    draw = TRAIN_PASSES_PER_TOKEN * row_tokens * epochs
    assert draw > SOUP_FREE_TOKENS
    fits_three = draw * (3 - 2.0) / (2.0 - 1)  # R with cap + (cap - 1)·R/D == 3
    assert soup_draws(5, row_tokens, epochs, fits_three, 2.0) == 3
    assert soup_draws(5, row_tokens, epochs, fits_three * 0.99, 2.0) == 2
    assert soup_draws(1, row_tokens, epochs, fits_three, 2.0) == 1


def test_token_total_estimates_from_a_sample_with_truncation():
    def tokenizer(texts, add_special_tokens, truncation, max_length):
        assert add_special_tokens and truncation
        return {"input_ids": [list(range(min(len(t.split()), max_length))) for t in texts]}

    texts = ["a b c d"] * 3000 + ["w " * 500] * 3000  # 4 tokens, and 500 cut to 128
    assert token_total(tokenizer, texts, 128, sample=600) == pytest.approx(6000 * (4 + 128) / 2)
    assert token_total(tokenizer, [], 128) == 0.0


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
