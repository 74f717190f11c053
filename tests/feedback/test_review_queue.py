"""The review queue through the public API, on a small catalog with the deterministic hashing encoder."""

from __future__ import annotations

import io
import json

import pytest

from embedloop import EmbedLoop, InvalidInputError, NotFoundError
from embedloop.feedback.click_model import ClickModel
from embedloop.feedback.review import (
    MAX_SAMPLE_QUESTIONS,
    REASON_WEIGHTS,
    SAMPLE_WEIGHT,
    QueryTraffic,
    label_change_chance,
    priority_of,
    propose,
    reason_scores,
    sample_draw,
)

ITEMS = [
    {"id": "A1", "text": "alpha fund one"},
    {"id": "A2", "text": "alpha fund two"},
    {"id": "B", "text": "beta corporation shares"},
    {"id": "C", "text": "gamma holdings"},
    {"id": "D", "text": "delta airlines"},
    {"id": "E", "text": "epsilon energy"},
    {"id": "F", "text": "zeta foods"},
    {"id": "G", "text": "eta gold mining"},
]


@pytest.fixture
def loop(fake_loop: EmbedLoop) -> EmbedLoop:
    fake_loop.add_items(ITEMS)
    return fake_loop


def stored(loop: EmbedLoop) -> tuple[int, list[dict]]:
    """(judgments in the store, every question with its status)."""
    from embedloop.feedback.persistence import questions

    return loop.status()["review"]["judgments"], questions(loop.store)


def test_a_tied_query_is_asked_before_a_clear_one(loop: EmbedLoop):
    clear = loop.search("beta corporation", k=3)
    tied = loop.search("alpha fund", k=3)
    assert tied.hits[0].score == tied.hits[1].score  # A1 and A2 tie exactly under the hashing encoder
    assert clear.hits[0].score - clear.hits[1].score > 0.5
    queue = loop.review_queue(limit=10)
    assert [q["query"] for q in queue] == ["alpha fund", "beta corporation"]
    first = queue[0]
    assert set(first) >= {"review_id", "query", "candidates", "reason"}
    assert first["reason"] == "tied_scores"
    assert {c["item_id"] for c in first["candidates"][:2]} == {"A1", "A2"}
    assert all(set(c) == {"item_id", "text", "score"} for c in first["candidates"])
    assert queue[1]["reason"] == "no_selection"
    assert loop.status()["review"] == {"open_questions": 2, "judgments": 0}
    assert len(loop.review_queue(limit=1)) == 1


def test_an_answered_question_leaves_the_queue_and_is_not_asked_again(loop: EmbedLoop):
    loop.search("alpha fund", k=3)
    (question,) = loop.review_queue()
    result = loop.answer_review(question["review_id"], selected=["A1"], rejected=["A2"], reviewer="ann")
    assert result["duplicate"] is False
    assert {(j["item_id"], j["relevant"], j["reviewer"]) for j in result["judgments"]} == {
        ("A1", True, "ann"),
        ("A2", False, "ann"),
    }
    loop.search("alpha fund", k=3)  # more traffic for the same query
    assert loop.review_queue() == []
    assert loop.status()["review"] == {"open_questions": 0, "judgments": 2}


def test_an_answer_is_idempotent(loop: EmbedLoop):
    loop.search("alpha fund", k=3)
    (question,) = loop.review_queue()
    first = loop.answer_review(question["review_id"], selected=["A2"])
    again = loop.answer_review(question["review_id"], selected=["A2"])
    assert again["duplicate"] is True
    assert [j["judgment_id"] for j in again["judgments"]] == [j["judgment_id"] for j in first["judgments"]]
    assert stored(loop)[0] == 1
    with pytest.raises(InvalidInputError, match="already answered"):
        loop.answer_review(question["review_id"], selected=["A1"])
    assert stored(loop)[0] == 1


@pytest.mark.parametrize(
    ("review_id", "selected", "rejected", "error", "match"),
    [
        ("nope", ["A1"], [], NotFoundError, "Unknown review_id"),
        (None, [], [], InvalidInputError, "empty"),
        (None, ["OUTSIDER"], [], InvalidInputError, "not candidates"),
        (None, ["A1"], ["ZZZ"], InvalidInputError, "not candidates"),
        (None, ["A1"], ["A1"], InvalidInputError, "both selected and rejected"),
        (None, "A1", [], InvalidInputError, "list of ids"),
    ],
)
def test_bad_answers_store_nothing(loop: EmbedLoop, review_id, selected, rejected, error, match):
    loop.search("alpha fund", k=2)
    (question,) = loop.review_queue()
    outsiders = [i["id"] for i in ITEMS if i["id"] not in {c["item_id"] for c in question["candidates"]}]
    selected = [outsiders[0] if i == "OUTSIDER" else i for i in selected] if isinstance(selected, list) else selected
    with pytest.raises(error, match=match):
        loop.answer_review(review_id or question["review_id"], selected=selected, rejected=rejected)
    count, rows = stored(loop)
    assert count == 0
    assert [q["status"] for q in rows] == ["open"]


