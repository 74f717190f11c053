"""Training-run records: the feedback window each cycle used and what it decided."""

from __future__ import annotations

from typing import Any

from sqlalchemy import desc, insert, select, update

from embedloop.statuses import CycleStatus
from embedloop.store import FeedbackStore
from embedloop.store.schema import training_runs
from embedloop.store.store import now

#: Statuses after which the feedback in the run's window counts as "used".
CONSUMED = (CycleStatus.PROMOTED, CycleStatus.REJECTED)


def start_run(store: FeedbackStore, *, parent_version: int, from_seq: int, to_seq: int) -> int:
    """Record that a cycle started; returns the run id."""
    with store.engine.begin() as conn:
        result = conn.execute(
            insert(training_runs).values(
                started_at=now(),
                status=CycleStatus.RUNNING,
                parent_version=parent_version,
                feedback_from_seq=from_seq,
                feedback_to_seq=to_seq,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def finish_run(store: FeedbackStore, run_id: int, **fields: Any) -> None:
    """Record a cycle's outcome (status, version, sizes, metrics, reasons)."""
    with store.engine.begin() as conn:
        conn.execute(update(training_runs).where(training_runs.c.id == run_id).values(finished_at=now(), **fields))


def update_run(store: FeedbackStore, run_id: int, *, status: str, reasons: list[str], trial: Any = None) -> None:
    """Close a run whose candidate was on trial: its final status, reasons and the trial's outcome."""
    with store.engine.begin() as conn:
        metrics = conn.scalar(select(training_runs.c.metrics).where(training_runs.c.id == run_id)) or {}
        conn.execute(
            update(training_runs)
            .where(training_runs.c.id == run_id)
            .values(status=status, reasons=reasons, finished_at=now(), metrics={**metrics, "trial": trial})
        )


def _as_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    for key in ("started_at", "finished_at"):
        if data.get(key) is not None:
            data[key] = data[key].isoformat()
    return data


def last_run(store: FeedbackStore) -> dict[str, Any] | None:
    """The newest run, any status."""
    with store.engine.connect() as conn:
        row = conn.execute(select(training_runs).order_by(desc(training_runs.c.id)).limit(1)).first()
    return _as_dict(row) if row is not None else None


def list_runs(store: FeedbackStore, limit: int = 50) -> list[dict[str, Any]]:
    """Runs newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(training_runs).order_by(desc(training_runs.c.id)).limit(limit)).all()
    return [_as_dict(r) for r in rows]


def last_trained_seq(store: FeedbackStore) -> int:
    """The newest feedback event a finished (promoted or rejected) cycle has seen."""
    with store.engine.connect() as conn:
        value = conn.scalar(
            select(training_runs.c.feedback_to_seq)
            .where(training_runs.c.status.in_(CONSUMED))
            .order_by(desc(training_runs.c.id))
            .limit(1)
        )
    return int(value or 0)


def close_orphaned_runs(store: FeedbackStore, *, active_version: int | None, active_run_id: int | None) -> list[int]:
    """Close runs left ``running`` by a trainer that died; returns their ids.

    Only when no live process holds the training lock (a running cycle's run is left alone). A run whose
    version is the active one was promoted before its trainer died: it is closed ``promoted``, so its
    feedback window counts as used; any other is closed ``failed`` with the reason.
    """
    from embedloop.store.locks import TRAINING_LOCK, holder, holder_is_dead

    lock = holder(store, TRAINING_LOCK)
    if lock is not None and not lock["expired"] and not holder_is_dead(lock["owner"]):
        return []
    closed = []
    with store.engine.begin() as conn:
        rows = conn.execute(
            select(training_runs.c.id, training_runs.c.version).where(training_runs.c.status == CycleStatus.RUNNING)
        )
        for run_id, version in rows.all():
            stood = (version is not None and version == active_version) or run_id == active_run_id
            status, reason = (
                (
                    CycleStatus.PROMOTED,
                    "its trainer stopped after the switch; the promotion stands (closed on recovery)",
                )
                if stood
                else (
                    CycleStatus.FAILED,
                    "interrupted: its trainer stopped before the cycle finished (closed on recovery)",
                )
            )
            conn.execute(
                update(training_runs)
                .where(training_runs.c.id == run_id, training_runs.c.status == CycleStatus.RUNNING)
                .values(status=status, reasons=[reason], finished_at=now(), version=version)
            )
            closed.append(int(run_id))
    return closed


def set_run_version(store: FeedbackStore, run_id: int, version: int) -> None:
    """Record the version a running cycle is producing (recovery needs it if the trainer dies)."""
    with store.engine.begin() as conn:
        conn.execute(update(training_runs).where(training_runs.c.id == run_id).values(version=version))
