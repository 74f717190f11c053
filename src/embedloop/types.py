"""Plain result types returned by the public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Item:
    """A catalog entry: a stable id, the text that is embedded, metadata."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One ranked search result."""

    item_id: str
    text: str
    score: float
    rank: int


@dataclass(frozen=True)
class SearchResponse:
    """Ranked hits and the id to report selections against."""

    search_id: str
    query: str
    hits: list[Hit]
    model_version: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Selection:
    """A logged selection. ``duplicate`` is true when the event id was seen before."""

    event_id: str
    search_id: str
    item_id: str
    rank: int | None
    seq: int
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class FeedbackEvent:
    """A search done elsewhere: the query, what was shown (in order), what was picked."""

    query: str
    shown: list[str]
    selected: list[str]
    user_id: str | None = None
    event_id: str | None = None


@dataclass(slots=True)
class FeedbackSession:
    """One logged search as training and evaluation read it: what was shown, what was picked.

    ``shown`` holds item ids in rank order and ``scores`` their scores (``None`` where none was
    logged, e.g. feedback recorded from elsewhere); ``selected`` holds ``(item_id, rank, seq)`` in
    the order the selections arrived; ``last_seq`` is the newest selection's sequence number (0 when
    none). ``created_at`` and ``model_version`` are the search's; readers fill what they fetch.
    """

    search_id: str
    query: str
    shown: list[str]
    selected: list[tuple[str, int | None, int]]
    user_id: str | None = None
    created_at: datetime | None = None
    model_version: int | None = None
    scores: list[float | None] = field(default_factory=list)
    last_seq: int = 0

    @property
    def selected_ids(self) -> list[str]:
        """The selected item ids, in the order they were selected."""
        return [item for item, _rank, _seq in self.selected]
