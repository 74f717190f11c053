#!/usr/bin/env python
"""The spec's example under several training seeds: does one cycle teach an unseen phrasing?

``tests/training/test_cycle.py`` trains one cycle on the 20-security confusable catalog with two rounds of
simulated users (``tests/training/feedback_sim.py``) and checks that phrasings never trained on ("tim cook
company shares" → AAPL, "apple 2x leveraged etf" → AAPU) rank their target higher. The test runs one training
seed; this logs (and writes to ``--out``) the targets' ranks before and after the cycle for every (seed, ``train_draws``) pair, so
how much the outcome depends on the seed can be seen (``docs/benchmarks-quality.md``, "A soup of training draws").

    python bench/spec_example_seeds.py --seeds 42,43,44 --draws 1,2,3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "src", ROOT / "tests" / "training"):  # the product, and the test's catalog and users
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))

from feedback_sim import CATALOG, HELD_OUT, cycle_settings, rank_of, simulate  # noqa: E402

from embedloop import EmbedLoop  # noqa: E402

logger = logging.getLogger("bench.spec_example_seeds")


def ranks_after_one_cycle(seed: int, draws: int) -> dict[str, dict[str, int]]:
    """The held-out phrasings' target ranks before and after one cycle (the test's settings)."""
    with tempfile.TemporaryDirectory() as storage:
        settings = cycle_settings(Path(storage), seed=seed, train_draws=draws)
        with EmbedLoop(settings) as loop:
            loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
            before = {q: rank_of(loop, q, t) for q, t in HELD_OUT.items()}
            simulate(loop)
            status = loop.fine_tune()["status"]
            after = {q: rank_of(loop, q, t) for q, t in HELD_OUT.items()}
    return {q: {"before": before[q], "after": after[q], "status": str(status)} for q in HELD_OUT}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="42,43,44", help="training seeds, comma-separated")
    p.add_argument("--draws", default="1,3", help="train_draws values, comma-separated")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "spec-example-seeds.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        seeds = [int(x) for x in args.seeds.split(",")]
        draws = [int(x) for x in args.draws.split(",")]
    except ValueError:
        p.error("--seeds and --draws take comma-separated integers, e.g. --seeds 42,43 --draws 1,3")
    results = []
    for k in draws:
        for seed in seeds:
            ranks = ranks_after_one_cycle(seed, k)
            logger.info("train_draws=%d seed=%d: %s", k, seed, ranks)
            results.append({"train_draws": k, "seed": seed, "ranks": ranks})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")  # stdout also carries the trainer's loss lines
    logger.info("Wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
