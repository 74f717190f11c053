"""The results table (``docs/benchmarks.md``)."""

from __future__ import annotations

import logging
from typing import Any

from perf.common import ratio

log = logging.getLogger("bench.performance")


# --------------------------------------------------------------------------- report
def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        x = f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"
    return f"{x}{unit}"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """``(figure, product, baseline, ratio, target, met)`` rows."""
    rows: list[tuple[str, str, str, str, str, str]] = []

    def met(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "NO")

    for size, s in (results.get("search") or {}).items():
        for p in ("p50", "p99"):
            r = s[f"{p}_ratio"]
            target = "<= 1.15x" if p == "p50" else "-"
            ok = (r is not None and r <= 1.15) if p == "p50" else None
            rows.append(
                (
                    f"search {p} @ {int(size):,} items",
                    _fmt(s["product"][f"{p}_ms"], " ms"),
                    _fmt(s["raw"][f"{p}_ms"], " ms"),
                    _fmt(r, "x"),
                    target,
                    met(ok),
                )
            )
    ing = results.get("ingest")
    if ing:
        b, s = ing["batch"], ing["single"]
        rows.append(
            (
                f"ingest batch ({b['batch_size']}/call), events/s",
                _fmt(b["product_events_per_second"]),
                _fmt(b["raw_events_per_second"]),
                _fmt(b["ratio"], "x"),
                ">= 0.5x",
                met(b["ratio"] is not None and b["ratio"] >= 0.5),
            )
        )
        rows.append(
            (
                "ingest single, events/s",
                _fmt(s["product_events_per_second"]),
                _fmt(s["raw_events_per_second"]) + " (1 txn/event)",
                _fmt(s["ratio"], "x"),
                ">= 2,000/s",
                met(s["product_events_per_second"] >= 2000),
            )
        )
        rows.append(
            (
                "ingest batch, events per CPU-second",
                _fmt(b["product_events_per_cpu_second"]),
                _fmt(b["raw_events_per_cpu_second"]),
                _fmt(b["cpu_ratio"], "x"),
                ">= 0.5x",
                met(b["cpu_ratio"] is not None and b["cpu_ratio"] >= 0.5),
            )
        )
        rows.append(
            (
                "ingest single, events per CPU-second",
                _fmt(s["product_events_per_cpu_second"]),
                _fmt(s["raw_events_per_cpu_second"]) + " (1 txn/event)",
                _fmt(s["cpu_ratio"], "x"),
                ">= 2,000/s",
                met(s["product_events_per_cpu_second"] >= 2000),
            )
        )
    tr = results.get("training")
    if tr:
        rows.append(
            (
                "training rows/s (trainer.train)",
                _fmt(tr["product_train_loop_rows_per_second"]),
                _fmt(tr["bare_train_loop_rows_per_second"]),
                _fmt(tr["train_loop_ratio"], "x"),
                ">= 0.9x",
                met(tr["train_loop_ratio"] is not None and tr["train_loop_ratio"] >= 0.9),
            )
        )
        rows.append(
            (
                "training rows/s (load..save)",
                _fmt(tr["product_end_to_end_rows_per_second"]),
                _fmt(tr["bare_end_to_end_rows_per_second"]),
                _fmt(tr["end_to_end_ratio"], "x"),
                ">= 0.9x",
                met(tr["end_to_end_ratio"] is not None and tr["end_to_end_ratio"] >= 0.9),
            )
        )
    cy = results.get("cycle")
    if cy:
        t = cy["timings"]
        parts = ", ".join(f"{k.replace('_seconds', '')} {v:.0f}" for k, v in t.items())
        rows.append(
            (
                f"cycle wall ({results.get('feedback_simulation', {}).get('events', '?')} events), s",
                _fmt(cy["wall_seconds"]) + f" [{parts}] {cy['status']}",
                "-",
                "-",
                "< 300 s",
                met(cy["wall_seconds"] < 300),
            )
        )
        rows.append(
            (
                "search p50 during training / idle",
                _fmt(cy["search_during_training"].get("p50_ms"), " ms"),
                _fmt(cy["search_idle"].get("p50_ms"), " ms"),
                _fmt(cy["during_training_p50_ratio"], "x"),
                "-",
                "-",
            )
        )
        rows.append(
            (
                "search p50 during whole cycle / idle",
                _fmt(cy["search_during_cycle"].get("p50_ms"), " ms"),
                _fmt(cy["search_idle"].get("p50_ms"), " ms"),
                _fmt(cy["during_cycle_p50_ratio"], "x"),
                "-",
                "-",
            )
        )
        rows.append(
            (
                "peak RSS cycle, MiB",
                _fmt(cy["cycle_peak_rss_mib"]),
                _fmt(cy["rss_before_cycle_mib"]) + " (serving)",
                _fmt(ratio(cy["cycle_peak_rss_mib"], cy["rss_before_cycle_mib"]), "x"),
                "-",
                "-",
            )
        )
    ri = results.get("reindex")
    if ri:
        inter = ri.get("interleaved")
        if inter:
            rows.append(
                (
                    f"re-index items/s ({inter['chunks']}x{inter['chunk']:,} interleaved)",
                    _fmt(inter["product_items_per_second"]),
                    _fmt(inter["raw_items_per_second"]),
                    _fmt(inter["ratio"], "x"),
                    "-",
                    "-",
                )
            )
        one = ri["one_call"]
        rows.append(
            (
                f"re-index items/s ({ri['items']:,} in one call, 2 processes)",
                _fmt(one["product"]["items_per_second"]),
                _fmt(one["raw"]["items_per_second"]),
                _fmt(one["ratio"], "x"),
                "-",
                "-",
            )
        )
        rows.append(
            (
                "peak RSS serving (load+index), MiB",
                _fmt(one["product"]["peak_rss_mib"]),
                _fmt(one["raw"]["peak_rss_mib"]),
                _fmt(ri["serving_peak_rss_ratio"], "x"),
                "-",
                "-",
            )
        )
    th = results.get("threads")
    if th:
        rows.append(
            (
                f"raw query encode p50, {th['default_threads']} threads",
                _fmt(th["default"].get("p50_ms"), " ms"),
                _fmt(th["one_thread"].get("p50_ms"), " ms") + " (1 thread)",
                _fmt(th["p50_ratio_default_to_one"], "x"),
                "-",
                "-",
            )
        )
    return rows


def render_table(results: dict[str, Any]) -> str:
    header = ("figure", "embedloop", "raw baseline", "ratio", "target", "met")
    rows = [header, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines) + "\n"