def test_record_judgment_lists_exports_and_closes_fully_judged_questions(loop: EmbedLoop):
    loop.search("alpha fund", k=2)
    (question,) = loop.review_queue()
    ids = [c["item_id"] for c in question["candidates"]]
    for item in ids:
        loop.record_judgment("Alpha  FUND", item, relevant=item == "A1", reviewer="bob")
    assert loop.record_judgment("alpha fund", "A1", True, reviewer="bob")["duplicate"] is True
    assert loop.review_queue() == []  # every candidate judged: the question expired
    _, rows = stored(loop)
    assert rows[0]["status"] == "expired" and rows[0]["closed_because"] == "every candidate has been judged"
    listed = loop.judgments("alpha fund")
    assert len(listed) == len(ids) and listed[0]["judgment_id"] > listed[-1]["judgment_id"]
    assert loop.judgments(reviewer="nobody") == []
    out = io.StringIO()
    assert loop.export_judgments(out) == len(ids)
    assert [json.loads(line)["item_id"] for line in out.getvalue().splitlines()] == ids
    with pytest.raises(NotFoundError, match="Unknown item_id"):
        loop.record_judgment("alpha fund", "ZZZ", True)
    with pytest.raises(InvalidInputError, match="relevant"):
        loop.record_judgment("alpha fund", "A1", "yes")  # type: ignore[arg-type]


def test_questions_age_out_when_a_candidate_changes(loop: EmbedLoop):
    loop.search("alpha fund", k=2)
    (question,) = loop.review_queue()
    loop.add_items([{"id": "A2", "text": "alpha fund two (renamed)"}])
    queue = loop.review_queue()
    _, rows = stored(loop)
    old = next(q for q in rows if q["review_id"] == question["review_id"])
    assert old["status"] == "expired" and "changed in the catalog" in old["closed_because"]
    assert question["review_id"] not in {q["review_id"] for q in queue}
    # an expired question can still be answered: the label stays true
    assert loop.answer_review(question["review_id"], selected=["A1"])["duplicate"] is False


def test_conflicting_clicks_and_disagreement_scores():
    t = QueryTraffic("q", "q", searches=4, with_selection=4)
    t.picks.update({"A": 2, "B": 2})
    t.selection_ranks = [1, 2, 1, 2]
    active = [("A", 0.9), ("B", 0.5), ("C", 0.4)]
    clicks = ClickModel(examination=[1.0, 0.5], prior=[0.6, 0.3], eps1=0.8, eps0=0.1)
    clicks.posterior = {("q", "A"): 0.95, ("q", "B"): 0.5}
    scores = reason_scores(t, active, other=[("C", 0.8), ("B", 0.7), ("D", 0.1)], clicks=clicks)
    assert scores["conflicting_clicks"] == (1.0, ["A", "B"])
    assert scores["model_disagreement"][0] == pytest.approx(0.5 + 0.5 * (1 - 2 / 3))
    assert scores["model_disagreement"][1][:2] == ["A", "C"]
    # the click model is unsure about B (posterior 1/2): B is asked about first
    assert scores["click_uncertain"] == (pytest.approx(1.0), ["B", "A", "A", "B", "C"])
    assert "click_uncertain" not in reason_scores(t, active)  # no click model, no such reason
    priority, reason = priority_of(scores, searches=4)
    assert reason == "conflicting_clicks"
    assert priority > REASON_WEIGHTS["conflicting_clicks"]


