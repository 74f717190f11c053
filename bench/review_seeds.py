#!/usr/bin/env python
"""Pool the simulated reviewer's results over several seeds (issue 13).

One ``embedloop bench quality --review-budgets ... --seed S`` run per seed writes ``review.json``;
this prints, per budget, the mean and standard error of queue - clicks, random - clicks and
queue - random (paired within each seed), how often the queue won, the relevant items found, the
share of answers that changed a label the clicks gave, and the pre-check's verdicts against dev by
the held-out set it read. See ``embedloop.benchmarks.review.pool_seeds``.

    for S in 1 2 3 4 5 6 7 8; do
      embedloop bench quality --dataset scifact --corpus-limit 1500 --review-budgets 25,50,100 --seed $S \\
          --no-oracle --no-naive --out runs/review-seed$S
    done
    python bench/review_seeds.py runs/review-seed*/review.json --out review-seeds.json

After a change to the queue, run only its arms (``--review-arms queue``) and take the random arms
from the earlier runs of the same seeds (checked: the clicks-only arms must score the same):

    python bench/review_seeds.py runs/new-seed*/review.json --reuse-arms runs/review-seed*/review.json

Runs of the same ``--seed`` with another training seed (``--set seed=43``) are training draws on the
same clicks and answers: each arm's dev metrics are averaged over them before pooling (less of one
training run's noise in every difference). ``--reuse-arms`` matches a run to the earlier run of the same
traffic seed *and* training seed, so several draws can be completed at once:

    python bench/review_seeds.py runs/review-seed*/review.json runs/review-seed*-train43/review.json

Questions-only runs (``--review-questions-only``: nothing trained) pool their answer counts alone —
the share of answers that changed a label the clicks, or training, gave — in minutes per seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if (HERE.parent / "src").is_dir() and str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

from embedloop.benchmarks.review import average_draws, pool_seeds, reuse_arms  # noqa: E402
from embedloop.settings import Settings  # noqa: E402


def _complete(run: dict[str, Any]) -> bool:
    """Whether a run has a queue and a random arm for every budget it ran."""
    budgets = {arm["budget"] for arm in run["arms"].values() if arm.get("budget")}
    return all(f"{s}@{b}" in run["arms"] for b in budgets for s in ("queue", "random"))


def _draw(run: dict[str, Any]) -> tuple[Any, int]:
    """A run's traffic seed (``--seed``) and training seed (the last ``--set seed=N``, else the default)."""
    training = Settings().seed
    for override in run["config"].get("overrides") or []:
        name, _, value = str(override).partition("=")
        if name.strip() == "seed":
            training = int(value)
    return run["config"]["seed"], training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="review.json files, one per seed")
    parser.add_argument("--out", type=Path, help="also write the pooled result here")
    parser.add_argument(
        "--reuse-arms",
        nargs="+",
        type=Path,
        default=[],
        metavar="REVIEW_JSON",
        help="earlier runs of the same seeds (matched by --seed and the training seed, --set seed=N) whose arms "
        "fill the ones a run did not run",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in [*args.results, *args.reuse_arms] if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)} (each run of --review-budgets writes review.json)")
    runs = [json.loads(p.read_text()) for p in args.results]
    earlier = {_draw(run): run for run in (json.loads(p.read_text()) for p in args.reuse_arms)}
    if earlier:
        filled = []
        for run in runs:
            if _complete(run):
                filled.append(run)
                continue
            seed, training = _draw(run)
            if (seed, training) not in earlier:
                parser.error(f"no earlier run with seed {seed} and training seed {training} among --reuse-arms")
            try:
                filled.append(reuse_arms(run, earlier[seed, training]))
            except ValueError as exc:
                parser.error(str(exc))
        runs = filled
    try:
        runs = average_draws(runs)
    except ValueError as exc:
        parser.error(str(exc))
    pooled = {"files": [str(p) for p in args.results], **pool_seeds(runs)}
    text = json.dumps(pooled, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
