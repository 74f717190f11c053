"""bench/review_seeds.py: pools review.json files over seeds; a missing file is a clear error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from embedloop.benchmarks.review import summarise

ROOT = Path(__file__).resolve().parents[2]


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_review_seeds", ROOT / "bench" / "review_seeds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(path: Path, clicks: float, queue: float, rand: float) -> Path:
    arms = {
        "clicks": {"candidate_dev": {"ndcg@10": clicks}},
        "queue@10": {"candidate_dev": {"ndcg@10": queue}, "answers": {"questions": 10}},
        "random@10": {"candidate_dev": {"ndcg@10": rand}, "answers": {"questions": 10}},
    }
    path.write_text(json.dumps({"summary": summarise(arms, [10]), "arms": arms}))
    return path


def test_pools_the_files_and_writes_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    files = [write_run(tmp_path / "a.json", 0.5, 0.52, 0.51), write_run(tmp_path / "b.json", 0.6, 0.6, 0.62)]
    out = tmp_path / "pooled.json"
    assert load_script().main([*map(str, files), "--out", str(out)]) == 0
    pooled = json.loads(out.read_text())
    assert pooled["seeds"] == 2 and pooled["budgets"]["10"]["queue_wins"] == 1
    assert json.loads(capsys.readouterr().out) == pooled


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        load_script().main([str(tmp_path / "nope.json")])
    assert stop.value.code == 2
    assert "no such file" in capsys.readouterr().err
