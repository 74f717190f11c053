"""Trial records: a candidate on trial, its interleaved searches and their outcomes.

The trial's whole state lives in the database: the ``trials`` row, the
searches tagged with its id, what each showed (``impressions.source``) and
what users selected. Outcomes are recomputed from those rows on every check,
so any process (or a restarted one) sees the same evidence, and a decision is
claimed by one conditional ``UPDATE`` (``running`` -> ``promoting`` /
``rejected``): exactly one process wins it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import and_, case, desc, func, insert, select, update

from embedloop.evaluation.trial_test import TrialEvidence
from embedloop.search.interleave import ACTIVE, CANDIDATE
from embedloop.statuses import TrialStatus
from embedloop.store import FeedbackStore
from embedloop.store.schema import impressions, searches, selections, trials
from embedloop.store.store import now
from embedloop.training.examples import normalise_query

RUNNING = TrialStatus.RUNNING
PROMOTING = TrialStatus.PROMOTING
PROMOTED = TrialStatus.PROMOTED
REJECTED = TrialStatus.REJECTED
STOPPED = TrialStatus.STOPPED
#: Statuses of a trial that is still being served or finished by its promotion.
OPEN = (RUNNING, PROMOTING)


def start_trial(
    store: FeedbackStore,
    *,
    candidate_version: int,
    active_version: int,
    run_id: int | None,
    share: float,
    max_searches: int,
    alpha: float,
    beta: float,
    min_effect: float,
    skip_queries: list[str] | None = None,
) -> int:
    """Open a trial; returns its id. ``skip_queries``: keys of queries never interleaved in it."""
    with store.engine.begin() as conn:
        result = conn.execute(
            insert(trials).values(
                candidate_version=candidate_version,
                active_version=active_version,
                run_id=run_id,
                status=RUNNING,
                started_at=now(),
                share=share,
                max_searches=max_searches,
                alpha=alpha,
                beta=beta,
                min_effect=min_effect,
                skip_queries=skip_queries,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def query_key(query: str) -> str:
    """A short, stable key of a query's normalised text (what a trial stores instead of the text)."""
    return hashlib.blake2b(normalise_query(query).encode("utf-8"), digest_size=8).hexdigest()


def _as_dict(row: Any, *, with_skip: bool = False) -> dict[str, Any]:
    data = dict(row._mapping)
    skip = data.pop("skip_queries", None) or []
    data["skipped_queries"] = len(skip)
    if with_skip:
        data["skip_queries"] = skip
    for key in ("started_at", "decided_at"):
        if data.get(key) is not None:
            data[key] = data[key].isoformat()
    return data


def open_trial(store: FeedbackStore) -> dict[str, Any] | None:
    """The trial being served or promoted, if any."""
    with store.engine.connect() as conn:
        row = conn.execute(select(trials).where(trials.c.status.in_(OPEN)).order_by(desc(trials.c.id)).limit(1)).first()
    return _as_dict(row, with_skip=True) if row is not None else None


def list_trials(store: FeedbackStore, limit: int = 50) -> list[dict[str, Any]]:
    """Trials newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(trials).order_by(desc(trials.c.id)).limit(limit)).all()
    return [_as_dict(r) for r in rows]


def trial_of_search(store: FeedbackStore, search_id: str) -> int | None:
    """The trial a search was interleaved for, or ``None``."""
    with store.engine.connect() as conn:
        value = conn.scalar(select(searches.c.trial_id).where(searches.c.id == search_id))
    return int(value) if value is not None else None


def evidence(store: FeedbackStore, trial_id: int) -> TrialEvidence:
    """Wins, losses and searches of a trial, recomputed from its searches and selections.

    A search's credit counts each distinct selected item once: +1 if the
    candidate contributed it, -1 if the active model did, 0 if both ranked it
    alike (``search/interleave.py``).
    """
    picked = (
        select(selections.c.search_id, selections.c.item_id)
        .join(searches, searches.c.id == selections.c.search_id)
        .where(searches.c.trial_id == trial_id)
        .distinct()
        .subquery()
    )
    weight = case((impressions.c.source == CANDIDATE, 1), (impressions.c.source == ACTIVE, -1), else_=0)
    per_search = (
        select(picked.c.search_id, func.sum(weight).label("credit"))
        .join(
            impressions,
            and_(impressions.c.search_id == picked.c.search_id, impressions.c.item_id == picked.c.item_id),
        )
        .group_by(picked.c.search_id)
        .subquery()
    )
    total = select(func.count()).where(searches.c.trial_id == trial_id).scalar_subquery()
    counts = select(
        total,
        func.coalesce(func.sum(case((per_search.c.credit > 0, 1), else_=0)), 0),
        func.coalesce(func.sum(case((per_search.c.credit < 0, 1), else_=0)), 0),
    ).select_from(per_search)
    with store.engine.connect() as conn:
        n, wins, losses = conn.execute(counts).one()
    return TrialEvidence(searches=int(n or 0), wins=int(wins), losses=int(losses))


def claim(store: FeedbackStore, trial_id: int, *, to: str, outcome: dict[str, Any], reason: str) -> bool:
    """Move a running trial to ``to``; ``True`` for the one caller that did it."""
    with store.engine.begin() as conn:
        result = conn.execute(
            update(trials)
            .where(trials.c.id == trial_id, trials.c.status == RUNNING)
            .values(status=to, outcome=outcome, reason=reason, decided_at=now())
        )
    return result.rowcount == 1


def finish(store: FeedbackStore, trial_id: int, *, frm: str, to: str) -> bool:
    """Move a trial from ``frm`` to ``to`` (e.g. promoting -> promoted); ``True`` if this call did it."""
    with store.engine.begin() as conn:
        result = conn.execute(update(trials).where(trials.c.id == trial_id, trials.c.status == frm).values(status=to))
    return result.rowcount == 1
