"""The pre-check: is a candidate fit to be shown to users (trials on), or to be promoted (trials off)?

Held-out feedback was collected on the active model's own top results, which
favours the active model on every metric computed from it
(docs/benchmarks-quality.md, "What the gate gets right and wrong"). With
trials on, the pre-check therefore only stops candidates that are clearly
broken and leaves the judgement to the users; with trials off it is the only
judge and asks for a strict improvement.

Primary metric: ``triplet_accuracy`` (the spec's accuracy: a held-out
selection scored above a result shown with it and skipped). Guard:
``retrieval_ndcg@10`` (held-out selections ranked over the whole catalog).
"""

from __future__ import annotations

import math

#: The pre-check's primary metric.
PRIMARY = "triplet_accuracy"
#: The forgetting guard.
GUARD = "retrieval_ndcg@10"
#: The tie-breaker (trials off): mean cosine margin of held-out selections over the results skipped with them.
MARGIN = "triplet_margin"


def _common(active: dict[str, float], candidate: dict[str, float], min_accuracy: float) -> list[str]:
    reasons = []
    nan = [k for k, v in candidate.items() if isinstance(v, float) and math.isnan(v)]
    if nan:
        reasons.append(f"candidate metrics are NaN: {', '.join(sorted(nan))}")
    acc = candidate.get(PRIMARY, float("nan"))
    if not acc >= min_accuracy:
        reasons.append(f"triplet accuracy {acc:.3f} is below the required {min_accuracy:.2f}")
    if all(candidate.get(k) == active.get(k) for k in active):
        reasons.append("the candidate scores exactly like the active model on every held-out metric (nothing learned)")
    return reasons


def precheck(
    active: dict[str, float],
    candidate: dict[str, float],
    *,
    min_accuracy: float,
    accuracy_drop: float,
    ndcg_drop: float,
) -> list[str]:
    """Reasons the candidate may not go on trial; empty means it may.

    It may when nothing is NaN, its triplet accuracy reaches ``min_accuracy``,
    it is not a no-op, and neither its accuracy nor its NDCG@10 falls further
    below the active model's than ``accuracy_drop`` / ``ndcg_drop``.
    """
    reasons = _common(active, candidate, min_accuracy)
    acc, acc_active = candidate.get(PRIMARY, float("nan")), active.get(PRIMARY, float("nan"))
    if not acc >= acc_active - accuracy_drop:
        reasons.append(
            f"triplet accuracy {acc:.4f} fell more than {accuracy_drop} below the active model's {acc_active:.4f}"
        )
    cand, base = candidate.get(GUARD, float("nan")), active.get(GUARD, float("nan"))
    if not cand >= base - ndcg_drop:
        reasons.append(f"{GUARD} {cand:.4f} fell more than {ndcg_drop} below the active model's {base:.4f}")
    return reasons


def gate_alone(
    active: dict[str, float], candidate: dict[str, float], *, min_accuracy: float, tolerance: float
) -> list[str]:
    """Reasons to refuse promotion when no users judge (trials off); empty means promote.

    Promote only if nothing is NaN, the candidate's triplet accuracy reaches
    ``min_accuracy`` and is *strictly* above the active model's — or equal to
    it with a strictly larger mean margin (a tie on everything is not an
    improvement) — it is not a no-op, and its NDCG@10 over the whole catalog
    is at most ``tolerance`` below the active model's.
    """
    reasons = _common(active, candidate, min_accuracy)
    acc, acc_active = candidate.get(PRIMARY, float("nan")), active.get(PRIMARY, float("nan"))
    margin, margin_active = candidate.get(MARGIN, float("nan")), active.get(MARGIN, float("nan"))
    if acc == acc_active:  # a tie on the primary metric: the mean margin (selected minus skipped) breaks it
        if not margin > margin_active:
            reasons.append(
                f"triplet accuracy {acc:.4f} ties the active model's and its margin {margin:.4f} is not above "
                f"{margin_active:.4f} (a tie is not an improvement)"
            )
    elif not acc > acc_active:
        reasons.append(f"triplet accuracy {acc:.4f} is not above the active model's {acc_active:.4f}")
    cand, base = candidate.get(GUARD, float("nan")), active.get(GUARD, float("nan"))
    if not cand >= base - tolerance:
        reasons.append(f"{GUARD} {cand:.4f} fell more than {tolerance} below the active model's {base:.4f}")
    return reasons
