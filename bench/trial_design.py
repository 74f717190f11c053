#!/usr/bin/env python
"""Operating characteristics of the trial's sequential test: P(promote) and searches to a decision.

A trial search is decisive (a selection on a result the two models rank differently) with
probability ``d``; a decisive search is a win for the candidate with probability ``p`` (its true win
rate). This simulates many trials per (``trial_min_effect``, ``p``) through the product's own
:class:`embedloop.evaluation.trial_test.SequentialTest` — the log likelihood ratio after every
search, the promote / reject bounds and the ``trial_max_searches`` limit — and prints, per setting:

- P(promote): at ``p <= 0.5`` the test's error (bounded by ``trial_alpha``), above it its power;
- the median number of trial searches to a decision, and the sessions that takes at each
  ``trial_share`` (searches / share): what a user must budget in traffic;
- the share of trials the search limit ended (no decision either way).

No model runs: the outcome of each search is drawn from ``(d, p)``. The measured trials of the quality
benchmark (``docs/benchmarks-quality.md``) give the realistic points: ``d`` was 0.15-0.28 and the
candidates' win rates 0.43-0.65.

    python bench/trial_design.py --decisive 0.2 --trials 2000 --out bench/results/trial_design.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from embedloop.evaluation.trial_test import SequentialTest, TrialEvidence

logger = logging.getLogger("bench.trial_design")

WIN_RATES = (0.40, 0.45, 0.48, 0.50, 0.52, 0.55, 0.58, 0.60, 0.65)
MIN_EFFECTS = (0.52, 0.55, 0.58, 0.60)
SHARES = (0.25, 0.5, 1.0)


def simulate(test: SequentialTest, p: float, decisive: float, trials: int, rng: np.random.Generator) -> dict[str, Any]:
    """``trials`` independent trials at true win rate ``p``; the verdict and length of each."""
    win = test.log_likelihood_ratio(TrialEvidence(searches=1, wins=1, losses=0))
    loss = test.log_likelihood_ratio(TrialEvidence(searches=1, wins=0, losses=1))
    n = test.max_searches
    promoted = np.zeros(trials, dtype=bool)
    length = np.full(trials, n)
    limit = np.zeros(trials, dtype=bool)
    chunk = max(1, 4_000_000 // n)  # bounded memory: chunk x max_searches draws at a time
    for start in range(0, trials, chunk):
        m = min(chunk, trials - start)
        u = rng.random((m, n))
        step = np.where(u < decisive * p, win, np.where(u < decisive, loss, 0.0))
        llr = np.cumsum(step, axis=1)
        up = llr >= test.upper
        down = llr <= test.lower
        first_up = np.where(up.any(axis=1), up.argmax(axis=1), n)
        first_down = np.where(down.any(axis=1), down.argmax(axis=1), n)
        decided = np.minimum(first_up, first_down)
        promoted[start : start + m] = first_up < first_down
        length[start : start + m] = np.minimum(decided + 1, n)
        limit[start : start + m] = decided >= n
    return {
        "p_promote": round(float(promoted.mean()), 4),
        "median_searches": int(np.median(length)),
        "p90_searches": int(np.percentile(length, 90)),
        "ended_by_limit": round(float(limit.mean()), 4),
    }


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    rows = []
    for effect in args.min_effects:
        test = SequentialTest(alpha=args.alpha, beta=args.beta, min_effect=effect, max_searches=args.max_searches)
        for p in args.win_rates:
            row = {"min_effect": effect, "win_rate": p, **simulate(test, p, args.decisive, args.trials, rng)}
            row["median_sessions"] = {str(s): int(round(row["median_searches"] / s)) for s in SHARES}
            rows.append(row)
            logger.info("min_effect %.2f, p %.2f: %s", effect, p, row)
    return {
        "decisive": args.decisive,
        "alpha": args.alpha,
        "beta": args.beta,
        "max_searches": args.max_searches,
        "trials": args.trials,
        "seed": args.seed,
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    """A Markdown table: one row per win rate, P(promote) and median searches per min_effect."""
    effects = sorted({r["min_effect"] for r in result["rows"]})
    rates = sorted({r["win_rate"] for r in result["rows"]})
    cell = {(r["min_effect"], r["win_rate"]): r for r in result["rows"]}
    head = "| true win rate | " + " | ".join(f"min_effect {e:.2f}: P(promote), median searches" for e in effects) + " |"
    lines = [head, "|---|" + "---|" * len(effects)]
    for p in rates:
        parts = []
        for e in effects:
            r = cell[(e, p)]
            limit = f", {r['ended_by_limit']:.0%} at limit" if r["ended_by_limit"] >= 0.05 else ""
            parts.append(f"{r['p_promote']:.3f}, {r['median_searches']}{limit}")
        lines.append(f"| {p:.2f} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--decisive", type=float, default=0.2, help="share of trial searches with a winner (measured 0.15-0.28)"
    )
    p.add_argument("--trials", type=int, default=2000, help="simulated trials per cell")
    p.add_argument("--min-effects", type=lambda s: [float(x) for x in s.split(",")], default=list(MIN_EFFECTS))
    p.add_argument("--win-rates", type=lambda s: [float(x) for x in s.split(",")], default=list(WIN_RATES))
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--max-searches", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if not 0.0 < args.decisive <= 1.0:
        p.error(f"--decisive {args.decisive} must be in (0, 1]")
    result = sweep(args)
    table = render(result)
    result["table"] = table
    sys.stdout.write(table + "\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        logger.info("Wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
