#!/usr/bin/env python3
"""Build the packaged demo catalog of US-listed financial instruments.

Inputs (see the ``SOURCE.md`` file next to each data set):

* ``nasdaqtrader/nasdaqlisted.txt`` and ``nasdaqtrader/otherlisted.txt``: the
  NASDAQ Trader symbol directory (snapshot of 2026-08-07). One output row is
  written per security in either file; the ``File Creation Time`` trailer line
  and test issues (``Test Issue = Y``) are skipped.
* ``financedatabase/equities/*.csv`` and ``financedatabase/etfs/*.csv``:
  FinanceDatabase by Jeroen Bouma (MIT). Used only to enrich rows with a
  classification (equities: sector / industry group / industry; ETFs:
  category group / category / fund family). The long ``summary`` column is
  deliberately not copied.

Output: gzip-compressed JSON Lines, one
``{"id": ..., "text": ..., "metadata": {...}}`` object per line, sorted by id.
The bytes are deterministic (gzip header mtime 0 and no file name), so a
rebuild from the same inputs is byte-identical to the packaged file.

Choice of id
------------
For Nasdaq-listed securities the id is the ``Symbol`` column. For securities
listed elsewhere it is the ``ACT Symbol`` column: the same symbology as
nasdaqlisted's ``Symbol`` (Nasdaq's ACT/order-entry form, e.g. ``BRK.B``,
``ABR$D``, ``AAC.U``), unique across both files (checked at build time).
For joining to FinanceDatabase, the three symbol columns of otherlisted.txt tie
on exact matches (they agree on every common stock and ETF, and none of the 520
rows where they differ matches FinanceDatabase verbatim), but the ACT form
translates unambiguously into FinanceDatabase's own convention, which adds
roughly 400 matches (preferreds, units, warrants, share classes):

=================  ==============  =================
kind               ACT symbol      FinanceDatabase
=================  ==============  =================
preferred series   ``ABR$D``       ``ABR^D``
unit               ``AAC.U``       ``AAC-UN``
warrant            ``ACHR.W``      ``ACHR-WT``
share class        ``BRK.B``       ``BRK/B``
=================  ==============  =================

Rights (``.R``) have no counterpart in FinanceDatabase and are not translated.
The translation is only the join key; the id stays the ACT symbol.

Join guards
-----------
A ticker match alone is not trusted, because tickers are reused:

* FinanceDatabase rows marked ``delisted = True`` are ignored (almost all such
  matches are a different, later issuer on a recycled ticker).
* Equity classifications are not applied to securities that NASDAQ Trader flags
  as ETFs (FinanceDatabase's equity taxonomy gives funds such as a corporate
  bond ETF a "Health Care" sector). ETF records are accepted for non-ETF rows:
  these are ETNs and commodity trusts.
* The two names must share at least one distinctive word (ignoring legal and
  generic words such as "Inc", "ETF", "Trust"; a word matches another when one
  is a prefix of the other and the shared part is at least four letters long,
  so "Marathon" matches "MARA"). This drops stale fund records whose ticker now
  belongs to a different fund.

Text and metadata
-----------------
``text`` is ``"<SYMBOL> - <Security Name>"``. In the security name every
Nasdaq-style `` - `` separator is removed (``Apple Inc. - Common Stock`` ->
``Apple Inc. Common Stock``) and whitespace is collapsed, so the first
`` - `` in ``text`` always separates the symbol from the name. ``metadata``
holds ``name``, ``exchange`` (human-readable listing venue), ``etf`` (bool)
and, where joined, the FinanceDatabase classification; empty values are left
out.

Usage (from the repository root)::

    python scripts/build_demo_catalog.py
    python scripts/build_demo_catalog.py --data-dir ../shared/data \\
        --out src/embedloop/catalog/data/us_securities.jsonl.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

LOG = logging.getLogger("build_demo_catalog")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "src" / "embedloop" / "catalog" / "data" / "us_securities.jsonl.gz"

TRAILER_PREFIX = "File Creation Time"

#: nasdaqlisted.txt ``Market Category`` -> listing tier.
NASDAQ_MARKET_CATEGORIES: dict[str, str] = {
    "Q": "Nasdaq Global Select",
    "G": "Nasdaq Global Market",
    "S": "Nasdaq Capital Market",
}

#: otherlisted.txt ``Exchange`` -> listing exchange.
OTHER_EXCHANGES: dict[str, str] = {
    "N": "NYSE",
    "A": "NYSE American",
    "P": "NYSE Arca",
    "Z": "Cboe BZX",
    "V": "IEX",
    "M": "NYSE Texas",
}

EQUITY_FIELDS: tuple[str, ...] = ("sector", "industry_group", "industry")
ETF_FIELDS: tuple[str, ...] = ("category_group", "category", "family")

#: ACT unit/warrant suffixes -> FinanceDatabase suffixes.
_ACT_SUFFIXES: dict[str, str] = {"U": "-UN", "W": "-WT"}

#: Words too generic to show that two security names belong to the same issuer.
# fmt: off
_GENERIC_WORDS: frozenset[str] = frozenset((
    "a", "an", "and", "of", "the", "for", "to", "in", "on", "by", "de", "la", "le",
    "du", "des", "inc", "incorporated", "corp", "corporation", "co", "company",
    "companies", "ltd", "limited", "plc", "llc", "lp", "sa", "nv", "ag", "se", "ab",
    "asa", "spa", "bv", "holdings", "holding", "group", "trust", "fund", "funds",
    "etf", "etfs", "etn", "etns", "shares", "share", "common", "stock", "class",
    "ordinary", "units", "unit", "warrant", "warrants", "rights", "right",
    "depositary", "american", "ads", "adr", "series", "preferred", "notes", "due",
))
# fmt: on
_MIN_PREFIX = 4
_WORD_RE = re.compile(r"[a-z0-9]+")


def clean_name(raw: str) -> str:
    """Return a security name without Nasdaq-style `` - `` separators.

    ``"Apple Inc. - Common Stock"`` becomes ``"Apple Inc. Common Stock"``; runs of
    whitespace are collapsed and the ends stripped.
    """
    return " ".join(raw.replace(" - ", " ").split())


def fd_join_key(act_symbol: str) -> str:
    """Translate an ACT symbol into FinanceDatabase's symbol convention.

    ``ABR$D`` -> ``ABR^D``, ``AAC.U`` -> ``AAC-UN``, ``ACHR.W`` -> ``ACHR-WT``,
    ``BRK.B`` -> ``BRK/B``. Plain symbols and rights (``.R``) are returned as is.
    """
    if "$" in act_symbol:
        return act_symbol.replace("$", "^")
    root, dot, suffix = act_symbol.partition(".")
    if not dot:
        return act_symbol
    if suffix in _ACT_SUFFIXES:
        return root + _ACT_SUFFIXES[suffix]
    if len(suffix) == 1 and suffix != "R":
        return f"{root}/{suffix}"
    return act_symbol


def _name_words(name: str) -> set[str]:
    return {w for w in _WORD_RE.findall(name.lower()) if len(w) > 1 and w not in _GENERIC_WORDS}


def names_agree(left: str, right: str) -> bool:
    """Return True if two names share a distinctive word (see module docstring)."""
    right_words = _name_words(right)
    for a in _name_words(left):
        for b in right_words:
            if a == b:
                return True
            short, long_ = (a, b) if len(a) <= len(b) else (b, a)
            if len(short) >= _MIN_PREFIX and long_.startswith(short):
                return True
    return False


def read_pipe_file(path: Path) -> Iterator[dict[str, str]]:
    """Yield the data rows of a NASDAQ Trader pipe file, without the trailer."""
    with path.open(newline="", encoding="ascii") as fh:
        reader = csv.DictReader(fh, delimiter="|", quoting=csv.QUOTE_NONE)
        first_column = reader.fieldnames[0] if reader.fieldnames else ""
        for row in reader:
            if row[first_column].startswith(TRAILER_PREFIX):
                continue
            yield row


def load_nasdaqtrader(data_dir: Path) -> list[dict[str, object]]:
    """Load both symbol directory files as ``{id, name, exchange, etf, join_key}``."""
    base = data_dir / "nasdaqtrader"
    rows: list[dict[str, object]] = []
    skipped_tests = 0

    for row in read_pipe_file(base / "nasdaqlisted.txt"):
        if row["Test Issue"] == "Y":
            skipped_tests += 1
            continue
        symbol = row["Symbol"].strip()
        rows.append(
            {
                "id": symbol,
                "name": clean_name(row["Security Name"]),
                "exchange": _lookup(NASDAQ_MARKET_CATEGORIES, row["Market Category"], symbol),
                "etf": row["ETF"] == "Y",
                "join_key": symbol,
            }
        )

    for row in read_pipe_file(base / "otherlisted.txt"):
        if row["Test Issue"] == "Y":
            skipped_tests += 1
            continue
        symbol = row["ACT Symbol"].strip()
        rows.append(
            {
                "id": symbol,
                "name": clean_name(row["Security Name"]),
                "exchange": _lookup(OTHER_EXCHANGES, row["Exchange"], symbol),
                "etf": row["ETF"] == "Y",
                "join_key": fd_join_key(symbol),
            }
        )

    LOG.info("nasdaqtrader: %d securities, %d test issues skipped", len(rows), skipped_tests)
    return rows


def _lookup(table: dict[str, str], code: str, symbol: str) -> str | None:
    value = table.get(code.strip())
    if value is None:
        LOG.warning("%s: unknown exchange code %r, exchange left out", symbol, code)
    return value


def _read_csv_dir(directory: Path) -> Iterable[dict[str, str]]:
    for path in sorted(directory.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)


def load_financedatabase(data_dir: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Map FinanceDatabase symbol -> (kind, record) for non-delisted records.

    ``kind`` is ``"equities"`` or ``"etfs"``; a record holds ``name`` plus the
    classification fields of its kind.
    """
    base = data_dir / "financedatabase"
    records: dict[str, tuple[str, dict[str, str]]] = {}
    for kind, fields in (("equities", EQUITY_FIELDS), ("etfs", ETF_FIELDS)):
        count = 0
        for row in _read_csv_dir(base / kind):
            if (row.get("delisted") or "").strip() == "True":
                continue
            symbol = (row.get("symbol") or "").strip()
            if not symbol:
                continue
            if symbol in records:
                LOG.warning("financedatabase: duplicate symbol %s, first one kept", symbol)
                continue
            record = {"name": (row.get("name") or "").strip()}
            record.update({f: " ".join((row.get(f) or "").split()) for f in fields})
            records[symbol] = (kind, record)
            count += 1
        LOG.info("financedatabase: %d current %s records", count, kind)
    return records


