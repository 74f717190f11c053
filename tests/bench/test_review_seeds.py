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


def write_run(
    path: Path,
    clicks: float,
    queue: float | None,
    rand: float | None,
    seed: int = 1,
    selections: int = 300,
    overrides: list[str] | None = None,
) -> Path:
    dev = {"ndcg@10": clicks, "per_query_ndcg@10": {"q1": clicks}}  # as the benchmark writes it
    arms = {"clicks": {"budget": 0, "status": "trial", "candidate_dev": dev}}
    for name, value in (("queue@10", queue), ("random@10", rand)):
        if value is not None:
            arms[name] = {
                "budget": 10,
                "status": "trial",
                "candidate_dev": {"ndcg@10": value},
                "answers": {"questions": 10},
            }
    run = {
        "summary": summarise(arms, [10]),
        "arms": arms,
        "config": {"seed": seed, "overrides": overrides or []},
        "base": {"ndcg@10": 0.4},
        "clicks_round": {"selections": selections},
    }
    path.write_text(json.dumps(run))
    return path


def test_pools_the_files_and_writes_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    files = [write_run(tmp_path / "a.json", 0.5, 0.52, 0.51), write_run(tmp_path / "b.json", 0.6, 0.6, 0.62, seed=2)]
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


def test_reuse_arms_fills_the_missing_arms_of_the_same_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    earlier = [write_run(tmp_path / f"old{s}.json", 0.5, 0.49, 0.51, seed=s) for s in (1, 2)]
    new = [write_run(tmp_path / f"new{s}.json", 0.5, q, None, seed=s) for s, q in ((2, 0.55), (1, 0.53))]
    out = tmp_path / "pooled.json"
    assert load_script().main([*map(str, new), "--reuse-arms", *map(str, earlier), "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["budgets"]["10"]
    # both seeds: the new queue arm against the earlier random arm (0.51)
    assert entry["seeds"] == 2 and entry["queue_wins"] == 2
    assert entry["queue_minus_random"]["mean"] == pytest.approx(0.03)


def test_reuse_arms_refuses_runs_that_did_not_repeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    earlier = write_run(tmp_path / "old.json", 0.5, 0.49, 0.51)
    new = write_run(tmp_path / "new.json", 0.52, 0.55, None)  # the clicks-only arm moved: not the same traffic
    with pytest.raises(SystemExit) as stop:
        load_script().main([str(new), "--reuse-arms", str(earlier)])
    assert stop.value.code == 2
    assert "cannot be pooled" in capsys.readouterr().err
    other_seed = write_run(tmp_path / "seed3.json", 0.5, 0.55, None, seed=3)
    with pytest.raises(SystemExit):
        load_script().main([str(other_seed), "--reuse-arms", str(earlier)])
    assert "no earlier run with seed 3" in capsys.readouterr().err


def test_training_draws_of_one_traffic_seed_are_averaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    draws = [write_run(tmp_path / "a.json", 0.50, 0.53, 0.50), write_run(tmp_path / "b.json", 0.52, 0.53, 0.54)]
    other = write_run(tmp_path / "c.json", 0.6, 0.61, 0.6, seed=2)
    out = tmp_path / "pooled.json"
    assert load_script().main([*map(str, draws), str(other), "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["budgets"]["10"]
    # seed 1 is one seed (the mean of its two draws: queue 0.53 - random 0.52), not two
    assert entry["seeds"] == 2
    assert entry["queue_minus_random"]["mean"] == pytest.approx((0.01 + 0.01) / 2)
    assert entry["queue_minus_clicks"]["mean"] == pytest.approx((0.02 + 0.01) / 2)


def test_draws_of_different_traffic_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    a = write_run(tmp_path / "a.json", 0.50, 0.53, 0.50)
    b = write_run(tmp_path / "b.json", 0.52, 0.53, 0.54, selections=280)
    with pytest.raises(SystemExit):
        load_script().main([str(a), str(b)])
    assert "different clicks rounds" in capsys.readouterr().err


def test_reuse_arms_matches_the_training_seed_too(tmp_path: Path):
    """Two draws of one traffic seed, each completed from the earlier run of the same training seed."""
    earlier = [
        write_run(tmp_path / "old42.json", 0.50, 0.49, 0.51),
        write_run(tmp_path / "old43.json", 0.52, 0.49, 0.49, overrides=["torch_threads=1", "seed=43"]),
    ]
    new = [
        write_run(tmp_path / "new42.json", 0.50, 0.53, None, overrides=["seed=42"]),
        write_run(tmp_path / "new43.json", 0.52, 0.55, None, overrides=["seed=43"]),
    ]
    out = tmp_path / "pooled.json"
    assert load_script().main([*map(str, new), "--reuse-arms", *map(str, earlier), "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["budgets"]["10"]
    # one seed, two draws averaged: queue (0.53 + 0.55) / 2 against random (0.51 + 0.49) / 2
    assert entry["seeds"] == 1
    assert entry["queue_minus_random"]["mean"] == pytest.approx(0.04)
    with pytest.raises(SystemExit):  # a draw whose earlier run is missing is named, not mixed up
        load_script().main([str(new[1]), "--reuse-arms", str(earlier[0])])
