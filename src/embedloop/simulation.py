"""Simulated users: one click model and one session loop shared by the tests, the demo and the benchmarks.

A simulated user searches through the public API (so the impression is logged
by the product), decides what to pick with a :class:`ClickModel`, and records
the picks with ``record_selection``. When the item the user wanted was not
shown, the user can report it as found elsewhere (``record_feedback``).

The click model is position-based (PBM, as in PyClick): the user examines
rank *r* with probability ``(1/r) ** theta`` (position bias), then selects an
examined relevant result with probability ``p_relevant`` and an examined
irrelevant one with ``p_irrelevant`` (noise). ``ClickModel.perfect()`` always
examines everything and picks exactly the relevant results.

>>> rng = random.Random(0)
>>> session = simulate_search(loop, "apple stock", {"AAPL"}, ClickModel(), rng)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: What a user does when no wanted item was shown: nothing, or report it as found elsewhere
#: (``record_feedback`` with the shown ids plus the wanted one appended, or replacing the last shown one).
Unseen = Literal["skip", "append", "replace_last"]


@dataclass(frozen=True)
class ClickModel:
    """Position-based click model: examination ``(1/rank) ** theta``, then selection by relevance."""

    theta: float = 1.0
    p_relevant: float = 0.9
    p_irrelevant: float = 0.1
    #: Probability that a pick is replaced by a uniformly random shown result.
    noise: float = 0.0
    #: Pick one uniformly random shown result instead (a no-signal control).
    uniform_random: bool = False

    @classmethod
    def perfect(cls) -> ClickModel:
        """Examine every result and pick exactly the relevant ones."""
        return cls(theta=0.0, p_relevant=1.0, p_irrelevant=0.0)

    def clicks(self, shown: Sequence[str], relevant: Collection[str], rng: random.Random) -> list[str]:
        """The shown ids this user picks, in rank order, without repeats."""
        picks: list[str] = []
        if self.uniform_random:
            if shown:
                picks.append(rng.choice(list(shown)))
        else:
            for rank, item in enumerate(shown, start=1):
                # one draw to examine and one to select, always: a seed gives the same sessions whatever the settings
                if rng.random() >= (1.0 / rank) ** self.theta:
                    continue  # not examined
                p = self.p_relevant if item in relevant else self.p_irrelevant
                if rng.random() < p:
                    picks.append(item)
            if self.noise > 0:
                picks = [rng.choice(list(shown)) if rng.random() < self.noise else item for item in picks]
        return list(dict.fromkeys(picks))


@dataclass
class SimulatedSearch:
    """What one simulated session did."""

    query: str
    search_id: str
    shown: list[str]
    picks: list[str] = field(default_factory=list)
    #: Wanted ids reported as found elsewhere (``record_feedback``), when none was shown.
    reported: list[str] = field(default_factory=list)


def simulate_search(
    loop: Any,
    query: str,
    relevant: Collection[str],
    model: ClickModel,
    rng: random.Random,
    *,
    k: int = 10,
    user_id: str | None = None,
    unseen: Unseen = "skip",
) -> SimulatedSearch:
    """Search ``query`` through ``loop``, pick with ``model``, record the picks; see :data:`Unseen`."""
    resp = loop.search(query, k=k, user_id=user_id)
    shown = [h.item_id for h in resp.hits]
    session = SimulatedSearch(query, resp.search_id, shown)
    session.picks = model.clicks(shown, relevant, rng)
    for item in session.picks:
        loop.record_selection(resp.search_id, item)
    wanted = [item for item in relevant if item not in shown]
    if not session.picks and wanted and unseen != "skip":
        target = sorted(wanted)[0]
        logged = [*shown, target] if unseen == "append" or not shown else [*shown[:-1], target]
        loop.record_feedback(query, shown=logged, selected=[target], user_id=user_id)
        session.reported.append(target)
    return session
