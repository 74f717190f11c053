"""Team-draft interleaving: fair, complete, and silent where the two rankings agree."""

from __future__ import annotations

import random
from collections import Counter

from embedloop.search.interleave import ACTIVE, BOTH, CANDIDATE, credit, team_draft


def ranking(*keys: str) -> list[tuple[str, float]]:
    return [(k, 1.0 - i / 100) for i, k in enumerate(keys)]


def test_identical_rankings_credit_nobody():
    a = ranking("a", "b", "c", "d")
    shown = team_draft(a, a, 4, random.Random(0))
    assert [s.key for s in shown] == ["a", "b", "c", "d"]
    assert {s.source for s in shown} == {BOTH}


def test_shared_prefix_then_alternating_teams():
    a = ranking("x", "a1", "a2", "a3", "s")
    c = ranking("x", "c1", "c2", "c3", "s")
    for seed in range(20):
        shown = team_draft(a, c, 5, random.Random(seed))
        assert shown[0].key == "x" and shown[0].source == BOTH
        assert len({s.key for s in shown}) == 5
        teams = Counter(s.source for s in shown[1:])
        assert abs(teams[ACTIVE] - teams[CANDIDATE]) <= 1
        # each team's picks appear in its own ranking's order
        assert [s.key for s in shown if s.source == ACTIVE] == [
            k for k in ("a1", "a2", "a3") if k in {x.key for x in shown}
        ]


def test_an_item_at_the_same_rank_in_both_is_not_credited():
    a = ranking("a", "b", "z", "c")
    c = ranking("b", "a", "z", "d")
    for seed in range(10):
        shown = {s.key: s.source for s in team_draft(a, c, 4, random.Random(seed))}
        if "z" in shown:
            assert shown["z"] == BOTH
        assert shown["a"] != BOTH and shown["b"] != BOTH


def test_team_draft_is_fair_on_the_first_pick():
    a, c = ranking("a", "b"), ranking("b", "a")
    first = Counter(team_draft(a, c, 2, random.Random(seed))[0].source for seed in range(2000))
    assert abs(first[ACTIVE] - first[CANDIDATE]) < 200


def test_short_rankings_fill_from_the_other():
    shown = team_draft(ranking("a"), ranking("b", "c", "d"), 4, random.Random(1))
    assert sorted(s.key for s in shown) == ["a", "b", "c", "d"]


def test_credit():
    assert credit([CANDIDATE, ACTIVE, CANDIDATE]) == 1
    assert credit([ACTIVE]) == -1
    assert credit([BOTH, None]) == 0
