"""The feedback store: catalog rows, searches, impressions, selections.

Every public write is one transaction: it lands whole or not at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, CursorResult, Engine, Table, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from embedloop.errors import InvalidInputError, NotFoundError, NotShownError
from embedloop.store.database import open_engine
from embedloop.store.schema import catalog_changes, impressions, items, searches, selections
from embedloop.types import FeedbackEvent, FeedbackSession, Item, Selection

_CHUNK = 500


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh random identifier."""
    return uuid.uuid4().hex


def _chunks(seq: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


@dataclass(frozen=True)
class CatalogRow:
    """An item as the index sees it: integer key, id, text, tombstone flag."""

    key: int
    id: str
    text: str
    deleted: bool = False


#: PEP 249 parameter styles; ``{n}`` is the 1-based position.
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{n}", "numeric_dollar": "${n}", "named": ":p{n}"}


class _DriverSQL:
    """The feedback write path's statements, rendered once per engine for the driver itself.

    Core re-builds, cache-keys and compiles a statement on every call, which costs more than
    SQLite spends writing the rows; these go to the driver's ``execute`` / ``executemany``
    through the same connection and transaction (``Connection.exec_driver_sql``), written in
    the driver's parameter style (``?`` for sqlite3, ``%s`` for psycopg).
    """

    def __init__(self, dialect: Dialect) -> None:
        self._mark = _MARKS[dialect.paramstyle]
        self._named = dialect.paramstyle == "named"
        process = searches.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        #: A timestamp as the column type stores it (SQLite: the text Core writes; others: as is).
        self.stamp: Callable[[datetime], Any] = process or (lambda value: value)
        quote = dialect.identifier_preparer.quote
        self.insert: dict[Table, str] = {
            table: f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({self._marks(len(columns))})"
            for table, columns in _COLUMNS.items()
        }
        self._in_lists: dict[tuple[str, int], str] = {}

    def _marks(self, n: int) -> str:
        return ", ".join(self._mark.format(n=i) for i in range(1, n + 1))

    def in_list(self, head: str, n: int) -> str:
        """``head`` (ending in ``IN``) with a list of ``n`` parameters; cached per size."""
        sql = self._in_lists.get((head, n))
        if sql is None:
            sql = self._in_lists[head, n] = f"{head} ({self._marks(n)})"
        return sql

    def run(
        self, conn: Connection, sql: str, params: tuple[Any, ...] | list[tuple[Any, ...]]
    ) -> CursorResult[*tuple[Any, ...]]:
        """``execute`` one tuple of parameters, or ``executemany`` a list of them."""
        args: Any = params
        if self._named:
            args = [self._by_name(row) for row in params] if isinstance(params, list) else self._by_name(params)
        return conn.exec_driver_sql(sql, args)

    @staticmethod
    def _by_name(row: tuple[Any, ...]) -> dict[str, Any]:
        return {f"p{i}": value for i, value in enumerate(row, start=1)}


#: Column order of the rows the write path builds (tuples, not dicts: the driver takes them as is).
_COLUMNS = {
    searches: ("id", "query", "user_id", "model_version", "source", "event_id", "created_at", "trial_id"),
    impressions: ("search_id", "rank", "item_id", "score", "source", "propensity"),
    selections: ("event_id", "search_id", "item_id", "rank", "created_at"),
}
_LIVE_ITEMS = "SELECT id FROM items WHERE NOT deleted AND id IN"
_PRIOR_EVENTS = "SELECT event_id, id FROM searches WHERE event_id IN"
_SELECTION_SEQS = "SELECT event_id, seq FROM selections WHERE event_id IN"


class FeedbackStore:
    """Catalog and feedback persistence over one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)
        self._sql = _DriverSQL(self.engine.dialect)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ------------------------------------------------------------------ catalog
    def upsert_items(self, rows: Sequence[Item]) -> int:
        """Insert or update items; returns how many changed. One transaction."""
        changed = 0
        stamp = now()
        with self.engine.begin() as conn:
            for chunk in _chunks(rows):
                existing = {
                    r.id: r
                    for r in conn.execute(
                        select(items.c.key, items.c.id, items.c.text, items.c.metadata, items.c.deleted).where(
                            items.c.id.in_([row.id for row in chunk])
                        )
                    )
                }
                new_rows = [row for row in chunk if row.id not in existing]
                if new_rows:
                    conn.execute(
                        insert(items),
                        [
                            {"id": r.id, "text": r.text, "metadata": r.metadata, "deleted": False, "updated_at": stamp}
                            for r in new_rows
                        ],
                    )
                updated: list[str] = []
                for row in chunk:
                    old = existing.get(row.id)
                    if old is None or (not old.deleted and old.text == row.text and old.metadata == row.metadata):
                        continue
                    conn.execute(
                        update(items)
                        .where(items.c.key == old.key)
                        .values(text=row.text, metadata=row.metadata, deleted=False, updated_at=stamp)
                    )
                    updated.append(row.id)
                touched = [row.id for row in new_rows] + updated
                changed += len(touched)
                self._log_changes(conn, touched)
        return changed

    def delete_items(self, ids: Sequence[str]) -> int:
        """Delete items by id (kept as tombstones for feedback history). Unknown ids: nothing deleted."""
        wanted = list(dict.fromkeys(ids))
        with self.engine.begin() as conn:
            live: set[str] = set()
            for chunk in _chunks(wanted):
                live.update(conn.scalars(select(items.c.id).where(items.c.id.in_(chunk), items.c.deleted.is_(False))))
            missing = [i for i in wanted if i not in live]
            if missing:
                raise NotFoundError(
                    f"Cannot delete unknown item id(s) {missing[:10]!r}{' ...' if len(missing) > 10 else ''}; "
                    "nothing was deleted. List items with `embedloop catalog list` or check the ids."
                )
            for chunk in _chunks(wanted):
                conn.execute(update(items).where(items.c.id.in_(chunk)).values(deleted=True, updated_at=now()))
            self._log_changes(conn, wanted)
        return len(wanted)

    def _log_changes(self, conn: Connection, ids: Sequence[str]) -> None:
        for chunk in _chunks(list(ids)):
            keys = conn.scalars(select(items.c.key).where(items.c.id.in_(chunk))).all()
            if keys:
                conn.execute(insert(catalog_changes), [{"item_key": k} for k in keys])

    def catalog_revision(self) -> int:
        """The sequence number of the newest catalog change (0 when empty)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.coalesce(func.max(catalog_changes.c.seq), 0))) or 0)

    def changes_since(self, seq: int) -> tuple[list[CatalogRow], int]:
        """Items changed after change ``seq`` (current state, deletions included) and the newest seq."""
        with self.engine.begin() as conn:
            newest = int(conn.scalar(select(func.coalesce(func.max(catalog_changes.c.seq), 0))) or 0)
            if newest <= seq:
                return [], newest
            keys = select(catalog_changes.c.item_key).where(
                catalog_changes.c.seq > seq, catalog_changes.c.seq <= newest
            )
            rows = conn.execute(
                select(items.c.key, items.c.id, items.c.text, items.c.deleted)
                .where(items.c.key.in_(keys))
                .order_by(items.c.key)
            )
            return [CatalogRow(r.key, r.id, r.text, bool(r.deleted)) for r in rows], newest

    def catalog(self) -> list[CatalogRow]:
        """Every live item, in key order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(items.c.key, items.c.id, items.c.text).where(items.c.deleted.is_(False)).order_by(items.c.key)
            )
            return [CatalogRow(r.key, r.id, r.text) for r in rows]

    def count_items(self) -> int:
        """How many live items the catalog has."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(items.c.deleted.is_(False))) or 0)

    def get_items(self, ids: Sequence[str]) -> dict[str, Item]:
        """Live items by id; unknown ids are left out."""
        found: dict[str, Item] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                rows = conn.execute(
                    select(items.c.id, items.c.text, items.c.metadata).where(
                        items.c.id.in_(chunk), items.c.deleted.is_(False)
                    )
                )
                found.update({r.id: Item(r.id, r.text, r.metadata or {}) for r in rows})
        return found

    # ----------------------------------------------------------------- searches
    def log_search(
        self,
        query: str,
        shown: Sequence[tuple[str, float | None]],
        *,
        model_version: int | None,
        user_id: str | None = None,
        trial_id: int | None = None,
        sources: Sequence[str | None] | None = None,
        propensities: Sequence[float | None] | None = None,
    ) -> str:
        """Record a search and exactly what it showed, in rank order. Returns the search id.

        During a trial, ``trial_id`` tags the search and ``sources`` says which
        model contributed each shown item (``active``, ``candidate``, ``both``);
        with exploration on, ``propensities`` are the chances each item was shown at its rank.
        """
        search_id = new_id()
        origin = sources if sources is not None else [None] * len(shown)
        chance = propensities if propensities is not None else [None] * len(shown)
        with self.engine.begin() as conn:
            self._insert_searches(
                conn,
                [(search_id, query, user_id, model_version, "search", None, self._sql.stamp(now()), trial_id)],
                [
                    (search_id, rank, item_id, score, source, p)
                    for rank, ((item_id, score), source, p) in enumerate(zip(shown, origin, chance, strict=True), 1)
                ],
            )
        return search_id

    def _insert_searches(
        self, conn: Connection, search_rows: list[tuple[Any, ...]], shown_rows: list[tuple[Any, ...]]
    ) -> None:
        """Searches and their impressions (tuples in ``_COLUMNS`` order): one ``executemany`` per table."""
        if search_rows:
            self._sql.run(conn, self._sql.insert[searches], search_rows)
        if shown_rows:
            self._sql.run(conn, self._sql.insert[impressions], shown_rows)

    def _insert_selections(self, conn: Connection, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """Selections (tuples in ``_COLUMNS`` order, event id first); their sequence numbers by event id.

        One ``executemany``, then the numbers are read back by event id (unique), which works
        on every database without relying on ``RETURNING`` order.
        """
        if not rows:
            return {}
        self._sql.run(conn, self._sql.insert[selections], rows)
        seqs: dict[str, int] = {}
        for chunk in _chunks([row[0] for row in rows]):
            found = self._sql.run(conn, self._sql.in_list(_SELECTION_SEQS, len(chunk)), tuple(chunk))
            seqs.update({row[0]: int(row[1]) for row in found})
        return seqs

    def record_selection(self, search_id: str, item_id: str, *, event_id: str | None = None) -> Selection:
        """Log that ``item_id`` was selected from search ``search_id``.

        A repeated ``event_id`` is a no-op that returns the first event with
        ``duplicate=True``. Selecting an item that was not shown is refused.
        """
        event_id = event_id or new_id()
        with self.engine.begin() as conn:
            previous = self._existing_event(conn, event_id, search_id, item_id)
            if previous is not None:
                return previous
            exists = conn.scalar(select(searches.c.id).where(searches.c.id == search_id))
            if exists is None:
                raise NotFoundError(
                    f"Unknown search_id {search_id!r}. Use the search_id returned by search(), "
                    "or record_feedback() for searches done elsewhere."
                )
            rank = conn.scalar(
                select(func.min(impressions.c.rank)).where(
                    impressions.c.search_id == search_id, impressions.c.item_id == item_id
                )
            )
            if rank is None:
                raise NotShownError(
                    f"Item {item_id!r} was not shown for search {search_id!r}; only shown items can be selected. "
                    "For a result shown elsewhere, use record_feedback(query, shown=[...], selected=[...]).",
                    field="item_id",
                )
            try:
                seqs = self._insert_selections(conn, [(event_id, search_id, item_id, rank, self._sql.stamp(now()))])
            except IntegrityError:  # a concurrent writer used the same event id first
                conn.rollback()
                return self._duplicate(event_id, search_id, item_id)
        return Selection(event_id, search_id, item_id, rank, seqs[event_id])

    def _duplicate(self, event_id: str, search_id: str, item_id: str) -> Selection:
        with self.engine.begin() as conn:
            found = self._existing_event(conn, event_id, search_id, item_id)
        assert found is not None
        return found

    @staticmethod
    def _existing_event(conn: Connection, event_id: str, search_id: str, item_id: str) -> Selection | None:
        row = conn.execute(select(selections).where(selections.c.event_id == event_id)).first()
        if row is None:
            return None
        if row.search_id != search_id or row.item_id != item_id:
            raise InvalidInputError(
                f"event_id {event_id!r} was already used for another selection "
                f"(search {row.search_id!r}, item {row.item_id!r}); use a new event id.",
                field="event_id",
            )
        return Selection(row.event_id, row.search_id, row.item_id, row.rank, row.seq, duplicate=True)

    def record_feedback(self, events: Sequence[FeedbackEvent]) -> list[tuple[str, list[Selection]]]:
        """Log searches done elsewhere with their selections, all in one transaction.

        Every shown id must be a known item and every selected id must be among
        the shown ones; otherwise nothing is stored. An event whose ``event_id``
        was seen before is a no-op returning the first search's id. Each table
        gets one ``executemany`` for the whole batch (a batch of one included).
        """
        try:
            return self._record_feedback(events)
        except IntegrityError:
            # PostgreSQL: a concurrent writer committed one of these event ids after our check.
            # Once more: its events are now replays. (SQLite's BEGIN IMMEDIATE rules this out.)
            return self._record_feedback(events)

    def _record_feedback(self, events: Sequence[FeedbackEvent]) -> list[tuple[str, list[Selection]]]:
        sql = self._sql
        stamp = sql.stamp(now())
        with self.engine.begin() as conn:
            shown_ids = list({i for e in events for i in e.shown})
            known: set[str] = set()
            for chunk in _chunks(shown_ids):
                rows = sql.run(conn, sql.in_list(_LIVE_ITEMS, len(chunk)), tuple(chunk))
                known.update(r[0] for r in rows)
            if len(known) < len(shown_ids):
                missing = sorted(set(shown_ids) - known)
                raise NotFoundError(
                    f"Unknown item id(s) in shown: {missing[:10]!r}; add them to the catalog first "
                    "(add_items / `embedloop catalog load`; `embedloop catalog list` shows the known ids). "
                    "Nothing was stored."
                )
            event_ids = [e.event_id for e in events if e.event_id is not None]
            prior: dict[str, str] = {}
            for chunk in _chunks(event_ids):
                found = sql.run(conn, sql.in_list(_PRIOR_EVENTS, len(chunk)), tuple(chunk))
                prior.update({row[0]: row[1] for row in found})
            search_rows: list[tuple[Any, ...]] = []
            shown_rows: list[tuple[Any, ...]] = []
            picked_rows: list[tuple[Any, ...]] = []
            plan: list[tuple[str, bool]] = []  # (search id, is a replay)
            for event in events:
                if event.event_id is not None and event.event_id in prior:
                    plan.append((prior[event.event_id], True))
                    continue
                search_id = new_id()
                if event.event_id is not None:
                    prior[event.event_id] = search_id  # a repeat later in this batch is a replay too
                plan.append((search_id, False))
                search_rows.append(
                    (search_id, event.query, event.user_id, None, "external", event.event_id, stamp, None)
                )
                shown_rows.extend(
                    (search_id, rank, item_id, None, None, None) for rank, item_id in enumerate(event.shown, 1)
                )
                picked_rows.extend(
                    (
                        f"{event.event_id}:{item_id}" if event.event_id else new_id(),
                        search_id,
                        item_id,
                        event.shown.index(item_id) + 1,
                        stamp,
                    )
                    for item_id in dict.fromkeys(event.selected)
                )
            self._insert_searches(conn, search_rows, shown_rows)
            seqs = self._insert_selections(conn, picked_rows)
            by_search: dict[str, list[Selection]] = {}
            for event_id, search_id, item_id, rank, _ in picked_rows:
                by_search.setdefault(search_id, []).append(
                    Selection(event_id, search_id, item_id, rank, seqs[event_id])
                )
            earlier = list(dict.fromkeys(sid for sid, replay in plan if replay and sid not in by_search))
            for chunk in _chunks(earlier):
                for r in conn.execute(
                    select(selections).where(selections.c.search_id.in_(chunk)).order_by(selections.c.seq)
                ):
                    by_search.setdefault(r.search_id, []).append(
                        Selection(r.event_id, r.search_id, r.item_id, r.rank, r.seq)
                    )
        return [
            (sid, [replace(s, duplicate=True) for s in by_search.get(sid, [])] if replay else by_search.get(sid, []))
            for sid, replay in plan
        ]

    # ----------------------------------------------------------------- reading
    def max_selection_seq(self) -> int:
        """The newest feedback event's sequence number (0 when none)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.coalesce(func.max(selections.c.seq), 0))) or 0)

    def count_selections(self, after_seq: int = 0) -> int:
        """How many feedback events arrived after event ``after_seq``."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(selections.c.seq > after_seq)) or 0)

    def feedback_sessions(self, upto_seq: int | None = None) -> list[FeedbackSession]:
        """Every search with at least one selection (up to ``upto_seq``), oldest first (by ``last_seq``).

        Every field of each :class:`~embedloop.types.FeedbackSession` is filled.
        """
        cond = [] if upto_seq is None else [selections.c.seq <= upto_seq]
        picked: dict[str, list[tuple[str, int | None, int]]] = {}
        sessions: dict[str, FeedbackSession] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(selections.c.search_id, selections.c.item_id, selections.c.rank, selections.c.seq)
                .where(*cond)
                .order_by(selections.c.seq)
            )
            for r in rows:
                picked.setdefault(r.search_id, []).append((r.item_id, r.rank, r.seq))
            for chunk in _chunks(list(picked)):
                for r in conn.execute(select(searches).where(searches.c.id.in_(chunk))):
                    chosen = picked[r.id]
                    sessions[r.id] = FeedbackSession(
                        search_id=r.id,
                        query=r.query,
                        shown=[],
                        selected=chosen,
                        user_id=r.user_id,
                        created_at=r.created_at,
                        model_version=r.model_version,
                        last_seq=max(seq for _item, _rank, seq in chosen),
                    )
                shown = conn.execute(
                    select(impressions).where(impressions.c.search_id.in_(chunk)).order_by(impressions.c.rank)
                )
                for r in shown:
                    sessions[r.search_id].shown.append(r.item_id)
                    sessions[r.search_id].scores.append(r.score)
        return sorted(sessions.values(), key=lambda s: s.last_seq)

    def search_log(self, limit: int | None = None) -> list[FeedbackSession]:
        """Every search with what it showed and what was selected, also searches without a selection.

        The newest ``limit`` searches (all when None), oldest first. Each session has ``search_id``,
        ``query``, ``shown``, ``selected`` (empty when nothing was picked) and ``last_seq``; the other
        fields keep their defaults. The click model reads it: a shown result that nobody clicked is
        evidence too.
        """
        out: dict[str, FeedbackSession] = {}
        with self.engine.connect() as conn:
            query = select(searches.c.id, searches.c.query).order_by(searches.c.created_at.desc(), searches.c.id)
            if limit is not None:
                query = query.limit(limit)
            for r in conn.execute(query):
                out[r.id] = FeedbackSession(search_id=r.id, query=r.query, shown=[], selected=[])
            ids = list(out)
            for chunk in _chunks(ids):
                shown = conn.execute(
                    select(impressions.c.search_id, impressions.c.item_id)
                    .where(impressions.c.search_id.in_(chunk))
                    .order_by(impressions.c.search_id, impressions.c.rank)
                )
                for row in shown:
                    out[row.search_id].shown.append(row.item_id)
                picked = conn.execute(
                    select(selections.c.search_id, selections.c.item_id, selections.c.rank, selections.c.seq)
                    .where(selections.c.search_id.in_(chunk))
                    .order_by(selections.c.seq)
                )
                for sel in picked:
                    session = out[sel.search_id]
                    session.selected.append((sel.item_id, sel.rank, sel.seq))
                    session.last_seq = max(session.last_seq, sel.seq)
        return list(reversed(out.values()))

    def export_feedback(self, fp: IO[str], upto_seq: int | None = None) -> int:
        """Write one JSON line per search with selections (:meth:`feedback_records`); returns the line count."""
        count = 0
        for record in self.feedback_records(upto_seq):
            fp.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count

    def feedback_records(self, upto_seq: int | None = None) -> list[dict[str, Any]]:
        """One JSON-ready record per search with selections, oldest first (the export's format)."""
        return [
            {
                "search_id": s.search_id,
                "query": s.query,
                "user_id": s.user_id,
                "created_at": s.created_at.isoformat() if s.created_at else None,
                "model_version": s.model_version,
                "shown": [
                    {"item_id": i, "rank": rank, "score": score}
                    for rank, (i, score) in enumerate(zip(s.shown, s.scores, strict=True), start=1)
                ],
                "selected": [{"item_id": i, "rank": rank, "seq": seq} for i, rank, seq in s.selected],
            }
            for s in self.feedback_sessions(upto_seq)
        ]

    def stats(self) -> dict[str, Any]:
        """Counts and simple engagement figures."""
        with self.engine.connect() as conn:
            n_searches = int(conn.scalar(select(func.count()).select_from(searches)) or 0)
            n_impr = int(conn.scalar(select(func.count()).select_from(impressions)) or 0)
            n_sel = int(conn.scalar(select(func.count()).select_from(selections)) or 0)
            with_sel = int(conn.scalar(select(func.count(func.distinct(selections.c.search_id)))) or 0)
            mean_rank = conn.scalar(select(func.avg(selections.c.rank)))
            n_items = int(conn.scalar(select(func.count()).where(items.c.deleted.is_(False))) or 0)
        return {
            "items": n_items,
            "searches": n_searches,
            "impressions": n_impr,
            "selections": n_sel,
            "searches_with_selection": with_sel,
            "selection_rate": (with_sel / n_searches) if n_searches else 0.0,
            "mean_selected_rank": float(mean_rank) if mean_rank is not None else None,
        }

    def iter_item_texts(self, ids: Iterable[str]) -> dict[str, str]:
        """Texts of items by id, tombstoned ones included (feedback may name deleted items)."""
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                out.update(dict(conn.execute(select(items.c.id, items.c.text).where(items.c.id.in_(chunk))).all()))
        return out
