"""Read-only queries for operators: training-run history and feedback over time.

Everything here is one or a few aggregate SQL statements over the feedback
store (SQLite and PostgreSQL alike); nothing loads the raw feedback into
Python. The dashboard and the JSON endpoints render these results as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, desc, exists, func, literal_column, select, union_all
from sqlalchemy.engine import Dialect

from embedloop.errors import InvalidInputError
from embedloop.store.database import READ_ONLY
from embedloop.store.schema import items, searches, selections, training_runs
from embedloop.store.store import FeedbackStore, now

#: Most runs one page may return.
MAX_PAGE = 500
#: Longest feedback timeline, in days.
MAX_DAYS = 366


def check_count(value: Any, field: str, low: int, high: int) -> int:
    """An integer between ``low`` and ``high`` (a page size, an offset, a number of days)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{field} must be an integer, got {value!r:.60}.", field=field)
    if not low <= value <= high:
        raise InvalidInputError(f"{field}={value} is out of range; use {low}..{high}.", field=field)
    return value


def _day(column: Any, dialect: Dialect) -> ColumnElement[str]:
    """``column`` (a UTC timestamp) as a ``YYYY-MM-DD`` string, in the database's own dialect."""
    if dialect.name == "sqlite":  # SQLAlchemy stores UTC datetimes as ISO text there
        return func.substr(column, 1, 10)
    if dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset (SQLite hands back naive datetimes, which are UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def _run_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    started, finished = data.get("started_at"), data.get("finished_at")
    data["duration_seconds"] = (
        round((finished - started).total_seconds(), 3) if started is not None and finished is not None else None
    )
    data["started_at"], data["finished_at"] = _iso(started), _iso(finished)
    metrics = data.get("metrics") or {}
    data["timings"] = metrics.get("timings") if isinstance(metrics, dict) else None
    return data


def runs_page(store: FeedbackStore, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Training runs newest first: ``{"runs": [...], "total", "limit", "offset"}``.

    Each run has its feedback window (``feedback_from_seq`` / ``feedback_to_seq``),
    ``status``, ``parent_version``, ``version``, ``metrics`` (``active`` vs
    ``candidate``), ``reasons``, ``timings`` (seconds per stage) and
    ``duration_seconds`` (``None`` while it runs).
    """
    with store.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        total = int(conn.scalar(select(func.count()).select_from(training_runs)) or 0)
        rows = conn.execute(select(training_runs).order_by(desc(training_runs.c.id)).limit(limit).offset(offset)).all()
    return {"runs": [_run_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}


def feedback_timeline(
    store: FeedbackStore, days: int = 30, top: int = 10, *, today: datetime | None = None
) -> dict[str, Any]:
    """Feedback per UTC day over the last ``days`` days (today included), and what stands out.

    Returns ``{"days": [{"date", "searches", "searches_with_selection",
    "selections", "click_through"}...]`` oldest first, one row for every day
    (zeros where nothing happened), ``"totals"`` over the window,
    ``"top_unselected_queries"`` (``query``, ``searches``: the queries searched
    most often without any selection) and ``"top_selected_items"``
    (``item_id``, ``text`` or ``None`` for an unknown item, ``selections``).
    Click-through is the share of a day's searches with at least one selection.
    """
    end = (today or now()).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days - 1)
    dialect = store.engine.dialect
    search_day = _day(searches.c.created_at, dialect)
    selection_day = _day(selections.c.created_at, dialect)
    # One pass over the window's searches, each probed once for a selection (the costly part),
    # materialised and read twice: per-day counts, and the queries most often left without one.
    has = case((exists().where(selections.c.search_id == searches.c.id), 1), else_=0)
    window = (
        select(search_day.label("day"), searches.c.query.label("query"), has.label("has"))
        .where(searches.c.created_at >= start)
        .cte("window")
        .prefix_with("MATERIALIZED")
    )
    n = func.count().label("n")
    per_day = select(
        literal_column("'day'").label("kind"), window.c.day.label("key"), n, func.sum(window.c.has).label("m")
    ).group_by(window.c.day)
    unselected = (
        select(literal_column("'query'").label("kind"), window.c.query.label("key"), n, literal_column("0").label("m"))
        .where(window.c.has == 0)
        .group_by(window.c.query)
        .order_by(desc(n), window.c.query)
        .limit(top)
        .subquery()
    )
    picked = (
        select(selections.c.item_id, n)
        .where(selections.c.created_at >= start)
        .group_by(selections.c.item_id)
        .order_by(desc(n), selections.c.item_id)
        .limit(top)
        .subquery()
    )
    with store.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        per_day_searches: dict[str, int] = {}
        per_day_with: dict[str, int] = {}
        unselected_rows: list[tuple[str, int]] = []
        for kind, key, count, with_selection in conn.execute(union_all(per_day, select(unselected))):
            if kind == "day":
                per_day_searches[key], per_day_with[key] = int(count), int(with_selection or 0)
            else:
                unselected_rows.append((key, int(count)))
        unselected_rows.sort(key=lambda row: (-row[1], row[0]))
        per_day_selections = dict(
            conn.execute(
                select(selection_day, func.count()).where(selections.c.created_at >= start).group_by(selection_day)
            ).all()
        )
        top_items = conn.execute(
            select(picked.c.item_id, picked.c.n, items.c.text)
            .select_from(picked.outerjoin(items, items.c.id == picked.c.item_id))
            .order_by(desc(picked.c.n), picked.c.item_id)
        ).all()
    rows: list[dict[str, Any]] = []
    for offset in range(days):
        date = (start + timedelta(days=offset)).strftime("%Y-%m-%d")
        n_searches = int(per_day_searches.get(date, 0))
        n_with = int(per_day_with.get(date, 0))
        rows.append(
            {
                "date": date,
                "searches": n_searches,
                "searches_with_selection": n_with,
                "selections": int(per_day_selections.get(date, 0)),
                "click_through": (n_with / n_searches) if n_searches else None,
            }
        )
    total_searches = sum(int(r["searches"]) for r in rows)
    total_with = sum(int(r["searches_with_selection"]) for r in rows)
    return {
        "days": rows,
        "since": start.isoformat(),
        "totals": {
            "searches": total_searches,
            "searches_with_selection": total_with,
            "selections": sum(int(r["selections"]) for r in rows),
            "click_through": (total_with / total_searches) if total_searches else None,
        },
        "top_unselected_queries": [{"query": q, "searches": c} for q, c in unselected_rows],
        "top_selected_items": [{"item_id": i, "selections": int(c), "text": t} for i, c, t in top_items],
    }
