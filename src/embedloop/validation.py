"""Checks on public-call arguments. Each failure names the field, the value and the fix.

Sizes are checked first, before anything whose cost grows with the input
(encoding, scanning for NUL, checking each list entry), and every list check
is linear, so an oversized request is refused in well under a millisecond of
CPU whatever its size (``bench/rejected_requests.py`` measures it).
"""

from __future__ import annotations

import hashlib
from typing import Any

from embedloop.errors import InvalidInputError

#: Longest identifier (item, search, event, user id).
MAX_ID_LENGTH = 512
#: Most events one ``record_feedback_batch`` call may carry.
MAX_BATCH_EVENTS = 10_000


def _preview(value: Any) -> str:
    if isinstance(value, str | bytes) and len(value) > 60:
        value = value[:60]  # never repr a huge string just to cut it
    text = repr(value) if not isinstance(value, list | tuple | dict) else f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(value: Any, field: str, *, max_length: int, setting: str = "EMBEDLOOP_MAX_TEXT_LENGTH") -> str:
    """A non-empty, valid-UTF-8 string of at most ``max_length`` characters, stripped."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string, got {type(value).__name__} {_preview(value)}.", field=field)
    if len(value) > max_length:
        stripped_length = len(value.strip())
        if stripped_length > max_length:
            raise InvalidInputError(
                f"{field} is {stripped_length} characters long; the limit is {max_length} ({setting}).", field=field
            )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{field} is not valid UTF-8 text; send UTF-8 encoded text.", field=field) from None
    if "\x00" in value:
        raise InvalidInputError(f"{field} contains a NUL character; remove it.", field=field)
    stripped = value.strip()
    if not stripped:
        raise InvalidInputError(f"{field} is empty; give some text to search for.", field=field)
    return stripped


def check_id(value: Any, field: str) -> str:
    """A non-empty identifier string of at most 512 characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a non-empty string, got {_preview(value)}.", field=field)
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidInputError(
            f"{field} must be at most {MAX_ID_LENGTH} characters without NUL, got {_preview(value)}.", field=field
        )
    stripped = value.strip()
    if not stripped:
        raise InvalidInputError(f"{field} must be a non-empty string, got {_preview(value)}.", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{field} is not valid UTF-8 text.", field=field) from None
    return stripped


def check_k(value: Any, *, max_k: int) -> int:
    """A result count between 1 and ``max_k``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"k must be an integer, got {_preview(value)}.", field="k")
    if value < 1 or value > max_k:
        raise InvalidInputError(f"k={value} is out of range; use 1..{max_k} (EMBEDLOOP_MAX_K).", field="k")
    return value


def check_id_list(
    value: Any,
    field: str,
    *,
    allow_empty: bool = False,
    max_items: int | None = None,
    setting: str = "EMBEDLOOP_MAX_K",
) -> list[str]:
    """A list of at most ``max_items`` ids without duplicates (checked in linear time, size first)."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InvalidInputError(f"{field} must be a list of ids, got {_preview(value)}.", field=field)
    if max_items is not None and len(value) > max_items:
        raise InvalidInputError(f"{field} has {len(value)} ids; the limit is {max_items} ({setting}).", field=field)
    ids = [check_id(v, field) for v in value]
    if not ids and not allow_empty:
        raise InvalidInputError(f"{field} is empty; give at least one id.", field=field)
    seen: set[str] = set()
    dupes: list[str] = []
    for item in ids:
        if item in seen:
            if item not in dupes and len(dupes) < 5:
                dupes.append(item)
        else:
            seen.add(item)
    if dupes:
        raise InvalidInputError(f"{field} repeats id(s) {sorted(dupes)!r}; each id may appear once.", field=field)
    return ids


def check_batch_size(count: int, field: str, *, limit: int = MAX_BATCH_EVENTS) -> None:
    """Refuse a batch of more than ``limit`` entries before looking at any of them."""
    if count > limit:
        raise InvalidInputError(f"{field} has {count} entries; send at most {limit} per call.", field=field)


def implicit_event_id(search_id: str, item_id: str) -> str:
    """The event id of a selection logged without one: the same for the same search and item.

    So a repeated ``select`` (a double click, a retried request) is recorded once;
    picking the same result of the same search again adds nothing to learn from.
    """
    digest = hashlib.sha256(f"{search_id}\x00{item_id}".encode()).hexdigest()
    return f"sel-{digest[:40]}"
