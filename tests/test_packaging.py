"""Dependency metadata matches the code (issue 12, item 13)."""

from __future__ import annotations

import logging
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEV_TOOLS = {"pytest", "ruff", "mypy", "schemathesis", "hypothesis", "ir-measures"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_mcp_extra_requires_the_2x_api_the_code_imports():
    from mcp.server import MCPServer  # noqa: F401  (what serving/mcp_server.py imports)

    (mcp,) = PROJECT["optional-dependencies"]["mcp"]
    assert mcp.startswith("mcp>=2"), mcp


def test_dev_tools_stay_out_of_the_runtime_dependencies():
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    assert not runtime & DEV_TOOLS
    assert DEV_TOOLS <= {_name(r) for r in PROJECT["optional-dependencies"]["dev"]}


def test_torch_is_installed_pinned_and_never_pulled_by_a_range():
    torch = next(r for r in PROJECT["dependencies"] if _name(r) == "torch")
    assert "<=2.13.0" in torch  # a range can never select a newer (CUDA) wheel
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().splitlines()
    assert "install --quiet torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line), line


def test_quality_chart_is_skipped_without_matplotlib(tmp_path, monkeypatch, caplog):
    from embedloop.benchmarks.quality import write_chart

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with caplog.at_level(logging.WARNING, logger="embedloop"):
        assert write_chart({"cycles": []}, tmp_path / "quality.png") is False
    assert not (tmp_path / "quality.png").exists()
    assert any("matplotlib is not installed" in r.getMessage() for r in caplog.records)