def test_the_sample_floor_asks_about_any_query_once_the_reasons_are_weak():
    # a clear query: one confident pick at rank 1, no tie -> only the random draw makes it a question
    clear = QueryTraffic("clear", "clear", searches=1, with_selection=1)
    clear.picks.update({"A": 1})
    active = [("A", 0.9), ("B", 0.5), ("C", 0.4)]
    scores = reason_scores(clear, active)
    assert set(scores) == {"tied_scores", "sample"} and scores["tied_scores"][0] == 0.0
    assert scores["sample"] == (sample_draw("clear"), ["A", "B", "C"])
    assert priority_of(scores, searches=1) == (pytest.approx(SAMPLE_WEIGHT * sample_draw("clear")), "sample")
    # the floor is never added to a reason: a tie above it keeps its own priority, one below it is replaced
    tie = {"tied_scores": (0.9, ["A", "B"]), "sample": (0.99, ["A", "B", "C"])}
    assert priority_of(tie, searches=1) == (pytest.approx(0.9), "tied_scores")
    weak = {"click_uncertain": (0.1, ["A"]), "sample": (0.99, ["A", "B", "C"])}
    assert priority_of(weak, searches=1) == (pytest.approx(SAMPLE_WEIGHT * 0.99), "sample")
    # draws are stable and spread over [0, 1)
    draws = [sample_draw(f"query {i}") for i in range(2000)]
    assert draws[:5] == [sample_draw(f"query {i}") for i in range(5)]
    assert 0.0 <= min(draws) < 0.05 and 0.95 < max(draws) < 1.0 and abs(sum(draws) / len(draws) - 0.5) < 0.03
    # one refresh offers at most MAX_SAMPLE_QUESTIONS of them, the highest priorities; reasoned ones all stay
    traffic = {f"q{i}": QueryTraffic(f"q{i}", f"q{i}", searches=1, with_selection=1) for i in range(150)}
    for t in traffic.values():
        t.picks.update({"A": 1})
    ranked = {k: active for k in traffic} | {"q0": [("A", 0.9), ("B", 0.9), ("C", 0.4)]}
    proposals = propose(traffic, ranked, None, judged={})
    samples = [p for p in proposals if p.reason == "sample"]
    assert [p.query for p in proposals if p.reason != "sample"] == ["q0"]
    assert len(samples) == MAX_SAMPLE_QUESTIONS
    left_out = [SAMPLE_WEIGHT * sample_draw(k) for k in traffic if k not in {p.query for p in proposals}]
    assert len(left_out) == 149 - MAX_SAMPLE_QUESTIONS
    assert min(p.priority for p in samples) >= max(left_out) - 1e-4  # priorities are rounded to 4 digits
    assert "sample" not in proposals[0].reasons and "sample" in samples[0].reasons


def test_open_sample_questions_stay_bounded_across_refreshes(loop: EmbedLoop, monkeypatch):
    from embedloop.feedback import review

    monkeypatch.setattr(review, "MAX_SAMPLE_QUESTIONS", 2)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]

    def search_and_pick(batch: list[str]) -> None:
        for word in batch:
            result = loop.search(f"{word} shares", k=4)
            loop.record_selection(result.search_id, result.hits[0].item_id)

    def open_samples() -> list[dict]:
        return [q for q in loop.review_queue(limit=100) if q["reason"] == "sample"]

    search_and_pick(words[:6])
    first = open_samples()
    assert 1 <= len(first) <= 2
    search_and_pick(words[6:])  # new traffic, new draws: the open sample questions stay at two at most
    assert len(open_samples()) <= 2
    asked = open_samples()[0]
    loop.answer_review(asked["review_id"], selected=[asked["candidates"][0]["item_id"]])
    after = open_samples()
    assert len(after) <= 2 and asked["review_id"] not in {q["review_id"] for q in after}


def test_click_model_weighs_the_chance_that_the_answer_changes_a_label():
    clicks = ClickModel(examination=[1.0, 0.5, 0.3], prior=[0.5, 0.2, 0.1], eps1=0.8, eps0=0.1)
    clicks.posterior = {("sure", "A"): 0.9, ("doubt", "X"): 0.02, ("doubt", "Y"): 0.02, ("sure", "B"): 0.3}
    ranking = [("A", 0.9), ("B", 0.89), ("C", 0.5)]
    # a logged pair has its posterior, an unlogged one the prior of its rank (deepest rank outside the list)
    assert label_change_chance("sure", ["A", "B"], ranking, clicks) == pytest.approx(1 - 0.1 * 0.7)
    assert label_change_chance("sure", ["Z"], ranking, clicks) == pytest.approx(0.1)
    assert label_change_chance("sure", ["A"], ranking, None) == 1.0
    # a clicked item training keeps as a positive changes only if it is irrelevant (1 - 0.9) ...
    assert label_change_chance("sure", ["A", "B"], ranking, clicks, picked={"A"}) == pytest.approx(1 - 0.9 * 0.7)
    # ... one under the cut was dropped from training: it changes if relevant (0.3)
    assert label_change_chance("sure", ["B"], ranking, clicks, picked={"B"}) == pytest.approx(0.3)
    assert label_change_chance("sure", ["B"], ranking, clicks, picked={"B"}, positive_cut=0.0) == pytest.approx(0.7)
    # two queries with the same tie: the one whose candidates the logs say are irrelevant is asked later
    traffic = {k: QueryTraffic(k, k, searches=3) for k in ("sure", "doubt")}
    tied = {"sure": ranking, "doubt": [("X", 0.9), ("Y", 0.89), ("C", 0.2)]}
    proposals = propose(traffic, tied, None, judged={}, clicks=clicks)
    assert [p.query for p in proposals] == ["sure", "doubt"]
    assert proposals[0].reason == proposals[1].reason == "tied_scores"
    assert proposals[0].priority > proposals[1].priority
    # users picked the tie's top item: while training keeps that click (cut 0.5) an answer would mostly
    # confirm it; were the click dropped (cut 0.95), the same answer would add a positive, so it ranks higher
    picked = {"sure": QueryTraffic("sure", "sure", searches=3, with_selection=3)}
    picked["sure"].picks.update({"A": 3})
    kept = propose(picked, tied, None, judged={}, clicks=clicks, positive_cut=0.5)
    dropped = propose(picked, tied, None, judged={}, clicks=clicks, positive_cut=0.95)
    assert kept[0].reasons == dropped[0].reasons
    assert kept[0].priority < dropped[0].priority