def build_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Return the catalog rows (``id``, ``text``, ``metadata``), sorted by id."""
    securities = load_nasdaqtrader(data_dir)
    fd = load_financedatabase(data_dir)

    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    joined = rejected = 0
    for sec in securities:
        symbol = str(sec["id"])
        if symbol in seen:
            raise ValueError(f"duplicate id {symbol!r} in the symbol directory")
        seen.add(symbol)
        name = str(sec["name"])

        metadata: dict[str, object] = {"name": name}
        if sec["exchange"]:
            metadata["exchange"] = sec["exchange"]
        metadata["etf"] = sec["etf"]

        match = fd.get(str(sec["join_key"]))
        if match is not None:
            kind, record = match
            if kind == "equities" and sec["etf"]:
                match = None
            elif not names_agree(name, record["name"]):
                LOG.debug(
                    "%s: name mismatch %r vs %r, not joined",
                    symbol,
                    name,
                    record["name"],
                )
                match = None
            if match is None:
                rejected += 1
            else:
                joined += 1
                fields = EQUITY_FIELDS if kind == "equities" else ETF_FIELDS
                metadata.update({f: record[f] for f in fields if record[f]})

        out.append({"id": symbol, "text": f"{symbol} - {name}", "metadata": metadata})

    out.sort(key=lambda r: str(r["id"]))
    LOG.info("financedatabase join: %d matched, %d rejected by guards", joined, rejected)
    return out


def encode(rows: Iterable[dict[str, Any]]) -> bytes:
    """Serialise rows as deterministic gzip-compressed JSON Lines."""
    payload = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(payload)
    return buffer.getvalue()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse command-line arguments; relative paths are taken from the repository root."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder holding nasdaqtrader/ and financedatabase/ (default: ../shared/data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output file (default: src/embedloop/catalog/data/us_securities.jsonl.gz)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every rejected join")
    args = parser.parse_args(argv)
    args.data_dir = _from_repo_root(args.data_dir)
    args.out = _from_repo_root(args.out)
    return args


def _from_repo_root(path: Path) -> Path:
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def main(argv: Sequence[str] | None = None) -> int:
    """Build the catalog file; return the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    rows = build_rows(args.data_dir)
    data = encode(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(args.out)

    with_sector = sum(1 for r in rows if "sector" in r["metadata"])
    with_category = sum(1 for r in rows if "category" in r["metadata"])
    LOG.info(
        "wrote %s: %d rows, %d with sector, %d with ETF category, %d bytes",
        args.out,
        len(rows),
        with_sector,
        with_category,
        len(data),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
