"""The position-based click model on synthetic clicks with a known truth."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from embedloop.feedback.click_model import Impression, click_log, fit_click_model
from embedloop.types import FeedbackSession

TRUE_EXAMINATION = [1.0 / r for r in range(1, 11)]


def synthetic(seed: int, queries: int = 300, sessions: tuple[int, int] = (1, 6)) -> tuple[list[Impression], dict]:
    """Randomly ordered lists (so every item is seen at several ranks), PBM clicks with 10 % mis-clicks."""
    rng = random.Random(seed)
    imps, truth = [], {}
    for q in range(queries):
        items = [f"d{q}_{i}" for i in range(15)]
        relevant = set(rng.sample(items, 2))
        for d in items:
            truth[(f"q{q}", d)] = d in relevant
        for _ in range(rng.randint(*sessions)):
            for r, d in enumerate(rng.sample(items, 10), start=1):
                examined = rng.random() < TRUE_EXAMINATION[r - 1]
                clicked = examined and rng.random() < (0.9 if d in relevant else 0.1)
                imps.append(Impression(f"q{q}", d, r, clicked))
    return imps, truth


def test_recovers_the_examination_curve():
    imps, _truth = synthetic(0)
    model = fit_click_model(imps)
    assert model.examination[0] == 1.0
    for r in range(2, 11):
        assert model.examination_at(r) == pytest.approx(TRUE_EXAMINATION[r - 1], abs=0.07), r
    # monotone enough to be useful: rank 2 is looked at far more than rank 10
    assert model.examination_at(2) > 3 * model.examination_at(10)
    assert model.eps1 > 5 * model.eps0


def test_posterior_is_close_to_the_one_under_the_true_parameters():
    """P(relevant | impressions) as the fitted model says vs as the true model says (Bayes' rule)."""
    imps, truth = synthetic(1)
    model = fit_click_model(imps)
    loglik: dict = defaultdict(lambda: [math.log(2 / 15), math.log(13 / 15)])  # 2 of 15 items are relevant
    for i in imps:
        for j, eps in enumerate((0.9, 0.1)):
            p = TRUE_EXAMINATION[i.rank - 1] * eps
            loglik[(i.query, i.item)][j] += math.log(p if i.clicked else 1 - p)
    true_post = {k: 1 / (1 + math.exp(v[1] - v[0])) for k, v in loglik.items()}
    assert sum(abs(true_post[k] - model.posterior[k]) for k in true_post) / len(true_post) < 0.1
    clicked = {(i.query, i.item) for i in imps if i.clicked}
    rel = [model.posterior[k] for k in clicked if truth[k]]
    irr = [model.posterior[k] for k in clicked if not truth[k]]
    assert sum(rel) / len(rel) > sum(irr) / len(irr) + 0.1
    assert model.eps1 == pytest.approx(0.9, abs=0.1)
    assert model.eps0 == pytest.approx(0.1, abs=0.03)


def test_repeated_rank_one_mis_clicks_get_low_relevance():
    """An irrelevant item always shown first, clicked 10 % of the time over 50 sessions: not relevant.

    The relevant item below it, clicked whenever its rank is examined, is relevant; pooling the sessions
    of one query written three ways is what tells them apart.
    """
    rng = random.Random(3)
    spellings = ["Apple stock", "apple  STOCK", "APPLE stock"]
    sessions = []
    for n in range(50):
        shown = ["APLE", "AAPL", "MSFT", "TSLA"]
        selected = []
        if rng.random() < 0.1:
            selected.append(("APLE", 1, n))
        if rng.random() < 0.5 * 0.9:
            selected.append(("AAPL", 2, n))
        sessions.append(FeedbackSession(f"s{n}", spellings[n % 3], shown, selected))
    # other queries give the model the usual rank-1 behaviour
    for q in range(40):
        shown = [f"x{q}_{i}" for i in range(4)]
        sessions.append(FeedbackSession(f"t{q}", f"q{q}", shown, [(shown[0], 1, 0)] if q % 2 else []))
    model = fit_click_model(click_log(sessions))
    assert model.relevance("apple stock", "APLE") < 0.2
    assert model.relevance("Apple Stock", "AAPL") > 0.9
    assert model.relevance("apple stock", "NEVER-SHOWN") is None


def test_click_log_counts_sessions_without_clicks():
    sessions = [
        FeedbackSession("s1", "A b", ["x", "y"], [("y", 2, 1)]),
        FeedbackSession("s2", "a  B", ["x", "y"], []),
    ]
    log = click_log(sessions)
    assert [(i.query, i.item, i.rank, i.clicked) for i in log] == [
        ("a b", "x", 1, False),
        ("a b", "y", 2, True),
        ("a b", "x", 1, False),
        ("a b", "y", 2, False),
    ]


def test_empty_log_gives_an_empty_model():
    model = fit_click_model([])
    assert model.posterior == {}
    assert model.examination_at(3) == 1.0


def one_session_each(seed: int, queries: int = 600) -> tuple[list[Impression], dict]:
    """One search per query (nothing to pool), lists ranked by a noisy score, PBM clicks with 10 % mis-clicks.

    Relevant items score higher on average, so a click on an item that stands out from its list is more
    likely a relevant one; the rank alone says less (every list has a rank 1).
    """
    rng = random.Random(seed)
    imps, truth = [], {}
    for q in range(queries):
        scored = [
            (rng.gauss(1.2 if i == 0 and rng.random() < 0.7 else 0.0, 0.6), f"d{q}_{i}", i == 0) for i in range(10)
        ]
        scored.sort(reverse=True)
        values = [s for s, _d, _r in scored]
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        for r, (s, d, rel) in enumerate(scored, start=1):
            truth[(f"q{q}", d)] = rel
            clicked = rng.random() < TRUE_EXAMINATION[r - 1] and rng.random() < (0.9 if rel else 0.1)
            imps.append(Impression(f"q{q}", d, r, clicked, (s - mean) / spread))
    return imps, truth


def test_score_feature_tells_lone_mis_clicks_from_relevant_clicks():
    """With one session per query the rank prior cannot separate them; the score prior can."""
    imps, truth = one_session_each(5)
    clicked = [(i.query, i.item) for i in imps if i.clicked]
    with_scores = fit_click_model(imps)
    by_rank = fit_click_model([Impression(i.query, i.item, i.rank, i.clicked) for i in imps])
    assert by_rank.score_prior is None
    assert with_scores.score_prior is not None and with_scores.score_prior[1] > 0.5  # standing out means relevant
    assert with_scores.summary()["score_prior"] == [round(x, 4) for x in with_scores.score_prior]

    def kept(model) -> tuple[int, int]:
        keep = [k for k in clicked if model.posterior[k] >= 0.5]
        return sum(truth[k] for k in keep), sum(not truth[k] for k in keep)

    rel_scores, irr_scores = kept(with_scores)
    rel_rank, irr_rank = kept(by_rank)
    assert irr_rank == sum(not truth[k] for k in clicked)  # by rank alone, a lone click is always kept
    assert irr_scores < 0.8 * irr_rank  # the score prior drops a quarter of the mis-clicks...
    assert rel_scores > 0.9 * rel_rank  # ...and almost no relevant click
    assert rel_scores / (rel_scores + irr_scores) > rel_rank / (rel_rank + irr_rank) + 0.03


def test_repeated_sessions_outweigh_the_score_prior():
    """An item that stands out but is passed over in 30 sessions is not relevant; a low-scored one clicked 20 times is."""
    imps = []
    for _ in range(30):
        imps.append(Impression("q", "loud", 1, False, 2.0))
        imps.append(Impression("q", "quiet", 2, True, -0.5))
    filler, _truth = one_session_each(6, queries=200)
    model = fit_click_model(imps + filler)
    assert model.relevance("q", "loud") < 0.1
    assert model.relevance("q", "quiet") > 0.9


def test_click_log_with_a_scorer_standardises_scores_within_each_list():
    calls = []

    def scorer(queries, ids):
        calls.append((queries, ids))
        table = {"x": 0.9, "y": 0.5, "z": 0.1, "w": float("inf")}  # w: not in the index
        return [[table[i] for i in row] for row in ids]

    sessions = [
        FeedbackSession("s1", "A b", ["x", "y", "z"], [("y", 2, 1)]),
        FeedbackSession("s2", "a  B", ["z", "w", "x"], []),
        FeedbackSession("s3", "lonely", ["x"], []),
    ]
    log = click_log(sessions, scorer)
    assert len(calls) == 1 and sorted(calls[0][0]) == ["a b", "lonely"]  # each distinct query scored once
    first = [i.score for i in log[:3]]
    assert first[0] == pytest.approx(1.2247, abs=1e-3) and first[1] == pytest.approx(0.0, abs=1e-9)
    assert first[2] == pytest.approx(-1.2247, abs=1e-3)
    second = {i.item: i.score for i in log[3:6]}
    assert second["w"] == 0.0 and second["x"] == pytest.approx(1.0) and second["z"] == pytest.approx(-1.0)
    assert log[6].score is None  # one item: nothing to compare it with
    assert all(i.score is None for i in click_log(sessions))
