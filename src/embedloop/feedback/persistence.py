"""Persistence of explicit judgments and review questions (tables ``judgments``, ``review_questions``).

Every write is one transaction: an answer stores its judgments and closes its
question together, or nothing at all. The newest judgment per (normalised
query, item) is the label; older ones are kept as history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Connection, func, insert, select, update

from embedloop.errors import InvalidInputError, NotFoundError
from embedloop.store.schema import impressions, items, judgments, review_questions, searches, selections
from embedloop.store.store import FeedbackStore, _chunks, new_id, now
from embedloop.training.examples import normalise_query
from embedloop.types import FeedbackSession

#: Statuses of a review question.
OPEN, ANSWERED, EXPIRED = "open", "answered", "expired"


@dataclass(frozen=True)
class Judgment:
    """One explicit label: ``item_id`` is (not) relevant to ``query``."""

    judgment_id: int
    query: str
    item_id: str
    relevant: bool
    reviewer: str | None
    review_id: str | None
    created_at: str
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _stamp(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _judgment(row: Any, duplicate: bool = False) -> Judgment:
    return Judgment(
        int(row.id),
        row.query,
        row.item_id,
        bool(row.relevant),
        row.reviewer,
        row.review_id,
        _stamp(row.created_at),
        duplicate,
    )


def _live_items(conn: Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(dict.fromkeys(ids))):
        found.update(conn.scalars(select(items.c.id).where(items.c.id.in_(chunk), items.c.deleted.is_(False))))
    return found


def _latest(conn: Connection, key: str, item_id: str) -> Any:
    return conn.execute(
        select(judgments)
        .where(judgments.c.query_key == key, judgments.c.item_id == item_id)
        .order_by(judgments.c.id.desc())
        .limit(1)
    ).first()


def _insert_labels(
    conn: Connection,
    query: str,
    labels: Sequence[tuple[str, bool]],
    reviewer: str | None,
    review_id: str | None,
) -> list[Judgment]:
    key = normalise_query(query)
    stamp = now()
    out = []
    for item_id, relevant in labels:
        conn.execute(
            insert(judgments).values(
                query=query,
                query_key=key,
                item_id=item_id,
                relevant=relevant,
                reviewer=reviewer,
                review_id=review_id,
                created_at=stamp,
            )
        )
        out.append(_judgment(_latest(conn, key, item_id)))
    return out


def record_judgment(
    store: FeedbackStore, query: str, item_id: str, relevant: bool, reviewer: str | None = None
) -> Judgment:
    """Store one judgment. Repeating the newest label of this reviewer for the pair is a no-op (``duplicate``)."""
    with store.engine.begin() as conn:
        if item_id not in _live_items(conn, [item_id]):
            raise NotFoundError(
                f"Unknown item_id {item_id!r}; judge items of the catalog (add_items first). Nothing was stored."
            )
        previous = _latest(conn, normalise_query(query), item_id)
        if previous is not None and bool(previous.relevant) == relevant and previous.reviewer == reviewer:
            return _judgment(previous, duplicate=True)
        return _insert_labels(conn, query, [(item_id, relevant)], reviewer, None)[0]


def list_judgments(
    store: FeedbackStore, *, query: str | None = None, reviewer: str | None = None, limit: int | None = None
) -> list[Judgment]:
    """Judgments, newest first; filtered by (normalised) query and/or reviewer."""
    stmt = select(judgments).order_by(judgments.c.id.desc())
    if query is not None:
        stmt = stmt.where(judgments.c.query_key == normalise_query(query))
    if reviewer is not None:
        stmt = stmt.where(judgments.c.reviewer == reviewer)
    if limit is not None:
        stmt = stmt.limit(limit)
    with store.engine.connect() as conn:
        return [_judgment(r) for r in conn.execute(stmt)]


def export_judgments(store: FeedbackStore, fp: IO[str]) -> int:
    """Write every judgment as one JSON line, oldest first; returns the count."""
    count = 0
    with store.engine.connect() as conn:
        for row in conn.execute(select(judgments).order_by(judgments.c.id)):
            fp.write(json.dumps(_judgment(row).to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count


def current_labels(store: FeedbackStore, since: datetime | None = None) -> dict[str, tuple[str, dict[str, bool]]]:
    """The label in force per normalised query: ``{key: (newest query text, {item_id: relevant})}``.

    ``since``: only judgments recorded after it (e.g. while a trial runs).
    """
    out: dict[str, tuple[str, dict[str, bool]]] = {}
    stmt = select(judgments.c.query, judgments.c.query_key, judgments.c.item_id, judgments.c.relevant)
    if since is not None:
        stmt = stmt.where(judgments.c.created_at > since)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(judgments.c.id))
        for r in rows:
            _text, labels = out.get(r.query_key, (r.query, {}))
            labels[r.item_id] = bool(r.relevant)
            out[r.query_key] = (r.query, labels)
    return out


def count_judgments(store: FeedbackStore, since: datetime | None = None) -> int:
    """How many judgments were recorded (history included), or recorded after ``since``.

    The cycle can add ``count_judgments(store, since=<last run's start>)`` to its new events, so
    that answers alone can trigger a fine-tuning cycle.
    """
    stmt = select(func.count()).select_from(judgments)
    if since is not None:
        stmt = stmt.where(judgments.c.created_at > since)
    with store.engine.connect() as conn:
        return int(conn.scalar(stmt) or 0)


# --------------------------------------------------------------- questions
def question_dict(row: Any) -> dict[str, Any]:
    """A review question row as a plain dict."""
    return {
        "review_id": row.id,
        "query": row.query,
        "query_key": row.query_key,
        "candidates": list(row.candidates or []),
        "reason": row.reason,
        "reasons": dict(row.reasons or {}),
        "priority": float(row.priority),
        "status": row.status,
        "model_version": row.model_version,
        "catalog_revision": int(row.catalog_revision),
        "created_at": _stamp(row.created_at),
        "closed_because": row.closed_because,
        "answer": row.answer,
        "reviewer": row.reviewer,
    }


def add_questions(store: FeedbackStore, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert new open questions (dicts with query, candidates, reason, reasons, priority, versions); their ids."""
    if not rows:
        return []
    stamp = now()
    ids = [new_id() for _ in rows]
    with store.engine.begin() as conn:
        conn.execute(
            insert(review_questions),
            [
                {
                    "id": qid,
                    "query": r["query"],
                    "query_key": normalise_query(r["query"]),
                    "candidates": r["candidates"],
                    "reason": r["reason"],
                    "reasons": r["reasons"],
                    "priority": r["priority"],
                    "status": OPEN,
                    "model_version": r["model_version"],
                    "catalog_revision": r["catalog_revision"],
                    "created_at": stamp,
                }
                for qid, r in zip(ids, rows, strict=True)
            ],
        )
    return ids


def questions(store: FeedbackStore, *, status: str | None = None) -> list[dict[str, Any]]:
    """Questions (all, or those with ``status``), highest priority first."""
    stmt = select(review_questions).order_by(review_questions.c.priority.desc(), review_questions.c.created_at)
    if status is not None:
        stmt = stmt.where(review_questions.c.status == status)
    with store.engine.connect() as conn:
        return [question_dict(r) for r in conn.execute(stmt)]


def expire_questions(store: FeedbackStore, why: dict[str, str]) -> int:
    """Close the open questions in ``why`` (id -> reason) as expired; returns how many closed."""
    closed = 0
    with store.engine.begin() as conn:
        for qid, because in why.items():
            result = conn.execute(
                update(review_questions)
                .where(review_questions.c.id == qid, review_questions.c.status == OPEN)
                .values(status=EXPIRED, closed_at=now(), closed_because=because)
            )
            closed += int(result.rowcount or 0)
    return closed


def review_counts(store: FeedbackStore) -> dict[str, int]:
    """``{"open_questions", "judgments"}`` for ``status()``."""
    with store.engine.connect() as conn:
        open_n = conn.scalar(select(func.count()).where(review_questions.c.status == OPEN))
        judged = conn.scalar(select(func.count()).select_from(judgments))
    return {"open_questions": int(open_n or 0), "judgments": int(judged or 0)}


def traffic_stamp(store: FeedbackStore) -> tuple[int, int, int, int]:
    """(searches, newest selection seq, judgments, open questions): what the queue is computed from."""
    with store.engine.connect() as conn:
        return (
            int(conn.scalar(select(func.count()).select_from(searches)) or 0),
            int(conn.scalar(select(func.coalesce(func.max(selections.c.seq), 0))) or 0),
            int(conn.scalar(select(func.count()).select_from(judgments)) or 0),
            int(conn.scalar(select(func.count()).where(review_questions.c.status == OPEN)) or 0),
        )


def answer_question(
    store: FeedbackStore,
    review_id: str,
    selected: Sequence[str],
    rejected: Sequence[str],
    reviewer: str | None = None,
) -> dict[str, Any]:
    """Record the answer to question ``review_id``: ``selected`` are relevant, ``rejected`` are not.

    One transaction: every check passes and all judgments are stored and the
    question is closed, or nothing is stored. Answering an answered question
    again with the same items is a no-op (``duplicate: True``); with other
    items it is refused (use ``record_judgment`` to correct a label).
    """
    picked, refused = list(dict.fromkeys(selected)), list(dict.fromkeys(rejected))
    if not picked and not refused:
        raise InvalidInputError(
            "The answer is empty: name at least one relevant item in selected or one irrelevant item in rejected.",
            field="selected",
        )
    both = sorted(set(picked) & set(refused))
    if both:
        raise InvalidInputError(
            f"Item(s) {both!r} are both selected and rejected; each candidate is either relevant or not.",
            field="rejected",
        )
    answer = {"selected": sorted(picked), "rejected": sorted(refused)}
    with store.engine.begin() as conn:
        row = conn.execute(select(review_questions).where(review_questions.c.id == review_id)).first()
        if row is None:
            raise NotFoundError(
                f"Unknown review_id {review_id!r}; use an id from review_queue() (get_review_queue). "
                "Nothing was stored."
            )
        candidates = [c["item_id"] for c in row.candidates or []]
        strangers = [i for i in picked + refused if i not in candidates]
        if strangers:
            raise InvalidInputError(
                f"Item(s) {strangers[:10]!r} are not candidates of review {review_id!r} (candidates: {candidates}); "
                "answer about the listed candidates, or use record_judgment for other items. Nothing was stored.",
                field="selected" if strangers[0] in picked else "rejected",
            )
        if row.status == ANSWERED:
            if row.answer == answer:
                stored = conn.execute(
                    select(judgments).where(judgments.c.review_id == review_id).order_by(judgments.c.id)
                )
                return _answer_result(row.id, row.query, [_judgment(r, duplicate=True) for r in stored], True)
            raise InvalidInputError(
                f"Review {review_id!r} was already answered ({row.answer}); an answer cannot be changed. "
                "Use record_judgment(query, item_id, relevant) to correct one label.",
                field="review_id",
            )
        done = conn.execute(
            update(review_questions)
            .where(review_questions.c.id == review_id, review_questions.c.status != ANSWERED)
            .values(status=ANSWERED, closed_at=now(), closed_because="answered", answer=answer, reviewer=reviewer)
        )
        if not done.rowcount:  # a concurrent answer won: ours is a replay or a conflict
            conn.rollback()
            return answer_question(store, review_id, picked, refused, reviewer)
        labels = [(i, True) for i in picked] + [(i, False) for i in refused]
        stored_now = _insert_labels(conn, row.query, labels, reviewer, review_id)
    return _answer_result(review_id, row.query, stored_now, False)


def _answer_result(review_id: str, query: str, stored: list[Judgment], duplicate: bool) -> dict[str, Any]:
    return {
        "review_id": review_id,
        "query": query,
        "judgments": [j.to_dict() for j in stored],
        "duplicate": duplicate,
    }


# ----------------------------------------------------------------- traffic
def recent_traffic(store: FeedbackStore, max_searches: int) -> list[FeedbackSession]:
    """The newest ``max_searches`` searches, newest first, each with what it showed and what was selected.

    Each session has ``search_id``, ``query``, ``model_version``, ``shown`` and ``scores`` (in rank
    order), ``selected`` (empty when nothing was picked) and ``last_seq``.
    """
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(searches.c.id, searches.c.query, searches.c.model_version)
            .order_by(searches.c.created_at.desc(), searches.c.id)
            .limit(max_searches)
        ).all()
        out = {
            r.id: FeedbackSession(search_id=r.id, query=r.query, shown=[], selected=[], model_version=r.model_version)
            for r in rows
        }
        for chunk in _chunks(list(out)):
            for r in conn.execute(
                select(impressions).where(impressions.c.search_id.in_(chunk)).order_by(impressions.c.rank)
            ):
                out[r.search_id].shown.append(r.item_id)
                out[r.search_id].scores.append(r.score)
            for r in conn.execute(
                select(selections.c.search_id, selections.c.item_id, selections.c.rank, selections.c.seq)
                .where(selections.c.search_id.in_(chunk))
                .order_by(selections.c.seq)
            ):
                session = out[r.search_id]
                session.selected.append((r.item_id, r.rank, r.seq))
                session.last_seq = max(session.last_seq, r.seq)
    return list(out.values())
