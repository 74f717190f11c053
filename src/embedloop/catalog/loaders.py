"""Reading catalog rows from CSV, JSONL (optionally gzipped) or Python dicts.

Validation happens before anything is stored: a bad row names its row number
and nothing is loaded.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from embedloop.errors import CatalogError
from embedloop.types import Item

FORMATS = ("csv", "jsonl")


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".tsv"):
        return "csv"
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise CatalogError(f"Cannot tell the format of {str(path)!r}: use a .csv, .jsonl or .ndjson file (optionally .gz).")


def read_catalog_file(
    path: str | Path, *, id_field: str = "id", text_field: str = "text", max_text_length: int = 1_000_000
) -> list[Item]:
    """Read and validate a whole catalog file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CatalogError(f"Catalog file {str(path)!r} does not exist or is not a file.")
    fmt = _format_of(path)
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"Catalog file {str(path)!r} is not UTF-8 text (byte {exc.start}); re-save it as UTF-8."
        ) from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CatalogError(f"Cannot read catalog file {str(path)!r}: {exc}") from None
    rows: list[tuple[int, Any]]
    if fmt == "csv":
        delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
        # The csv module refuses fields over 131,072 characters; let long texts reach the size check below.
        csv.field_size_limit(max(csv.field_size_limit(), 2 * max_text_length + 1))
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
            rows = [(n, row) for n, row in enumerate(reader, start=2)]  # line 1 is the header
        except csv.Error as exc:
            raise CatalogError(f"{path}: malformed CSV: {exc}") from None
        if reader.fieldnames is None or id_field not in reader.fieldnames or text_field not in reader.fieldnames:
            raise CatalogError(
                f"{path}: the header must have columns {id_field!r} and {text_field!r}; found {reader.fieldnames!r}."
            )
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise CatalogError(f"{path}: line {n} is not valid JSON ({exc.msg}); nothing was loaded.") from None
    return validate_items(
        rows, id_field=id_field, text_field=text_field, max_text_length=max_text_length, where=str(path)
    )


def validate_items(
    rows: Iterable[tuple[int, Any]] | Iterable[Mapping[str, Any]],
    *,
    id_field: str = "id",
    text_field: str = "text",
    max_text_length: int = 1_000_000,
    where: str = "items",
) -> list[Item]:
    """Turn raw rows into :class:`Item` s, refusing the whole batch on the first bad row.

    ``rows`` is either dicts (numbered from 1) or ``(row_number, dict)`` pairs.
    Fields other than id and text go to ``metadata`` (a ``metadata`` dict is merged in).
    """
    out: list[Item] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(rows, start=1):
        number, row = entry if isinstance(entry, tuple) else (position, entry)
        label = f"{where}: row {number}"
        if isinstance(row, Item):
            row = {"id": row.id, "text": row.text, "metadata": row.metadata}
            item_id, text = row["id"], row["text"]
        elif not isinstance(row, Mapping):
            raise CatalogError(
                f"{label} is a {type(row).__name__}, expected an object with {id_field!r} and {text_field!r}."
            )
        else:
            item_id, text = row.get(id_field), row.get(text_field)
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            item_id = str(item_id)
        if not isinstance(item_id, str) or not item_id.strip():
            raise CatalogError(
                f"{label} has no {id_field!r} (got {item_id!r}); every item needs a non-empty id. Nothing was loaded."
            )
        item_id = item_id.strip()
        if len(item_id) > 512:
            raise CatalogError(f"{label}: id is {len(item_id)} characters long; the limit is 512. Nothing was loaded.")
        if isinstance(text, str) and len(text) > max_text_length:  # size first
            raise CatalogError(
                f"{label} (id {item_id!r}): text is {len(text)} characters; the limit is {max_text_length} "
                "(EMBEDLOOP_MAX_TEXT_LENGTH). Nothing was loaded."
            )
        if not isinstance(text, str) or not text.strip():
            raise CatalogError(
                f"{label} (id {item_id!r}) has no {text_field!r}; every item needs non-empty text. Nothing was loaded."
            )
        if "\x00" in text or "\x00" in item_id:
            raise CatalogError(f"{label} (id {item_id!r}) contains a NUL character. Nothing was loaded.")
        if item_id in seen:
            raise CatalogError(
                f"{label}: duplicate id {item_id!r} (first seen in row {seen[item_id]}). Ids must be unique. Nothing was loaded."
            )
        seen[item_id] = number
        meta = {k: v for k, v in row.items() if k not in (id_field, text_field, "metadata") and v not in (None, "")}
        extra = row.get("metadata")
        if isinstance(extra, Mapping):
            meta.update(extra)
        elif extra not in (None, ""):
            raise CatalogError(f"{label} (id {item_id!r}): 'metadata' must be an object, got {type(extra).__name__}.")
        try:
            json.dumps(meta)
        except (TypeError, ValueError):
            raise CatalogError(f"{label} (id {item_id!r}): metadata is not JSON-serialisable.") from None
        out.append(Item(item_id, text.strip(), meta))
    return out
