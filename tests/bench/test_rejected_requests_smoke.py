"""bench/rejected_requests.py runs and every refusal answers with the expected status."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "rejected_requests.py"


def test_script_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "rejected.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--ids", "5000", "--repeat", "2", "--out", str(out)])
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0
    results = json.loads(out.read_text())
    assert len(results["http"]) == 8 and len(results["python_api"]) == 4
    assert {r["status"] for r in results["http"]} <= {400, 413, 422}
