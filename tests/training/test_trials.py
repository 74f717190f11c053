"""Trials end to end on the real store with deterministic encoders: serving, credit, decision, crashes.

The active model is the hashed bag of words; a *better* candidate ranks every
query's intended item first, a *worse* one ranks at random, an *equal* one is
the active model itself. Simulated users examine rank r with probability 1/r,
select the intended item when they see it (0.9) and another examined result by
mistake (0.1).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import select

from embedloop import EmbedLoop, Settings
from embedloop.errors import TrialError
from embedloop.models.encoder import HashingEncoder
from embedloop.store.schema import searches
from embedloop.store.trials import PROMOTING, claim, open_trial
from embedloop.training.cycle import Candidate
from embedloop.training.trial import begin_trial

N = 24
#: Each intended item I{i} has a decoy D{i} that repeats the query's words: the bag of words ranks the decoy first.
ITEMS = [{"id": f"I{i}", "text": f"code{i} word{i} shared"} for i in range(N)] + [
    {"id": f"D{i}", "text": f"word{i} shared thing decoy{i}"} for i in range(N)
]
#: query -> the item users mean.
INTENT = {f"word{i} shared thing": f"I{i}" for i in range(N)}


class OracleEncoder:
    """Embeds each known query exactly like its intended item: that item always ranks first."""

    def __init__(self) -> None:
        self.inner = HashingEncoder()
        self.texts = {it["id"]: it["text"] for it in ITEMS}  # noqa

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return self.inner.encode([self.texts[INTENT[t]] if t in INTENT else t for t in texts])


class RandomEncoder:
    """Unrelated vectors: a broken model."""

    dimension = 512

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=512) for t in texts]).astype("float32")
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def trial_settings(storage, **extra) -> Settings:
    values = dict(
        storage_path=storage,
        embedding_model="all-MiniLM-L6-v2",
        show_progress=False,
        trial_share=1.0,
        trial_max_searches=800,
        trial_min_effect=0.6,
        torch_threads=1,
    )
    values.update(extra)
    return Settings(**values)


def put_on_trial(loop: EmbedLoop, encoder) -> int:
    """What a cycle does once its candidate passed the pre-check (training replaced by a given encoder)."""
    sv = loop.services()
    state = sv.state
    version = sv.registry.next_version()
    catalog = loop.store.catalog()
    candidate = Candidate(version, encoder, {}, corpus=encoder.encode([r.text for r in catalog]))
    held = SimpleNamespace(catalog=catalog, revision=loop.store.catalog_revision())
    manifest = {
        "parent": state.version,
        "base_model": "test",
        "kind": "trained",
        "mode": "full",
        "doc_generation": version,
    }
    return begin_trial(sv, state, candidate, manifest, held, run_id=None)


def users(loop: EmbedLoop, searches: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    queries = list(INTENT)
    for _ in range(searches):
        if loop.status()["trial"] is None:
            return
        query = rng.choice(queries)
        resp = loop.search(query, k=5)
        for hit in resp.hits:
            if rng.random() < 1.0 / hit.rank:
                if hit.item_id == INTENT[query] and rng.random() < 0.9:
                    loop.record_selection(resp.search_id, hit.item_id)
                elif hit.item_id != INTENT[query] and rng.random() < 0.1:
                    loop.record_selection(resp.search_id, hit.item_id)


@pytest.fixture
def trial_loop(storage):
    with EmbedLoop(trial_settings(storage), encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        yield loop


def test_users_promote_a_better_candidate_without_another_call(trial_loop: EmbedLoop):
    version = put_on_trial(trial_loop, OracleEncoder())
    status = trial_loop.status()["trial"]
    assert status["candidate_version"] == version and status["decision"] == "continue"
    assert [v["version"] for v in trial_loop.versions() if v["on_trial"]] == [version]
    resp = trial_loop.search("word3 shared thing", k=5)
    assert len({h.item_id for h in resp.hits}) == 5  # an interleaved list, no duplicates
    users(trial_loop, 800)
    assert trial_loop.status()["trial"] is None
    assert trial_loop.active_version == version
    last = trial_loop.trials()[0]
    assert last["status"] == "promoted" and last["outcome"]["wins"] > last["outcome"]["losses"]
    manifest = trial_loop.registry.manifest(version)
    assert manifest["status"] == "active" and "trial" in manifest["reasons"][0]
    # after the trial every search is the candidate's own ranking
    assert trial_loop.search("word7 shared thing", k=3).hits[0].item_id == "I7"


def test_users_reject_a_broken_candidate(trial_loop: EmbedLoop):
    version = put_on_trial(trial_loop, RandomEncoder())
    users(trial_loop, 800)
    assert trial_loop.status()["trial"] is None
    assert trial_loop.active_version == 0
    last = trial_loop.trials()[0]
    assert last["status"] == "rejected" and last["outcome"]["losses"] > last["outcome"]["wins"]
    assert trial_loop.registry.manifest(version)["status"] == "rejected"
    assert not trial_loop.searcher.index_dir(version).exists()


def test_an_equal_candidate_is_never_credited_and_the_search_limit_rejects_it(storage):
    with EmbedLoop(trial_settings(storage, trial_max_searches=60), encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        put_on_trial(loop, HashingEncoder())
        users(loop, 200)
        assert loop.status()["trial"] is None and loop.active_version == 0
        last = loop.trials()[0]
        assert last["status"] == "rejected" and last["outcome"]["wins"] == last["outcome"]["losses"] == 0
        assert "without a decision" in last["reason"]


def test_impressions_record_each_shown_items_source(trial_loop: EmbedLoop):
    from sqlalchemy import select

    from embedloop.store.schema import impressions, searches

    trial_id = put_on_trial(trial_loop, OracleEncoder())
    resp = trial_loop.search("word5 shared thing", k=5)
    with trial_loop.store.engine.connect() as conn:
        assert conn.scalar(select(searches.c.trial_id).where(searches.c.id == resp.search_id)) == trial_id
        sources = (
            conn.execute(
                select(impressions.c.source)
                .where(impressions.c.search_id == resp.search_id)
                .order_by(impressions.c.rank)
            )
            .scalars()
            .all()
        )
    assert len(sources) == 5 and set(sources) <= {"active", "candidate", "both"}
    assert "candidate" in sources  # the oracle disagrees with the bag of words on this query


def test_share_of_searches_is_interleaved(storage):
    with EmbedLoop(trial_settings(storage, trial_share=0.3), encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        put_on_trial(loop, OracleEncoder())
        for i in range(200):
            loop.search(f"word{i % N} shared thing", k=5)
        searches = loop.status()["trial"]["searches"]
        assert 35 <= searches <= 90  # 30 % of 200, binomial spread


def test_stop_rollback_and_fine_tune_during_a_trial(trial_loop: EmbedLoop):
    put_on_trial(trial_loop, OracleEncoder())
    skipped = trial_loop.fine_tune(force=True)
    assert skipped["status"] == "skipped" and "on trial" in skipped["reasons"][0]
    assert trial_loop.status()["should_fine_tune"] is False
    stopped = trial_loop.stop_trial("testing")
    assert stopped["status"] == "stopped"
    assert trial_loop.status()["trial"] is None and trial_loop.active_version == 0
    with pytest.raises(TrialError):
        trial_loop.stop_trial()
    # rollback ends a running trial: the candidate is rejected
    version = put_on_trial(trial_loop, OracleEncoder())
    with pytest.raises(Exception, match="no earlier version"):
        trial_loop.rollback()
    assert trial_loop.status()["trial"] is None
    assert trial_loop.registry.manifest(version)["status"] == "rejected"


def test_the_trial_survives_a_restart_and_a_crash_mid_promotion(storage):
    settings = trial_settings(storage)
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        version = put_on_trial(loop, OracleEncoder())
        for i in range(30):
            resp = loop.search(f"word{i % N} shared thing", k=5)
            loop.record_selection(resp.search_id, resp.hits[0].item_id)
        before = loop.status()["trial"]
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        after = loop.status()["trial"]
        assert {k: after[k] for k in ("searches", "wins", "losses")} == {
            k: before[k] for k in ("searches", "wins", "losses")
        }
        assert loop.searcher.candidate is None  # loading is lazy: the first search loads both models
        loop.search("word1 shared thing", k=5)
        assert loop.searcher.candidate is not None and loop.searcher.candidate.version == version
        # a process claims the promotion and dies before switching
        assert claim(loop.store, after["trial_id"], to=PROMOTING, outcome={}, reason="test")
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        assert loop.active_version == version  # the next open completed the switch
        assert open_trial(loop.store) is None and loop.trials()[0]["status"] == "promoted"
        assert [v["version"] for v in loop.versions() if v["active"]] == [version]


def test_the_decision_is_taken_exactly_once_across_processes(db_url: str, storage):
    settings = trial_settings(storage, database_url=db_url, trial_min_effect=0.6)
    first = EmbedLoop(settings, encoder=HashingEncoder())
    first.add_items(ITEMS)
    put_on_trial(first, OracleEncoder())
    second = EmbedLoop(settings, encoder=HashingEncoder())
    try:
        trial_id = first.status()["trial"]["trial_id"]
        # enough evidence without any check: selections logged straight into the store
        from embedloop.evaluation.trial_test import Verdict
        from embedloop.store.trials import evidence
        from embedloop.training.trial import test_of

        rng = random.Random(3)
        test = test_of(first.trials()[0])
        for i in range(2000):
            resp = first.search(f"word{i % N} shared thing", k=5)
            target = INTENT[resp.query]
            if any(h.item_id == target for h in resp.hits) and rng.random() < 0.9:
                first.store.record_selection(resp.search_id, target)
            if test.decide(evidence(first.store, trial_id)) is Verdict.PROMOTE:
                break
        assert first.status()["trial"]["decision"] == "promote"
        results: list[dict] = []
        barrier = threading.Barrier(4)

        def decide(loop: EmbedLoop) -> None:
            barrier.wait()
            results.append(loop.check_trial())

        threads = [threading.Thread(target=decide, args=(lp,)) for lp in (first, second, first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(bool(r and r["decided_here"]) for r in results) == 1
        assert {r["decision"] for r in results if r} == {"promoted"}
        assert first.trials()[0]["status"] == "promoted"
        assert sum(v["active"] for v in second.versions()) == 1
    finally:
        first.close()
        second.close()


def test_catalog_changes_during_a_trial_reach_both_models(trial_loop: EmbedLoop):
    put_on_trial(trial_loop, OracleEncoder())
    candidate = trial_loop.searcher.candidate
    trial_loop.add_items([{"id": "NEW", "text": "brandnew zebra listing"}])
    active_ids = {item_id for item_id, _ in trial_loop.searcher.state.items.values()}
    candidate_ids = {item_id for item_id, _ in candidate.items.values()}
    assert "NEW" in active_ids and "NEW" in candidate_ids
    assert trial_loop.search("brandnew zebra listing", k=3).hits[0].item_id == "NEW"
    trial_loop.delete_items(["NEW"])
    assert "NEW" not in {item_id for item_id, _ in candidate.items.values()}


def test_the_review_queue_asks_where_the_candidate_on_trial_disagrees(trial_loop: EmbedLoop):
    query = "word3 shared thing"
    shown = trial_loop.search(query, k=5)
    assert shown.hits[0].item_id == "D3"  # the active bag of words puts the decoy first
    put_on_trial(trial_loop, OracleEncoder())
    questions = trial_loop.review_queue(limit=10)
    asked = {q["query"]: q for q in questions}
    assert asked[query]["reason"] == "model_disagreement"
    assert {"D3", "I3"} <= {c["item_id"] for c in asked[query]["candidates"][:2]}


def test_judgments_recorded_during_a_trial_decide_it(trial_loop: EmbedLoop):
    """No clicks at all: answers about where the two models disagree promote the better candidate."""
    trial_loop.record_judgment("word0 shared thing", "I0", True)  # before the trial: not trial evidence
    for query in INTENT:  # traffic the review queue asks about (before the trial: no trial searches)
        trial_loop.search(query, k=5)
    version = put_on_trial(trial_loop, OracleEncoder())
    assert trial_loop.trial_status()["judged_wins"] == 0
    for question in trial_loop.review_queue(limit=N):
        assert trial_loop.status()["trial"] is not None
        intended = INTENT[question["query"]]
        offered = [c["item_id"] for c in question["candidates"]]
        trial_loop.answer_review(
            question["review_id"],
            selected=[i for i in offered if i == intended],
            rejected=[i for i in offered if i != intended],
        )
        if trial_loop.status()["trial"] is None:
            break
    assert trial_loop.active_version == version
    last = trial_loop.trials()[0]
    assert last["status"] == "promoted" and last["outcome"]["searches"] == 0
    assert last["outcome"]["judged_wins"] >= 8 and last["outcome"]["judged_losses"] == 0


def test_judgments_against_the_candidate_reject_it(trial_loop: EmbedLoop):
    put_on_trial(trial_loop, RandomEncoder())
    for query, intended in list(INTENT.items())[:12]:
        trial_loop.record_judgment(query, intended, True)
        if trial_loop.status()["trial"] is None:
            break
    assert trial_loop.active_version == 0
    last = trial_loop.trials()[0]
    assert last["status"] == "rejected" and last["outcome"]["judged_losses"] > last["outcome"]["judged_wins"]


def put_on_trial_trained_on(loop: EmbedLoop, encoder, queries: list[str]) -> int:
    """``put_on_trial`` for a candidate whose training examples had ``queries``."""
    sv = loop.services()
    catalog = loop.store.catalog()
    version = sv.registry.next_version()
    candidate = Candidate(version, encoder, {}, corpus=encoder.encode([r.text for r in catalog]))
    held = SimpleNamespace(catalog=catalog, revision=loop.store.catalog_revision())
    manifest = {"parent": 0, "base_model": "test", "kind": "trained", "mode": "full", "doc_generation": version}
    return begin_trial(sv, sv.state, candidate, manifest, held, run_id=None, trained_queries=queries)


@pytest.mark.parametrize("mode", ["unseen", "all"])
def test_queries_the_candidate_trained_on_are_not_interleaved_with_unseen(storage, mode):
    trained, unseen = "word1 shared thing", "word2 shared thing"
    with EmbedLoop(trial_settings(storage, trial_queries=mode), encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        put_on_trial_trained_on(loop, OracleEncoder(), ["Word1  SHARED thing"])  # normalised like feedback
        assert loop.status()["trial"]["skipped_queries"] == (1 if mode == "unseen" else 0)
        for query in (trained, unseen):
            loop.search(query, k=5)
        with loop.store.engine.connect() as conn:
            tagged = dict(conn.execute(select(searches.c.query, searches.c.trial_id)).all())
    assert tagged[unseen] is not None  # trial_share is 1.0
    assert (tagged[trained] is None) == (mode == "unseen")
