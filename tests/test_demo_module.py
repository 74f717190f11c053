"""The demo's helpers (the full demo is too slow for tests; it is a script users run)."""

from __future__ import annotations

from click.testing import CliRunner

from embedloop import EmbedLoop, Settings
from embedloop.catalog.demo import iter_demo_catalog
from embedloop.demo import INTENTS, Intent, main, simulate_users, simulated_queries, target_ranks, usable_intents


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_every_intent_targets_a_packaged_security():
    ids = {row["id"] for row in iter_demo_catalog()}
    assert len(INTENTS) >= 12
    assert [i.target for i in INTENTS if i.target not in ids] == []
    assert usable_intents(INTENTS, ids) == list(INTENTS)


def test_usable_intents_drops_missing_targets(caplog):
    kept = usable_intents(INTENTS, ["AAPL", "MSFT"])
    assert [i.target for i in kept] == ["AAPL", "MSFT"]
    assert "Skipping intent SPY" in caplog.text


def test_simulated_queries_cover_every_phrasing_and_exceed_the_threshold():
    n = max(150, Settings().fine_tune_threshold + 50)
    pairs = simulated_queries(INTENTS, n)
    assert len(pairs) == n > Settings().fine_tune_threshold
    targets = {i.target for i in INTENTS}
    assert {t for _q, t in pairs} == targets
    queries = {q for q, _t in pairs}
    assert {p for i in INTENTS for p in i.phrasings} <= queries
    assert len(queries) > sum(len(i.phrasings) for i in INTENTS)  # varied, not only repeated
    assert simulated_queries([], 10) == []
    assert simulated_queries(INTENTS, 20, start=n) == simulated_queries(INTENTS, n + 20)[n:]  # a rerun continues


def test_held_out_phrasings_never_produce_feedback():
    n = 1000
    trained = {_norm(q) for q, _t in simulated_queries(INTENTS, n)}
    held_out = {_norm(q) for i in INTENTS for q in i.held_out}
    assert held_out and not (held_out & trained)


def test_simulate_users_logs_one_selection_per_search(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    intents = [Intent("AAPL", ("Apple Inc stock",), ()), Intent("SPY", ("zzz unrelated words",), ())]
    pairs = simulated_queries(intents, 6)
    counts = simulate_users(fake_loop, pairs, k=2)
    assert counts["events"] == 6
    assert counts["selected_from_results"] + counts["target_not_shown"] == 6
    assert counts["selected_from_results"] >= 3  # "Apple Inc stock" finds AAPL in the top 2
    assert fake_loop.status()["feedback_count"] == 6
    ranks = target_ranks(fake_loop, [("Apple Inc stock", "AAPL"), ("Apple Inc stock", "NOPE")], k=3)
    assert ranks[0] is not None and ranks[0] <= 2
    assert ranks[1] is None


def test_demo_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in ("--storage", "--model", "--epochs", "--limit", "--no-finetune"):
        assert option in result.output
    assert "all-MiniLM-L6-v2" in result.output
