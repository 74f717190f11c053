"""``EmbeddingFineTuner`` (the spec's class): trains a candidate from a parent model.

It uses sentence-transformers' own trainer, so the same code runs on one CPU,
one GPU, or several devices under ``torchrun`` / ``accelerate launch`` (the
trainer handles DDP; see ``docs/training.md``). Guards against forgetting: a
small learning rate, one epoch by default, replay of earlier feedback (the
cycle's job), and an optional distillation term toward the parent.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedloop.errors import TrainingDataError
from embedloop.progress import library_progress, progress_enabled
from embedloop.settings import LossName, Settings
from embedloop.training.averaging import (
    average_into,
    choose_alpha,
    running_mean,
    snapshot,
    soup_draws,
    token_total,
)
from embedloop.training.examples import TrainingExample
from embedloop.training.losses import build_distill_loss, build_loss
from embedloop.training.multitask import multitask_columns, multitask_losses

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced and how fast."""

    path: Path
    rows: int
    steps: int
    seconds: float
    train_loss: float | None
    model: Any = None
    #: With ``auto_averaging``: the chosen mixing weight and the held-out score of every one tried.
    averaging: dict[str, Any] | None = None
    #: Fine-tunes averaged into the result (``train_draws``, or fewer under ``soup_cost_cap``).
    draws: int = 1

    @property
    def examples_per_second(self) -> float:
        """Training rows processed per second (all epochs)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def feedback_rows(
    examples: Sequence[TrainingExample], texts: Mapping[str, str], loss: LossName, negatives: int
) -> dict[str, list[str]]:
    """Dataset columns for ``loss`` from examples (ids resolved to texts)."""

    def text_of(ex: TrainingExample) -> tuple[str, list[str]]:
        if ex.positive_text is not None:
            return ex.positive_text, list(ex.negative_texts)
        return texts[ex.positive], [texts[n] for n in ex.negatives if n in texts]

    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    if loss is LossName.TRIPLET:
        columns["negative"] = []
        for ex in examples:
            pos, negs = text_of(ex)
            for neg in negs[: max(1, negatives)]:
                columns["anchor"].append(ex.query)
                columns["positive"].append(pos)
                columns["negative"].append(neg)
        return columns
    for i in range(negatives):
        columns[f"negative_{i + 1}"] = []
    for ex in examples:
        pos, negs = text_of(ex)
        if negatives and not negs:
            continue  # the cycle pads negatives; a domain pair without one cannot fill the columns
        columns["anchor"].append(ex.query)
        columns["positive"].append(pos)
        for i in range(negatives):
            columns[f"negative_{i + 1}"].append(negs[i % len(negs)])
    return columns


def _world_size() -> int:
    """Processes training together (``torchrun`` sets ``WORLD_SIZE``)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


