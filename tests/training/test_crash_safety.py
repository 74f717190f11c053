"""Real faults: processes killed with SIGKILL, corrupted files on disk."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from feedback_sim import CATALOG, simulate

from embedloop import EmbedLoop, Settings
from embedloop.store import FeedbackStore
from embedloop.types import Item

pytestmark = pytest.mark.slow
BATCH = 400

WRITER = textwrap.dedent(
    """
    import sys
    from embedloop.store import FeedbackStore
    from embedloop.types import FeedbackEvent
    store = FeedbackStore(sys.argv[1])
    for b in range(10_000):
        store.record_feedback([FeedbackEvent(f"q{b}-{i}", ["A", "B"], ["B"]) for i in range(BATCH)])
        print(b, flush=True)
    """
).replace("BATCH", str(BATCH))


def test_writer_killed_mid_batch_loses_nothing_committed(db_url: str):
    store = FeedbackStore(db_url)
    store.upsert_items([Item("A", "alpha"), Item("B", "beta")])
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = [proc.stdout.readline() for _ in range(3)]
    time.sleep(random.Random(7).uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait()
    printed = len([line for line in committed + rest.splitlines() if line.strip()])
    count = store.count_selections()
    assert count % BATCH == 0, "a partial batch is visible"
    assert count >= printed * BATCH, "a committed batch was lost"
    assert store.stats()["searches"] == count


TRAINER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from embedloop import EmbedLoop, Settings

    point = sys.argv[1]

    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    loop = EmbedLoop(Settings.from_env())
    loop.warm_up()  # load first (loading is lazy): the faults target the cycle

    import embedloop.registry.registry as registry
    import embedloop.index.faiss_index as faiss_index
    if point == "training":
        from sentence_transformers import SentenceTransformerTrainer
        real_step = SentenceTransformerTrainer.training_step
        calls = []
        def step_then_die(self, *a, **k):
            calls.append(1)
            if len(calls) == 1:  # mid-training: the model is loaded, the first batch is in hand
                die()
            return real_step(self, *a, **k)
        SentenceTransformerTrainer.training_step = step_then_die
    elif point == "index":
        faiss_index.VectorIndex.save = die
    elif point == "switch":
        real = registry.atomic_write_json
        def before_switch(path, payload):
            if Path(path).name == "ACTIVE":
                die()
            return real(path, payload)
        registry.atomic_write_json = before_switch
    elif point == "after-switch":
        loop.searcher.publish = die  # runs right after the pointer was replaced
    print("ready", flush=True)
    print(loop.fine_tune(force=True), flush=True)
    print("finished", flush=True)
    """
)


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LEARNING_STORAGE_PATH": str(settings.storage_path),
        "EMBEDDING_MODEL": settings.embedding_model,
        "EMBEDLOOP_EPOCHS": "1",
        "EMBEDLOOP_TRAIN_BATCH_SIZE": str(settings.train_batch_size),
        "EMBEDLOOP_LEARNING_RATE": str(settings.learning_rate),
        "EMBEDLOOP_MIN_HOLDOUT_QUERIES": str(settings.min_holdout_queries),
        "EMBEDLOOP_LOCK_TTL_SECONDS": "2",
        "EMBEDLOOP_TRIALS": "false",  # the faults target an immediate promotion
        "EMBEDLOOP_SHOW_PROGRESS": "false",
    }


def _kill_trainer(settings: Settings, point: str) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, point],
        env=_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, (point, out[-2000:], err[-1000:])
    return out


def test_trainer_killed_anywhere_leaves_a_loadable_active_version(loop_settings: Settings):
    settings = loop_settings.replace(epochs=1, lock_ttl_seconds=2.0)
    with EmbedLoop(settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
        before = [h.item_id for h in loop.search("apple 2x leveraged etf", k=5).hits]

    for point in ("training", "index", "switch"):
        out = _kill_trainer(settings, point)
        assert "finished" not in out
        with EmbedLoop(settings) as loop:
            assert loop.active_version == 0, point
            assert [h.item_id for h in loop.search("apple 2x leveraged etf", k=5).hits] == before, point

    _kill_trainer(settings, "after-switch")  # the rename happened: the new version is active
    # no waiting for the lease: the trainer's pid is gone, so its lock is void at once
    with EmbedLoop(settings) as loop:
        active = loop.active_version
        assert active > 0
        # recovery on open: one active version, the run closed as promoted, its feedback window consumed
        assert [v["status"] for v in loop.versions()].count("active") == 1
        assert loop.status()["last_run"]["status"] == "promoted" and loop.status()["feedback_count"] == 0
        assert not list(loop.registry.root.glob("**/.*.tmp"))
        loop.registry.verify(active)
        assert loop.search("apple 2x leveraged etf", k=5).hits
        loop.record_feedback("apple etf 2x", shown=["AAPL", "AAPU"], selected=["AAPU"])
        result = loop.fine_tune(force=True)  # no orphaned lock, no leftovers in the way
        assert result["status"] in ("promoted", "rejected"), result
        statuses = {v["version"]: v["status"] for v in loop.versions()}
        assert list(statuses.values()).count("active") == 1
        assert "candidate" not in statuses.values()


def _assert_integrity_error_surfaced(loop: EmbedLoop, caplog: pytest.LogCaptureFixture, version: int) -> None:
    """The fallback is not silent: an ERROR record names the version and the checksum mismatch."""
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("embedloop")]
    assert any(
        f"Model version {version} " in m and "is corrupted: checksum" in m and "does not match the manifest" in m
        for m in errors
    ), errors
    assert any("Falling back to the previous good version" in m for m in errors), errors
    manifest = {v["version"]: v for v in loop.versions()}[version]
    assert manifest["status"] == "failed" and not manifest["active"]
    assert "integrity check failed" in manifest["failure"]


def test_corrupted_model_falls_back_and_corrupted_index_is_rebuilt(
    loop_settings: Settings, tmp_path, caplog: pytest.LogCaptureFixture
):
    settings = loop_settings.replace(epochs=1)
    with EmbedLoop(settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        base_ranking = [h.item_id for h in loop.search("apple stock", k=5).hits]
        simulate(loop, rounds=1)
        assert loop.fine_tune()["status"] == "promoted"
        version = loop.active_version
        ranking = [h.item_id for h in loop.search("apple stock", k=5).hits]
    spare = settings.replace(storage_path=tmp_path / "spare")  # a second copy, for the truncated weights
    shutil.copytree(settings.storage_path, spare.storage_path)

    index_file = settings.storage_path / "indexes" / f"v{version:04d}" / "index.faiss"
    index_file.write_bytes(index_file.read_bytes()[:100])  # truncated
    with EmbedLoop(settings) as loop:
        assert loop.active_version == version
        assert [h.item_id for h in loop.search("apple stock", k=5).hits] == ranking

    weights = settings.storage_path / "models" / f"v{version:04d}" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="embedloop"), EmbedLoop(settings) as loop:
        loop.warm_up()  # loading is lazy: the check happens when the model loads
        assert loop.active_version == 0  # fell back to the last good version
        assert [h.item_id for h in loop.search("apple stock", k=5).hits] == base_ranking
        _assert_integrity_error_surfaced(loop, caplog, version)

    weights = spare.storage_path / "models" / f"v{version:04d}" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="embedloop"), EmbedLoop(spare) as loop:
        loop.warm_up()
        assert loop.active_version == 0
        assert [h.item_id for h in loop.search("apple stock", k=5).hits] == base_ranking
        _assert_integrity_error_surfaced(loop, caplog, version)
