"""Paging through the catalog by id (``embedloop catalog list``), on SQLite and PostgreSQL."""

from __future__ import annotations

from embedloop.store import FeedbackStore
from embedloop.store.catalog_pages import list_items
from embedloop.types import Item


def test_pages_cover_every_live_item_once(db_url: str):
    store = FeedbackStore(db_url)
    try:
        store.upsert_items([Item(f"id{n:03d}", f"text {n}", {"n": n}) for n in range(25)])
        store.delete_items(["id004"])
        ids: list[str] = []
        after = None
        while True:
            page = list_items(store, limit=10, after=after)
            assert page["total"] == 24
            ids += [item["id"] for item in page["items"]]
            after = page["next_after"]
            if after is None:
                break
        assert ids == [f"id{n:03d}" for n in range(25) if n != 4]
        first = list_items(store, limit=1)["items"][0]
        assert first == {"id": "id000", "text": "text 0", "metadata": {"n": 0}, "updated_at": first["updated_at"]}
        assert list_items(store, limit=5, after="id999") == {"items": [], "next_after": None, "total": 24}
    finally:
        store.close()
