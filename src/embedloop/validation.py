"""Checks on public-call arguments. Each failure names the field, the value and the fix."""

from __future__ import annotations

from typing import Any

from embedloop.errors import InvalidInputError


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(value: Any, field: str, *, max_length: int) -> str:
    """A non-empty, valid-UTF-8 string of at most ``max_length`` characters, stripped."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string, got {type(value).__name__} {_preview(value)}.", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{field} is not valid UTF-8 text; send UTF-8 encoded text.", field=field) from None
    if "\x00" in value:
        raise InvalidInputError(f"{field} contains a NUL character; remove it.", field=field)
    stripped = value.strip()
    if not stripped:
        raise InvalidInputError(f"{field} is empty; give some text to search for.", field=field)
    if len(stripped) > max_length:
        raise InvalidInputError(
            f"{field} is {len(stripped)} characters long; the limit is {max_length} (EMBEDLOOP_MAX_TEXT_LENGTH).",
            field=field,
        )
    return stripped


def check_id(value: Any, field: str) -> str:
    """A non-empty identifier string of at most 512 characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{field} must be a non-empty string, got {_preview(value)}.", field=field)
    if len(value) > 512 or "\x00" in value:
        raise InvalidInputError(
            f"{field} must be at most 512 characters without NUL, got {_preview(value)}.", field=field
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{field} is not valid UTF-8 text.", field=field) from None
    return value.strip()


def check_k(value: Any, *, max_k: int) -> int:
    """A result count between 1 and ``max_k``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"k must be an integer, got {_preview(value)}.", field="k")
    if value < 1 or value > max_k:
        raise InvalidInputError(f"k={value} is out of range; use 1..{max_k} (EMBEDLOOP_MAX_K).", field="k")
    return value


def check_id_list(value: Any, field: str, *, allow_empty: bool = False) -> list[str]:
    """A list of ids without duplicates."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InvalidInputError(f"{field} must be a list of ids, got {_preview(value)}.", field=field)
    ids = [check_id(v, field) for v in value]
    if not ids and not allow_empty:
        raise InvalidInputError(f"{field} is empty; give at least one id.", field=field)
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidInputError(f"{field} repeats id(s) {dupes[:5]!r}; each id may appear once.", field=field)
    return ids
