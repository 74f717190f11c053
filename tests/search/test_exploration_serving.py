"""Exploration in serving: the shown list is randomised and every shown item's propensity is logged."""

from __future__ import annotations

from sqlalchemy import select

from embedloop import EmbedLoop
from embedloop.models.encoder import HashingEncoder
from embedloop.store.schema import impressions

ITEMS = [{"id": f"I{i}", "text": f"alpha item{i} beta{i % 7}"} for i in range(60)]


def logged(loop: EmbedLoop, search_id: str) -> list[tuple[str, float | None]]:
    with loop.store.engine.connect() as conn:
        rows = conn.execute(
            select(impressions.c.item_id, impressions.c.propensity)
            .where(impressions.c.search_id == search_id)
            .order_by(impressions.c.rank)
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_exploration_logs_propensities_and_shows_deep_results(settings):
    with EmbedLoop(settings.replace(exploration="both", exploration_rate=1.0), encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        plain = loop.searcher.search("alpha beta3", 50)[1]
        top10 = {loop.searcher.state.items[key][0] for key, _ in plain[:10]}
        deep_seen = False
        for _ in range(20):
            resp = loop.search("alpha beta3", k=10)
            rows = logged(loop, resp.search_id)
            assert len(rows) == 10 and all(p is not None and 0.0 < p <= 1.0 for _, p in rows)
            deep_seen |= any(item not in top10 for item, _ in rows)
        assert deep_seen  # insertion brings results from ranks 11-50 into the list


def test_no_exploration_logs_no_propensity(fake_loop: EmbedLoop):
    fake_loop.add_items(ITEMS)
    resp = fake_loop.search("alpha beta3", k=10)
    assert all(p is None for _, p in logged(fake_loop, resp.search_id))
