"""The distributed training path: torchrun with 2 CPU processes (gloo), then the same gate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from feedback_sim import CATALOG, simulate

from embedloop import EmbedLoop
from embedloop.training.distributed import main, read_examples

pytestmark = pytest.mark.slow


def test_torchrun_two_processes_trains_a_gateable_candidate(loop_settings, tmp_path, monkeypatch):
    with EmbedLoop(loop_settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
        parent = loop.model_path(0)
    monkeypatch.setenv("LEARNING_STORAGE_PATH", str(loop_settings.storage_path))
    monkeypatch.setenv("EMBEDDING_MODEL", loop_settings.embedding_model)
    examples = tmp_path / "examples.jsonl"
    assert main(["export", "--output", str(examples)]) == 0
    rows = read_examples(examples)
    assert len(rows) >= 10 and all(r.negative_texts for r in rows)

    out = tmp_path / "candidate"
    env = {**os.environ, "EMBEDLOOP_EPOCHS": "1", "EMBEDLOOP_SHOW_PROGRESS": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "embedloop.training.distributed", "train", "--examples", str(examples)]
    cmd += ["--parent", str(parent), "--output", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.safetensors").exists()

    with EmbedLoop(loop_settings) as loop:
        verdict = loop.evaluate(candidate=out)
    assert {"candidate_metrics", "gate_reasons", "would_promote"} <= set(verdict)
    assert 0.0 <= verdict["candidate_metrics"]["triplet_accuracy"] <= 1.0
