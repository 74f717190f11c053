"""Feedback sessions → contrastive training examples.

For every selection in a session the query and the selected item form the
positive pair (the spec's). Negatives, in order of trust:

1. **skip-above** — results shown above the selected one and not selected
   (the user saw them and passed them over);
2. **shown** — the other shown results that were not selected;
3. **mined** — the current model's top results for the query that were not
   shown as selected (hard negatives from the index).

A false-negative guard drops any candidate negative that was ever selected for
the same (normalised) query. Identical (query, positive) pairs are merged; the
merged example counts the sessions that selected it (its support) and keeps the
newest selection's sequence number, which ``cap_examples`` uses to bound a
cycle's training set as feedback accumulates.
With ``position_bias`` the example is repeated by its inverse propensity:
a selection at rank r is worth ``r ** theta`` (capped), since users examine
low ranks less often (Joachims et al., 2017, "Unbiased Learning-to-Rank").
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from embedloop.errors import InvalidInputError
from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)

#: Largest repeat factor position-bias weighting may give one example.
MAX_PROPENSITY_WEIGHT = 5


def normalise_query(query: str) -> str:
    """The key under which feedback for a query is grouped (case and spacing ignored)."""
    return " ".join(query.lower().split())


@dataclass
class TrainingExample:
    """A query, the id of the item it should retrieve, and item ids it should not."""

    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    weight: float = 1.0
    rank: int | None = None
    source: str = "feedback"
    #: Texts for examples that do not come from the catalog (domain files).
    positive_text: str | None = None
    negative_texts: list[str] = field(default_factory=list)
    #: Negatives the user certainly examined and passed over (skip-above): no margin check needed.
    trusted: list[str] = field(default_factory=list)
    #: Shown below the last selection (maybe never examined): negatives only after a margin check.
    unverified: list[str] = field(default_factory=list)
    #: The click model's P(relevant | clicks) of (query, positive), when one was fitted.
    relevance: float | None = None
    #: Sessions that selected this positive for this query (merged examples add up).
    clicks: int = 1
    #: Sequence number of the newest of those selections (0 when unknown).
    newest_seq: int = 0


def selected_by_query(sessions: Iterable[FeedbackSession]) -> dict[str, set[str]]:
    """Every item ever selected for each normalised query (the false-negative guard)."""
    out: dict[str, set[str]] = defaultdict(set)
    for s in sessions:
        out[normalise_query(s.query)].update(s.selected_ids)
    return out


def examples_from_sessions(
    sessions: Sequence[FeedbackSession],
    *,
    guard: dict[str, set[str]],
    position_bias: bool = False,
    theta: float = 1.0,
    sources: tuple[str, ...] = ("skip_above", "shown"),
    safe: bool = False,
) -> list[TrainingExample]:
    """Positive pairs with skip-above and/or shown negatives (per ``sources``), merged per (query, positive).

    With ``safe``, shown results below the session's last selection (which the user may never have
    looked at) go to ``unverified`` instead of ``negatives``: ``training.signal.check_margins``
    admits them only if the model scores them clearly below the positive.
    """
    merged: dict[tuple[str, str], TrainingExample] = {}
    for s in sessions:
        key_q = normalise_query(s.query)
        never = guard.get(key_q, set())
        shown = s.shown
        last = max((r or 0 for _i, r, _s in s.selected), default=0)
        for item, rank, seq in s.selected:
            above = shown[: (rank or 1) - 1] if rank else []
            skip_above = [i for i in above if i not in never] if "skip_above" in sources else []
            others = [i for i in shown if i not in never and i not in above and i != item] if "shown" in sources else []
            unverified: list[str] = []
            if safe:
                deep = set(shown[last:]) if last else set(shown)
                unverified = [i for i in others if i in deep]
                others = [i for i in others if i not in deep]
            weight = min(float(rank or 1) ** theta, MAX_PROPENSITY_WEIGHT) if position_bias else 1.0
            key = (key_q, item)
            if key in merged:
                ex = merged[key]
                ex.negatives.extend(n for n in skip_above + others if n not in ex.negatives)
                ex.trusted.extend(n for n in skip_above if n not in ex.trusted)
                ex.unverified.extend(n for n in unverified if n not in ex.unverified and n not in ex.negatives)
                ex.weight = max(ex.weight, weight)
                ex.clicks += 1
                ex.newest_seq = max(ex.newest_seq, seq)
            else:
                merged[key] = TrainingExample(
                    s.query,
                    item,
                    skip_above + others,
                    weight,
                    rank,
                    trusted=list(skip_above),
                    unverified=unverified,
                    newest_seq=seq,
                )
    return list(merged.values())


def cap_examples(examples: Sequence[TrainingExample], limit: int, *, since: int) -> list[TrainingExample]:
    """At most ``limit`` click examples: the newest window's first, then the best-supported older ones.

    With replay every cycle trains on all feedback so far, so its training time grows with the
    traffic (each trial adds thousands of interleaved sessions). Over the limit, the examples whose
    newest selection came after ``since`` (the last finished cycle) are kept first — a cycle must
    learn from its own window — ordered by support (sessions that selected the pair), then by
    recency; older pairs fill what is left by the same order. Examples that are not clicks
    (explicit judgments, ``source != "feedback"``) are always kept and do not count. ``limit`` 0
    keeps everything. The input order is preserved among the kept examples.
    """
    clicks = [ex for ex in examples if ex.source == "feedback"]
    if limit <= 0 or len(clicks) <= limit:
        return list(examples)
    ranked = sorted(clicks, key=lambda ex: (ex.newest_seq > since, ex.clicks, ex.newest_seq), reverse=True)
    kept = {id(ex) for ex in ranked[:limit]}
    logger.info(
        "Capped the click examples at max_train_examples=%d of %d (%d kept from the newest window)",
        limit,
        len(clicks),
        sum(1 for ex in ranked[:limit] if ex.newest_seq > since),
    )
    return [ex for ex in examples if ex.source != "feedback" or id(ex) in kept]


def add_mined_negatives(
    examples: Sequence[TrainingExample],
    mine: Callable[[list[str], int], list[list[str]]],
    *,
    guard: dict[str, set[str]],
    per_example: int,
) -> int:
    """Top up each example's negatives with the current model's hard negatives.

    ``mine(queries, n)`` returns the current top-``n`` item ids for each query.
    Returns how many mined negatives were added.
    """
    if per_example <= 0 or not examples:
        return 0
    queries = [ex.query for ex in examples]
    ranked = mine(queries, per_example + 10)
    added = 0
    for ex, candidates in zip(examples, ranked, strict=True):
        never = guard.get(normalise_query(ex.query), set())
        for item in candidates:
            if len(ex.negatives) >= per_example:
                break
            if item != ex.positive and item not in never and item not in ex.negatives:
                ex.negatives.append(item)
                added += 1
    return added


def read_domain_examples(path: Path) -> list[TrainingExample]:
    """Read a JSONL file of ``{"query", "positive", "negative"?}`` (texts, not ids)."""
    examples = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"Cannot read domain examples {str(path)!r}: {exc}", field="domain_examples_path"
        ) from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InvalidInputError(f"{path}: line {n} is not valid JSON.", field="domain_examples_path") from None
        query, positive = (
            row.get("query") if isinstance(row, dict) else None,
            row.get("positive") if isinstance(row, dict) else None,
        )
        if not isinstance(query, str) or not query.strip() or not isinstance(positive, str) or not positive.strip():
            raise InvalidInputError(
                f"{path}: line {n} needs non-empty string fields 'query' and 'positive'.", field="domain_examples_path"
            )
        negative = row.get("negative")
        negs = [negative] if isinstance(negative, str) and negative.strip() else []
        examples.append(
            TrainingExample(query, positive="", source="domain", positive_text=positive, negative_texts=negs)
        )
    return examples


def expand_by_weight(examples: Sequence[TrainingExample], seed: int) -> list[TrainingExample]:
    """Repeat each example ``round(weight)`` times and shuffle deterministically."""
    out = [ex for ex in examples for _ in range(max(1, round(ex.weight)))]
    random.Random(seed).shuffle(out)
    return out