class EmbeddingFineTuner:
    """Fine-tunes a sentence-transformers model on feedback examples."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def train(
        self,
        parent: Path | Any,
        examples: Sequence[TrainingExample],
        texts: Mapping[str, str],
        output_dir: Path,
        *,
        distill_texts: Sequence[str] = (),
        judgments: Sequence[TrainingExample] = (),
        select: Callable[[Any], float] | None = None,
        reembed_texts: Sequence[str] = (),
    ) -> TrainResult:
        """Train from ``parent`` (a folder or a loaded model) and save the candidate to ``output_dir``.

        ``judgments``: judged examples (``training.multitask.judged_examples``); with
        ``multi_task`` they train as their own dataset, otherwise they join the click examples.
        ``select(model)``: a held-out score (higher is better); when given (the cycle passes one with
        ``auto_averaging``), the saved weights are the interpolation of the start and the trained weights
        it rates best.
        ``reembed_texts``: the catalog texts the cycle re-embeds with the result (full mode); with them, a soup
        trains fewer than ``train_draws`` draws where more would break ``soup_cost_cap``. Empty: no cap.
        """
        import torch
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer

        s = self.settings
        with library_progress(s.show_progress):
            model = (
                parent
                if not isinstance(parent, str | Path)
                else SentenceTransformer(str(parent), device=s.device or "cpu", local_files_only=True)
            )
        if (model.max_seq_length or 0) > s.max_seq_length:
            model.max_seq_length = s.max_seq_length
        train_data: Any
        loss: Any
        if s.multi_task:  # issue 11: one dataset and one loss per objective
            per_task = multitask_columns(examples, texts, s, judgments)
            rows = sum(len(c["anchor"]) for c in per_task.values())
            row_texts = [t for cols in per_task.values() for column in cols.values() for t in column]
            train_data = {name: Dataset.from_dict(cols) for name, cols in per_task.items()}
            loss = multitask_losses(per_task, model, s)
        else:
            columns = feedback_rows([*examples, *judgments], texts, s.loss, s.hard_negatives)
            rows = len(columns["anchor"])
            row_texts = [t for column in columns.values() for t in column]
            train_data = Dataset.from_dict(columns)
            loss = build_loss(s.loss, model)
        if rows == 0:
            raise TrainingDataError(
                f"No training rows could be built from {len(examples)} example(s): each needs a query, a selected "
                f"item with text and, with {s.hard_negatives} hard negative(s) per row, at least one negative. "
                "Record more feedback (searches where something was selected), or lower EMBEDLOOP_HARD_NEGATIVES."
            )
        if s.distill_weight > 0 and distill_texts:
            sample = list(distill_texts)
            random.Random(s.seed).shuffle(sample)
            sample = sample[: max(rows, 64)]
            labels = model.encode(sample, batch_size=s.encode_batch_size, convert_to_numpy=True)
            distill = Dataset.from_dict({"text": sample, "label": [v.tolist() for v in labels]})
            if not isinstance(train_data, dict):
                train_data, loss = {"feedback": train_data}, {"feedback": loss}
            train_data["distill"] = distill
            loss["distill"] = build_distill_loss(model, s.distill_weight)
            rows += len(sample)
            row_texts += sample
        logger.info("Training on %d rows (%s loss, %d epoch(s), lr %g)", rows, s.loss.value, s.epochs, s.learning_rate)
        draws = self._affordable_draws(model, row_texts, reembed_texts)
        if draws < s.train_draws:
            logger.info(
                "Training %d of the %d draws asked for: %d rows against %d catalog items to re-embed, and more draws "
                "would make the cycle over %g x one draw's (EMBEDLOOP_SOUP_COST_CAP)",
                draws,
                s.train_draws,
                rows,
                len(reembed_texts),
                s.soup_cost_cap,
            )
        soup = draws > 1
        anchor = snapshot(model) if s.weight_averaging < 1.0 or select is not None or soup else None  # issue 11
        started = time.perf_counter()
        mean: dict[str, Any] | None = None
        steps, losses = 0, []
        for draw in range(draws):
            if draw and anchor is not None:
                with torch.no_grad():
                    model.load_state_dict(anchor)  # every draw starts from the same weights
            trainer, output = self._fit(model, train_data, loss, rows, s.seed + draw)
            steps += int(output.global_step)
            if output.training_loss is not None:
                losses.append(float(output.training_loss))
            if soup:
                mean = running_mean(mean, model.state_dict(), draw + 1)
        if mean is not None:
            with torch.no_grad():
                model.load_state_dict(mean)
            logger.info(
                "Averaged %d fine-tunes (seeds %d to %d): a model soup",
                draws,
                s.seed,
                s.seed + draws - 1,
            )
        seconds = time.perf_counter() - started
        averaging: dict[str, Any] | None = None
        if anchor is not None and select is not None:
            tick = time.perf_counter()
            alpha, scores = choose_alpha(model, anchor, select)
            averaging = {
                "alpha": alpha,
                "scores": {str(a): round(v, 4) for a, v in scores.items()},
                "seconds": round(time.perf_counter() - tick, 2),
            }
            logger.info("Chose the mixing weight %g on held-out feedback (score by weight: %s)", alpha, scores)
        elif anchor is not None and s.weight_averaging < 1.0:
            average_into(model, anchor, s.weight_averaging)
            logger.info("Averaged the trained weights with the starting ones (alpha %g)", s.weight_averaging)
        if trainer.is_world_process_zero():  # under torchrun, one process writes the weights
            output_dir.mkdir(parents=True, exist_ok=True)
            model.save(str(output_dir))
        return TrainResult(
            path=output_dir,
            rows=rows * s.epochs * draws,
            steps=steps,
            seconds=seconds,
            train_loss=sum(losses) / len(losses) if losses else None,
            model=model,
            averaging=averaging,
            draws=draws,
        )

    def _affordable_draws(self, model: Any, row_texts: Sequence[str], reembed_texts: Sequence[str]) -> int:
        """``train_draws``, or fewer under ``soup_cost_cap`` (``training.averaging.soup_draws``)."""
        s = self.settings
        if s.train_draws <= 1 or s.soup_cost_cap <= 0 or not reembed_texts or not row_texts:
            return s.train_draws
        tokenizer, length = model.tokenizer, model.max_seq_length or s.max_seq_length
        rows = token_total(tokenizer, row_texts, length)
        catalog = token_total(tokenizer, reembed_texts, length)
        return soup_draws(s.train_draws, rows, s.epochs, catalog, s.soup_cost_cap)

    def _fit(self, model: Any, train_data: Any, loss: Any, rows: int, seed: int) -> tuple[Any, Any]:
        """One run of sentence-transformers' trainer over ``train_data``; returns (trainer, its output)."""
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        s = self.settings
        scratch = Path(tempfile.mkdtemp(prefix="embedloop-train-"))
        args = SentenceTransformerTrainingArguments(
            output_dir=str(scratch),
            num_train_epochs=s.epochs,
            per_device_train_batch_size=max(2, min(s.train_batch_size, rows // _world_size())),
            learning_rate=s.learning_rate,
            # A float is a ratio of all steps (transformers v5). No warm-up for short runs: with one or two
            # steps, a warm-up would train at a learning rate of ~0 and change nothing.
            warmup_steps=0.1 if rows // max(2, s.train_batch_size) * s.epochs >= 10 else 0,
            seed=seed,
            data_seed=seed,
            batch_sampler="no_duplicates" if s.loss is LossName.MNRL else "batch_sampler",
            save_strategy="no",
            report_to="none",
            logging_steps=max(1, rows // max(2, s.train_batch_size) // 5),
            disable_tqdm=not progress_enabled(s.show_progress),  # bars only on a terminal
            use_cpu=(s.device or "cpu") == "cpu",
            dataloader_drop_last=False,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_data, loss=loss)
        try:
            return trainer, trainer.train()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
