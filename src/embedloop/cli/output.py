"""Rendering command results: JSON for machines, aligned plain text for people."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import click


def to_json(data: Any) -> str:
    """``data`` as indented JSON; paths, dates and other objects become strings."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def fmt_value(value: Any) -> str:
    """One value as short text: floats to 4 decimals, ``None`` as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return str(int(value)) if value.is_integer() and abs(value) >= 10 else f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value) or "-"
    return " ".join(str(value).split())  # one line, no tabs or newlines


def _clip(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_widths: Mapping[str, int] | None = None) -> str:
    """Rows under headers, columns aligned; long cells clipped to ``max_widths[header]``."""
    limits = dict(max_widths or {})
    cells = [[_clip(fmt_value(v), limits.get(h)) for h, v in zip(headers, row, strict=True)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
    return "\n".join(lines)


def key_values(data: Mapping[str, Any], *, indent: int = 0) -> str:
    """A mapping as ``key: value`` lines; nested mappings are indented under their key."""
    if not data:
        return " " * indent + "(none)"
    width = max(len(str(k)) for k in data)
    lines = []
    for key, value in data.items():
        label = " " * indent + f"{key}:".ljust(width + 1)
        if isinstance(value, Mapping):
            lines.append(label.rstrip())
            lines.append(key_values(value, indent=indent + 2))
        else:
            lines.append(f"{label} {fmt_value(value)}")
    return "\n".join(lines)


def metrics_text(metrics: Mapping[str, Any] | None) -> str:
    """Metrics as text: a side-by-side table when they compare models, else ``key: value`` lines.

    ``{"current": {"mrr@10": 0.5}, "candidate": {"mrr@10": 0.6}}`` becomes one
    row per metric with a column per model; a flat dict becomes one line each.
    """
    if not metrics:
        return "(no metrics)"
    groups = {k: v for k, v in metrics.items() if isinstance(v, Mapping)}
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
    parts = []
    if groups:
        names = list(dict.fromkeys(name for group in groups.values() for name in group))
        columns = list(groups)
        parts.append(table(["metric", *columns], [[n, *(groups[c].get(n) for c in columns)] for n in names]))
    if scalars:
        parts.append(key_values(scalars))
    return "\n".join(parts)


def emit(data: Any, text: str, *, as_json: bool, file: TextIO | None = None) -> None:
    """Write ``data`` as JSON or ``text`` for people to ``file`` (default: stdout)."""
    click.echo(to_json(data) if as_json else text, file=file)
