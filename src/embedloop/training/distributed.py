"""Train a candidate on several devices, then let the one-process gate judge it.

Two steps, so only the training runs distributed::

    python -m embedloop.training.distributed export --output examples.jsonl
    torchrun --nproc_per_node=2 -m embedloop.training.distributed train \\
        --examples examples.jsonl --parent PATH --output ./candidate

``export`` writes the examples the next cycle would train on (texts, not ids).
``train`` runs :class:`EmbeddingFineTuner` — the sentence-transformers trainer
picks up the ``torchrun`` environment (DDP; gloo on CPU, NCCL on GPUs) — and
rank 0 saves the model. Evaluate it like any other candidate with
``EmbedLoop.evaluate(candidate=path)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from embedloop.settings import Settings
from embedloop.training.examples import TrainingExample
from embedloop.training.finetuner import EmbeddingFineTuner

logger = logging.getLogger(__name__)


def write_examples(examples: list[TrainingExample], texts: dict[str, str], path: Path) -> int:
    """Write examples as JSONL with texts resolved; returns the count."""
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            positive = ex.positive_text if ex.positive_text is not None else texts[ex.positive]
            negatives = ex.negative_texts or [texts[n] for n in ex.negatives if n in texts]
            fh.write(json.dumps({"query": ex.query, "positive": positive, "negatives": negatives}) + "\n")
    return len(examples)


def read_examples(path: Path) -> list[TrainingExample]:
    """Read examples written by :func:`write_examples`."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(
                TrainingExample(
                    row["query"], "", positive_text=row["positive"], negative_texts=list(row.get("negatives", []))
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m embedloop.training.distributed", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write the next cycle's training examples as JSONL")
    export.add_argument("--output", type=Path, required=True)
    train = sub.add_parser("train", help="train a candidate (run under torchrun for several devices)")
    train.add_argument("--examples", type=Path, required=True)
    train.add_argument("--parent", type=Path, required=True, help="folder of the parent model's weights")
    train.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if args.command == "export":
        from embedloop.loop import EmbedLoop
        from embedloop.training.cycle import next_training_examples

        with EmbedLoop(settings) as loop:
            examples, texts = next_training_examples(loop.services())
            count = write_examples(examples, texts, args.output)
        logger.info("Wrote %d examples to %s", count, args.output)
        return 0
    import torch.distributed as dist

    examples = read_examples(args.examples)
    try:
        result = EmbeddingFineTuner(settings).train(args.parent, examples, {}, args.output)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank waits until rank 0 has written the weights
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()  # a rank exiting with a live group aborts the others
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info("Trained %d rows in %.1fs; saved to %s", result.rows, result.seconds, result.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
