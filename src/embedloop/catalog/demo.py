"""Packaged demo catalog of US-listed financial instruments.

The catalog ships as ``data/us_securities.jsonl.gz`` next to this module: one
JSON object per line, ``{"id": ..., "text": ..., "metadata": {...}}``, sorted by
id. ``id`` is the ticker symbol, ``text`` is ``"<SYMBOL> - <security name>"``
(ready to embed) and ``metadata`` holds ``name``, ``exchange``, ``etf`` and,
where known, a sector/industry (equities) or category/fund family (ETFs)
classification.

The file is built by ``scripts/build_demo_catalog.py`` from the NASDAQ Trader
symbol directory and FinanceDatabase (MIT); see ``data/ATTRIBUTION.md``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["DEMO_CATALOG_PATH", "iter_demo_catalog"]

#: Location of the packaged demo catalog (gzip-compressed JSON Lines).
DEMO_CATALOG_PATH: Path = Path(__file__).resolve().parent / "data" / "us_securities.jsonl.gz"


def iter_demo_catalog(limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield the demo catalog rows as ``{"id", "text", "metadata"}`` dicts.

    Rows come in id order. The file is read lazily, so stopping early is cheap.

    Args:
        limit: Yield at most this many rows; ``None`` (the default) yields all.

    Raises:
        ValueError: If ``limit`` is negative.
        FileNotFoundError: If the packaged data file is missing.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if limit == 0:
        return
    count = 0
    with gzip.open(DEMO_CATALOG_PATH, mode="rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            yield {
                "id": row["id"],
                "text": row["text"],
                "metadata": row.get("metadata", {}),
            }
            count += 1
            if limit is not None and count >= limit:
                return
