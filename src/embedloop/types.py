"""Plain result types returned by the public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
