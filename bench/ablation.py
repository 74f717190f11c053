"""Ablation: one round of simulated feedback, many training settings, each candidate scored on dev.

``feedback_quality.py`` answers "does the loop improve search?" end to end, but a rejected candidate is
gone before anyone can ask whether the gate was right. This script answers the questions behind the
defaults: for the *same* feedback (one round of simulated users through the public API), it runs the
product's own cycle once per setting — each on a copy of the storage, so every setting sees identical
feedback — with the pre-check's verdict (and the held-out gate's, trials off) recorded but the candidate promoted
anyway, then scores it on dev.
Each row reports the gate's decision, whether that decision was right (did dev NDCG@10 rise?), the dev
metrics, gain recovered against one oracle (default settings, same budget), and the cycle time.

    python bench/ablation.py --dataset scifact --sessions 400 \\
        --config default --config "lr5e-5:learning_rate=5e-5" --config "adapter:training_mode=adapter"

A config is ``name`` (the defaults) or ``name:key=value,key=value`` (any ``Settings`` fields).
Writes ``ablation.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if (ROOT / "src").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from embedloop.benchmarks.beir import load_beir  # noqa: E402
from embedloop.benchmarks.quality import (  # noqa: E402
    DATA_ROOT,
    DEFAULTS,
    METRICS,
    evaluate_active,
    evaluate_model,
    index_corpus,
    load_base_model,
    shown_quality,
    simulate_round,
    train_naive,
    train_oracle,
)

logger = logging.getLogger("bench.ablation")


def parse_config(text: str) -> tuple[str, dict[str, str]]:
    """``name`` or ``name:key=value,key=value``."""
    name, _, rest = text.partition(":")
    changes = {}
    for part in filter(None, (x.strip() for x in rest.split(","))):
        if "=" not in part:
            raise SystemExit(f"--config {text!r}: expected key=value, got {part!r}")
        key, value = part.split("=", 1)
        changes[key.strip()] = value.strip()
    return name.strip(), changes


def run_config(settings: Any, changes: dict[str, str], feedback_storage: Path, data: Any, split: str) -> dict[str, Any]:
    """The product's cycle under ``changes`` on a copy of ``feedback_storage``; the candidate is always promoted."""
    from embedloop import EmbedLoop
    from embedloop.training import cycle

    storage = Path(tempfile.mkdtemp(prefix="embedloop-ablation-"))
    shutil.rmtree(storage)
    shutil.copytree(feedback_storage, storage)
    verdict: dict[str, Any] = {}
    real_judge = cycle.judge

    def recording_judge(s: Any, metrics: dict[str, dict[str, float]]) -> list[str]:
        # what the pre-check (trials on) and the held-out gate alone (trials off) would say; then force it through
        verdict["reasons"] = real_judge(s.replace(trials=True), metrics)
        verdict["gate_alone"] = real_judge(s.replace(trials=False), metrics)
        return []

    cycle.judge = recording_judge  # type: ignore[assignment]
    try:
        loop = EmbedLoop(settings.replace(storage_path=storage, trials=False, **changes))
        tick = time.perf_counter()
        result = loop.fine_tune(force=True)
        seconds = time.perf_counter() - tick
        dev = evaluate_active(loop, data, split) if result["status"] == "promoted" else None
        version = result.get("version")
        training = loop.registry.manifest(version).get("training", {}) if version is not None else {}
        loop.close()
    finally:
        cycle.judge = real_judge  # type: ignore[assignment]
        shutil.rmtree(storage, ignore_errors=True)
    reasons = verdict.get("reasons", result.get("reasons", []))
    return {
        "changes": changes,
        "status": result["status"],
        "gate": "promote" if result["status"] == "promoted" and not reasons else "reject",
        "gate_alone_reasons": verdict.get("gate_alone", []),
        "gate_reasons": reasons,
        "gate_metrics": result.get("metrics", {}),
        "train_examples": result.get("train_examples"),
        "timings": result.get("timings", {}),
        "averaging": training.get("averaging"),  # auto_averaging: the chosen mixing weight and every score
        "cycle_seconds": round(seconds, 2),
        "dev": dev,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="scifact")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT)
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--sessions", type=int, default=400, help="simulated sessions (one round)")
    p.add_argument("--theta", type=float, default=1.0)
    p.add_argument("--p-relevant", type=float, default=0.9)
    p.add_argument("--p-irrelevant", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--random-selections", action="store_true")
    p.add_argument("--exploration", choices=["off", "fairpairs", "insert", "both"], default="off")
    p.add_argument("--exploration-rate", type=float, default=0.1)
    p.add_argument("--corpus-limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--config", action="append", default=[], help="name or name:key=value,... (repeat)")
    p.add_argument("--set", dest="base_set", action="append", default=[], help="KEY=VALUE for every config")
    p.add_argument("--no-oracle", action="store_true")
    p.add_argument(
        "--oracle-only",
        action="store_true",
        help="score the oracle alone, no config rows: the oracle of the same budget under other base settings "
        "(--set) for rows measured in an earlier run of the same seed",
    )
    p.add_argument(
        "--oracle-top",
        type=int,
        default=0,
        metavar="K",
        help="also train an oracle on judged pairs the base model ranks in its top K only "
        "(what clicks on its results could reveal at best)",
    )
    p.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add a row for the naive loop (MNRL on every click, skip-above negatives, lr 2e-5, always promoted); "
        "on by default, off with --oracle-only",
    )
    p.add_argument("--index-cache", type=Path, default=ROOT / "bench-results" / "index-cache")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("sentence_transformers", "transformers", "httpx", "datasets", "embedloop"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from embedloop import Settings

    if args.oracle_only and (args.no_oracle or args.config or args.naive):
        p.error("--oracle-only scores the oracle alone: leave out --no-oracle, --config and --naive")
    if args.naive is None:
        args.naive = not args.oracle_only
    configs = [] if args.oracle_only else [parse_config(c) for c in (args.config or ["default"])]
    out_dir = args.out or ROOT / "bench-results" / f"ablation-{args.dataset}"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_beir(
        args.data_root / args.dataset, splits=("train", "dev"), corpus_limit=args.corpus_limit, seed=args.seed
    )
    storage = Path(tempfile.mkdtemp(prefix=f"embedloop-ablation-{args.dataset}-"))
    base_changes = dict(parse_config("base:" + ",".join(args.base_set))[1])
    settings = Settings(
        embedding_model=args.model, storage_path=storage, fine_tune_threshold=1, show_progress=False, **base_changes
    )
    try:
        items = [{"id": d, "text": t} for d, t in sorted(data.corpus.items())]
        loop = index_corpus(settings, items, args.dataset, args.index_cache)
        base = evaluate_active(loop, data, "dev")
        logger.info("Base dev: %s", base)
        exploration_cost = (
            shown_quality(loop, data, "dev", args.exploration, args.exploration_rate)
            if args.exploration != "off"
            else None
        )
        rel = data.relevant("train")
        sim = simulate_round(loop, data, sorted(rel), rel, args, random.Random(args.seed))
        pairs = sim.pop("pairs")
        logger.info("Feedback: %s", sim)
        oracle = None
        if not args.no_oracle:
            state0 = loop.searcher.state
            key_of = {item_id: key for key, (item_id, _t) in state0.items.items()}
            base_vecs = state0.index.vectors([key_of[d] for d in sorted(data.corpus)])
            oracle = {}
            for within in [None] + ([args.oracle_top] if args.oracle_top else []):  # any rank; the base's top K
                model, info = train_oracle(
                    loop, data, len(pairs), args.seed, storage / "oracle-scratch", base_vecs, within
                )
                row = {
                    "dev": evaluate_model(model, data, "dev", sorted(data.corpus), settings.encode_batch_size),
                    **info,
                }
                shutil.rmtree(storage / "oracle-scratch", ignore_errors=True)
                if within is None:
                    oracle = row
                else:
                    oracle[f"within_top_{within}"] = row
                logger.info("Oracle (%s): %s", "any rank" if within is None else f"top {within}", row["dev"])
        naive = None
        if args.naive:
            tick = time.perf_counter()
            model = load_base_model(loop)
            sessions = loop.store.feedback_sessions()
            ids = {i for x in sessions for i in x.shown}
            info = train_naive(model, sessions, loop.store.iter_item_texts(ids), settings)
            naive = {
                "name": "naive",
                "changes": {"naive": True},
                "gate": "promote",
                "gate_reasons": [],
                "dev": evaluate_model(model, data, "dev", sorted(data.corpus), settings.encode_batch_size),
                "cycle_seconds": round(time.perf_counter() - tick, 2),
                "timings": info,
            }
            logger.info("Naive dev: %s", naive["dev"])
        loop.close()
        rows: list[dict[str, Any]] = []

        def write_report() -> None:  # after every row: a long run keeps what it has measured
            report = {
                "dataset": args.dataset,
                "sessions": args.sessions,
                "feedback": sim,
                "noise": args.noise,
                "random_selections": args.random_selections,
                "exploration": {"mode": args.exploration, "rate": args.exploration_rate, "cost": exploration_cost},
                "seed": args.seed,
                "base_set": base_changes,
                "base": base,
                "oracle": oracle,
                "rows": rows,
            }
            (out_dir / "ablation.json").write_text(json.dumps(report, indent=2, default=str))

        pending: list[tuple[str, dict[str, str]]] = ([("naive", {})] if naive is not None else []) + configs
        for name, changes in pending:
            if naive is not None and name == "naive" and not changes:
                row = dict(naive)
            else:
                row = {"name": name, **run_config(settings, changes, storage, data, "dev")}
            if row["dev"] is not None:
                row["dev_gain"] = {m: round(row["dev"][m] - base[m], 5) for m in METRICS}
                if oracle is not None and oracle["dev"]["ndcg@10"] != base["ndcg@10"]:
                    row["gain_recovered"] = round(
                        (row["dev"]["ndcg@10"] - base["ndcg@10"]) / (oracle["dev"]["ndcg@10"] - base["ndcg@10"]), 3
                    )
                row["gate_right"] = (row["gate"] == "promote") == (row["dev_gain"]["ndcg@10"] > 0)
            row["max_rss_mb_so_far"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            rows.append(row)
            logger.info(
                "%s: gate %s (%s); dev ndcg@10 gain %s; gain recovered %s; cycle %.1f s",
                name,
                row["gate"],
                "; ".join(row["gate_reasons"]) or "ok",
                row.get("dev_gain", {}).get("ndcg@10"),
                row.get("gain_recovered"),
                row["cycle_seconds"],
            )
            write_report()
        if not pending:  # --oracle-only: no rows, the oracle alone
            write_report()
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