def test_compare_with_a_second_ranking(loop: EmbedLoop):
    loop.search("delta airlines", k=3)

    def reversed_ranking(queries, k):  # a "candidate" that ranks the catalog backwards
        return [[("C", 0.9), ("B", 0.8), ("A1", 0.7)] for _ in queries]

    (question,) = loop.review_queue(compare_with=reversed_ranking)
    assert question["reason"] == "model_disagreement"
    assert [c["item_id"] for c in question["candidates"]][:2] == ["D", "C"]


def test_limit_is_checked(loop: EmbedLoop):
    with pytest.raises(InvalidInputError, match="limit"):
        loop.review_queue(limit=0)


def test_an_unchanged_queue_is_not_recomputed(loop: EmbedLoop):
    loop.search("alpha fund", k=2)
    first = loop.review_queue()
    encoder = loop.searcher.state.encoder
    encoded = encoder.texts_encoded
    assert loop.review_queue() == first
    assert encoder.texts_encoded == encoded  # nothing changed: no query was encoded again
    loop.search("beta corporation", k=2)
    assert len(loop.review_queue()) == 2


def test_the_queue_reads_the_click_model_training_uses(settings, caplog):
    """With ``click_model="pbm_scores"`` the queue's click model is given the active model's scores too."""
    import logging

    from embedloop.models.encoder import HashingEncoder

    for click_model, scored in (("pbm", False), ("pbm_scores", True)):
        caplog.clear()
        storage = settings.storage_path / click_model
        with EmbedLoop(settings.replace(storage_path=storage, click_model=click_model), encoder=HashingEncoder()) as lp:
            lp.add_items(ITEMS)
            for query, pick in (("beta corporation", "B"), ("gamma holdings", "C"), ("delta", None)):
                result = lp.search(query, k=4)
                if pick is not None:
                    lp.record_selection(result.search_id, pick)
            with caplog.at_level(logging.INFO, logger="embedloop.feedback.click_model"):
                assert lp.review_queue(limit=10)
        fits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Click model:")]
        assert fits, click_model
        assert ("'score_prior': None" not in fits[-1]) is scored, fits[-1]


def test_the_queue_reads_which_clicks_training_keeps(settings):
    """``click_min_relevance`` reaches the label-change chance: a pick kept as a positive is asked about less."""
    from embedloop.models.encoder import HashingEncoder

    priorities = {}
    for cut in (0.01, 0.99):  # nearly every pick kept as a positive vs nearly none
        storage = settings.storage_path / f"cut{cut}"
        changed = settings.replace(storage_path=storage, click_model="pbm", click_min_relevance=cut)
        with EmbedLoop(changed, encoder=HashingEncoder()) as lp:
            lp.add_items(ITEMS)
            for query, pick in (("beta corporation", "B"), ("gamma holdings", "C"), ("delta", None)):
                result = lp.search(query, k=4)
                if pick is not None:
                    lp.record_selection(result.search_id, pick)
            priorities[cut] = {q["query"]: q["priority"] for q in lp.review_queue(limit=10)}
    assert priorities[0.01]["delta"] == priorities[0.99]["delta"]  # nothing picked: the cut does not matter
    picked = [q for q in ("beta corporation", "gamma holdings") if q in priorities[0.01]]
    assert picked and all(priorities[0.01][q] != priorities[0.99][q] for q in picked)
