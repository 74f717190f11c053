"""Time to recover after a trainer is SIGKILLed at each step of a promotion (issue: hardening).

For each kill point a subprocess runs ``fine_tune(force=True)`` (MiniLM, 20 items, trials off so the cycle
promotes at once) and kills itself with SIGKILL there. Then this process measures how long until the next
cycle can start: opening the storage (recovery runs on open) plus taking the training lock, and checks that
exactly one version is active and no run is left ``running``.

    python bench/recovery.py --out bench/results/recovery.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from embedloop import EmbedLoop, Settings
from embedloop.store.locks import TRAINING_LOCK, acquire, release

logger = logging.getLogger("bench.recovery")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "training"))

TRAINER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from embedloop import EmbedLoop, Settings
    point = sys.argv[1]
    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)
    loop = EmbedLoop(Settings.from_env())
    loop.warm_up()  # loading is lazy: load before the faults, which target the cycle
    import embedloop.registry.registry as registry
    import embedloop.index.faiss_index as faiss_index
    if point == "training":
        from sentence_transformers import SentenceTransformerTrainer
        SentenceTransformerTrainer.training_step = die
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
        loop.searcher.publish = die
    loop.fine_tune(force=True)
    """
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from feedback_sim import CATALOG, simulate

    storage = Path(tempfile.mkdtemp(prefix="embedloop-recovery-"))
    settings = Settings(
        storage_path=storage,
        embedding_model="all-MiniLM-L6-v2",
        show_progress=False,
        trials=False,
        min_holdout_queries=3,
        epochs=1,
        train_batch_size=16,
        torch_threads=1,
    )
    with EmbedLoop(settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
    env = {
        **os.environ,
        "LEARNING_STORAGE_PATH": str(storage),
        "EMBEDDING_MODEL": settings.embedding_model,
        "EMBEDLOOP_TRIALS": "false",
        "EMBEDLOOP_MIN_HOLDOUT_QUERIES": "3",
        "EMBEDLOOP_TRAIN_BATCH_SIZE": "16",
        "EMBEDLOOP_TORCH_THREADS": "1",
        "EMBEDLOOP_SHOW_PROGRESS": "false",
    }
    rows = []
    for point in ("training", "index", "switch", "after-switch"):
        proc = subprocess.run([sys.executable, "-c", TRAINER, point], env=env, capture_output=True, text=True)
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr[-2000:])
        tick = time.perf_counter()
        with EmbedLoop(settings) as loop:
            opened = time.perf_counter() - tick
            assert acquire(loop.store, TRAINING_LOCK, "bench@recovery:0:0", ttl_seconds=30)
            ready = time.perf_counter() - tick
            release(loop.store, TRAINING_LOCK, "bench@recovery:0:0")
            statuses = [v["status"] for v in loop.versions()]
            last = loop.status()["last_run"]
            rows.append(
                {
                    "kill_point": point,
                    "open_seconds": round(opened, 3),
                    "next_cycle_can_start_seconds": round(ready, 3),
                    "active_versions": statuses.count("active"),
                    "active_version": loop.active_version,
                    "last_run_status": last["status"] if last else None,
                    "stray_temp_files": len(list(loop.registry.root.glob("**/.*.tmp"))),
                }
            )
        logger.info("%s", rows[-1])
    text = json.dumps(rows, indent=2)
    if args.out:
        args.out.write_text(text)
    logger.info("%s", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
