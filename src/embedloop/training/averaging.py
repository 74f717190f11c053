"""Weight averaging (WiSE-FT): interpolate the fine-tuned weights with the weights training started from.

``averaged = alpha * trained + (1 - alpha) * start`` for every floating-point tensor (integer
buffers, e.g. position ids, are taken from the trained model). ``alpha = 1`` is the trained model
unchanged (``Settings.weight_averaging`` default), ``alpha = 0`` the starting model.

Paper: Wortsman et al., 2022, "Robust fine-tuning of zero-shot models" (WiSE-FT); Xiao et al., 2023,
"LM-Cocktail" (merging a fine-tuned embedding model with its base keeps general ability at nearly the
same in-domain gain). Fine-tuning the fine-tuned model cycle after cycle drifts; averaging each
candidate back toward its parent (or, with ``train_from="base"``, the base) bounds that drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from embedloop.errors import ConfigError

#: Mixing weights ``auto_averaging`` tries, from the starting weights (0) to the trained ones (1).
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s weights (the anchor to average back toward)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def interpolate(
    trained: Mapping[str, torch.Tensor], start: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``alpha * trained + (1 - alpha) * start`` per tensor; both must have the same keys and shapes."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"weight averaging alpha={alpha!r} is not valid: must be in [0, 1].")
    if set(trained) != set(start):
        missing = sorted(set(trained) ^ set(start))[:5]
        raise ConfigError(
            f"cannot average models with different parameters (e.g. {missing}); train from the same base."
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in trained.items():
        other = start[key]
        if value.shape != other.shape:
            raise ConfigError(f"cannot average {key!r}: shapes {tuple(value.shape)} and {tuple(other.shape)} differ.")
        if alpha == 1.0 or not value.is_floating_point():
            out[key] = value
        else:
            out[key] = value * alpha + other.to(value.device, value.dtype) * (1.0 - alpha)
    return out


def running_mean(
    mean: Mapping[str, torch.Tensor] | None, state: Mapping[str, torch.Tensor], count: int
) -> dict[str, torch.Tensor]:
    """The mean of ``count`` weight sets, given the mean of the first ``count - 1`` and the ``count``-th.

    Floating-point tensors are averaged (a uniform model soup: Wortsman et al., 2022, "Model soups");
    integer buffers are taken from ``state``. ``mean`` is None for the first set (``count`` 1).
    """
    if mean is None or count <= 1:
        return {k: v.detach().clone() for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for key, value in state.items():
            prev = mean[key]
            out[key] = prev + (value.detach() - prev) / count if value.is_floating_point() else value.detach().clone()
    return out


#: What training one token costs in forward passes of one token: forward and backward (about 3) plus the
#: optimiser and the trainer's own work, calibrated on the benchmark's measured cycle parts (``soup_draws``).
TRAIN_PASSES_PER_TOKEN = 4.5

#: Extra draws cheaper than this many token passes (about 2,000 texts of 128 tokens) are always trained: a cycle
#: this small is dominated by loading, scoring and saving the model, and the soup's extra draws cost seconds.
SOUP_FREE_TOKENS = 250_000


def soup_draws(requested: int, row_tokens: float, epochs: int, reembed_tokens: float, cap: float) -> int:
    """How many of ``requested`` fine-tunes keep a full-mode cycle within ``cap`` × the cycle of one draw.

    Costs in token passes (one token through the encoder once): a draw trains every token of every training
    row each epoch, ``D = TRAIN_PASSES_PER_TOKEN · row_tokens · epochs``; re-embedding the catalog after
    training reads each item's tokens once, ``R = reembed_tokens`` (both truncated at the model's sequence
    length). A cycle of ``k`` draws costs about ``R + k·D``, so ``R + k·D ≤ cap · (R + D)`` allows
    ``k ≤ cap + (cap − 1) · R / D``. On the benchmark's one-round cycles this gives D/R 0.46–0.53 (SciFact) and
    1.12–1.28 (NFCorpus) against 0.46–0.52 and 1.36 measured (docs/benchmarks-quality.md, "The soup at learning
    rate 2e-4, and the soup's cost cap"). ``cap`` 0 or an unknown catalog (``reembed_tokens`` 0) sets no limit,
    and neither do extra draws cheaper than :data:`SOUP_FREE_TOKENS`.
    """
    if requested <= 1 or cap <= 0 or reembed_tokens <= 0 or row_tokens <= 0:
        return max(1, requested)
    draw = TRAIN_PASSES_PER_TOKEN * row_tokens * max(1, epochs)
    if (requested - 1) * draw <= SOUP_FREE_TOKENS:
        return requested
    affordable = int(cap + (cap - 1.0) * reembed_tokens / draw + 1e-9)
    return max(1, min(requested, affordable))


def token_total(tokenizer: Callable[..., Any], texts: Sequence[str], max_length: int, sample: int = 1000) -> float:
    """Estimated number of tokens in ``texts``, each truncated at ``max_length``, from an evenly spaced sample."""
    if not texts:
        return 0.0
    step = max(1, len(texts) // sample)
    picked = list(texts[::step])[:sample]
    ids = tokenizer(picked, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return len(texts) * sum(len(i) for i in ids) / len(ids)


def average_into(model: nn.Module, start: Mapping[str, torch.Tensor], alpha: float) -> None:
    """Replace ``model``'s weights by their interpolation with ``start`` (no-op at ``alpha = 1``)."""
    if alpha >= 1.0:
        return
    with torch.no_grad():
        model.load_state_dict(interpolate(model.state_dict(), start, alpha))


def choose_alpha(
    model: nn.Module,
    start: Mapping[str, torch.Tensor],
    score: Callable[[nn.Module], float],
    grid: tuple[float, ...] = GRID,
) -> tuple[float, dict[float, float]]:
    """Load into ``model`` the interpolation of its trained weights with ``start`` that ``score`` rates best.

    ``score(model)``: higher is better (the cycle passes held-out triplet accuracy). Ties go to the
    larger step: training is trusted unless the held-out evidence says a smaller step is better.
    ``alpha = 0`` is the starting model itself: when nothing beats it, the candidate is the start
    and the pre-check sees no gain. Returns the chosen alpha and every alpha's score.
    """
    trained = snapshot(model)
    scores: dict[float, float] = {}
    with torch.no_grad():
        for alpha in grid:
            model.load_state_dict(interpolate(trained, start, alpha))
            scores[alpha] = float(score(model))
        best = max(grid, key=lambda a: (round(scores[a], 6), a))
        model.load_state_dict(interpolate(trained, start, best))
    return best, scores
