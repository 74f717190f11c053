"""Reading the catalog a page at a time (``embedloop catalog list``), ordered by item id.

Paging is by key (``after`` = the last id of the previous page), so a page
costs the same wherever it is and items added meanwhile are not skipped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from embedloop.errors import InvalidInputError
from embedloop.store.schema import items
from embedloop.store.store import FeedbackStore

#: Most items one page may hold.
MAX_PAGE = 1000


def list_items(
    store: FeedbackStore, *, limit: int = 50, after: str | None = None, with_text: bool = True
) -> dict[str, Any]:
    """One page of live items ordered by id: ``{"items", "next_after", "total"}``.

    ``next_after`` is the id to pass as ``after`` for the next page (``None`` on the last page).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}.", field="limit")
    if after is not None and (not isinstance(after, str) or len(after) > 512):
        raise InvalidInputError(f"after must be an item id (at most 512 characters), got {after!r}.", field="after")
    live = items.c.deleted.is_(False)
    columns = [items.c.id, items.c.metadata, items.c.updated_at] + ([items.c.text] if with_text else [])
    query = select(*columns).where(live)
    if after is not None:
        query = query.where(items.c.id > after)
    query = query.order_by(items.c.id).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = list(conn.execute(query))
        total = int(conn.scalar(select(func.count()).where(live)) or 0)
    page = rows[:limit]
    out = []
    for row in page:
        entry: dict[str, Any] = {"id": row.id, "metadata": row.metadata or {}, "updated_at": str(row.updated_at)}
        if with_text:
            entry["text"] = row.text
        out.append(entry)
    return {"items": out, "next_after": page[-1].id if len(rows) > limit else None, "total": total}
