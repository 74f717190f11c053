"""bench/trial_design.py: the sequential test's operating characteristics, simulated through the product's test."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_trial_design", ROOT / "bench" / "trial_design.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_separates_worse_equal_and_better_candidates(tmp_path: Path) -> None:
    out = tmp_path / "design.json"
    args = ["--trials", "400", "--min-effects", "0.55", "--win-rates", "0.4,0.5,0.7", "--decisive", "0.5"]
    assert load_script().main([*args, "--max-searches", "2000", "--out", str(out)]) == 0
    rows = {r["win_rate"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows[0.4]["p_promote"] == 0.0
    assert rows[0.5]["p_promote"] <= 0.08  # alpha = 0.05, plus Monte Carlo error over 400 trials
    assert rows[0.7]["p_promote"] >= 0.99
    # a clear preference is decided faster than no preference, and the sessions scale with 1 / trial_share
    assert rows[0.7]["median_searches"] < rows[0.5]["median_searches"]
    assert rows[0.7]["median_sessions"]["0.5"] == round(rows[0.7]["median_searches"] / 0.5)
