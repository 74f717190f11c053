"""Phase 3: training throughput, product vs a bare sentence-transformers trainer."""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perf.common import make_catalog, make_query, ratio, settings_for

log = logging.getLogger("bench.performance")


# --------------------------------------------------------------------------- 3. training throughput
def training_examples(items: Sequence[dict[str, Any]], n: int, negatives: int = 2, seed: int = 3) -> tuple[list, dict]:
    """``n`` examples: a derived query, its item, ``negatives`` items of the same sector (hard-ish)."""
    from embedloop.training.examples import TrainingExample

    rng = random.Random(seed)
    by_sector: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_sector.setdefault(item["sector"], []).append(item)
    chosen = rng.sample(list(items), min(n, len(items)))
    examples = []
    for item in chosen:
        pool = [x["id"] for x in by_sector[item["sector"]] if x["id"] != item["id"]] or [
            x["id"] for x in items if x["id"] != item["id"]
        ]
        examples.append(TrainingExample(make_query(item, rng), item["id"], rng.sample(pool, min(negatives, len(pool)))))
    return examples, {i["id"]: i["text"] for i in items}


def train_product(model_dir: Path, examples: list, texts: dict, settings: Any, out: Path) -> dict[str, Any]:
    from embedloop.training.finetuner import EmbeddingFineTuner

    tick = time.perf_counter()
    result = EmbeddingFineTuner(settings).train(model_dir, examples, texts, out)
    wall = time.perf_counter() - tick
    return {"rows": result.rows, "steps": result.steps, "train_seconds": result.seconds, "wall_seconds": wall}


def train_bare(model_dir: Path, examples: list, texts: dict, settings: Any, out: Path) -> dict[str, Any]:
    """A bare sentence-transformers run on the same rows (same batch size, epochs, seed, learning rate)."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from embedloop.training.finetuner import feedback_rows

    tick = time.perf_counter()
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.max_seq_length = min(model.max_seq_length or 128, settings.max_seq_length)
    columns = feedback_rows(examples, texts, settings.loss, settings.hard_negatives)
    rows = len(columns["anchor"])
    scratch = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=min(settings.train_batch_size, rows),
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=MultipleNegativesRankingLoss(model)
    )
    start = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - start
    model.save(str(out))
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "rows": rows * settings.epochs,
        "steps": int(output.global_step),
        "train_seconds": train_s,
        "wall_seconds": time.perf_counter() - tick,
    }


def bench_training(model_dir: Path, n: int, work: Path, repeats: int = 2, seed: int = 3) -> dict[str, Any]:
    """Product vs bare trainer on the same ``n`` rows, alternating (bare, product, product, bare, ...)."""
    items = make_catalog(max(2000, n * 2), seed=seed)
    examples, texts = training_examples(items, n, seed=seed)
    # One draw: the bare trainer runs once, so the product does too (train_draws > 1 is k such runs, averaged).
    settings = settings_for(work / "train-settings", train_draws=1)
    runs: dict[str, list[dict[str, Any]]] = {"product": [], "bare": []}
    for rep in range(repeats):
        order = ("bare", "product") if rep % 2 == 0 else ("product", "bare")
        for name in order:
            out = work / f"train-{name}-{rep}"
            fn = train_product if name == "product" else train_bare
            res = fn(model_dir, examples, texts, settings, out)
            shutil.rmtree(out, ignore_errors=True)
            log.info(
                "training %s rep %d: %d rows, %.1f s train, %.1f s wall",
                name,
                rep,
                res["rows"],
                res["train_seconds"],
                res["wall_seconds"],
            )
            runs[name].append(res)

    def rate(name: str, key: str) -> float:
        return sum(r["rows"] for r in runs[name]) / sum(r[key] for r in runs[name])

    out: dict[str, Any] = {
        "examples": len(examples),
        "rows": runs["product"][0]["rows"],
        "repeats": repeats,
        "batch_size": settings.train_batch_size,
        "epochs": settings.epochs,
        "loss": settings.loss.value,
        "hard_negatives": settings.hard_negatives,
        "runs": {k: [{kk: round(vv, 3) for kk, vv in r.items()} for r in v] for k, v in runs.items()},
    }
    for key in ("train_seconds", "wall_seconds"):
        label = "train_loop" if key == "train_seconds" else "end_to_end"
        out[f"product_{label}_rows_per_second"] = round(rate("product", key), 2)
        out[f"bare_{label}_rows_per_second"] = round(rate("bare", key), 2)
        out[f"{label}_ratio"] = ratio(rate("product", key), rate("bare", key))
    return out
