"""Training modes that keep document embeddings frozen: ``adapter`` and ``query_encoder``.

Both optimise the same objective as :mod:`.losses.mnrl`, but against the
*precomputed* catalog vectors of the document generation instead of
re-encoded documents: for each query, a softmax over its selected item's
vector, its hard negatives' vectors and every other row's vectors in the batch
(scale 20); in-batch columns that are the row's own positive item are masked.
Nothing in the catalog is re-embedded, so promotion and rollback are instant.

- ``adapter`` (:func:`train_adapter`): queries are embedded once by the parent;
  only a low-rank residual map (:class:`~embedloop.models.query_side.LowRankAdapter`)
  is trained. The cheapest mode.
- ``query_encoder`` (:func:`train_query_encoder`): a copy of the encoder is
  fine-tuned on queries only (short texts, so back-propagation is cheap), with
  a term that keeps each query near the parent's embedding of it — queries must
  stay in the space the frozen documents live in.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from embedloop.models.query_side import LowRankAdapter
from embedloop.settings import Settings
from embedloop.training.examples import TrainingExample

logger = logging.getLogger(__name__)
SCALE = 20.0
#: Weight of ``1 - cos(query, parent's query)`` in query-encoder training (a drift guard).
ANCHOR_WEIGHT = 1.0


@dataclass
class FrozenBatchData:
    """Queries with the document vectors of their positive and negatives."""

    queries: list[str]
    positives: np.ndarray  # (n, d)
    negatives: np.ndarray  # (n, k, d)
    positive_ids: list[str]


def frozen_targets(
    examples: Sequence[TrainingExample],
    vector_of: Callable[[list[str]], np.ndarray],
    encode_docs: Callable[[list[str]], np.ndarray],
    negatives: int,
) -> FrozenBatchData:
    """Look up (or, for domain texts, encode once) the document vectors of every example."""
    rows = [ex for ex in examples if ex.positive_text is not None or ex.positive]
    k = max(1, negatives)
    ids = sorted({ex.positive for ex in rows if ex.positive_text is None} | {n for ex in rows for n in ex.negatives})
    id_vectors = dict(zip(ids, vector_of(ids), strict=True)) if ids else {}
    texts = sorted(
        {ex.positive_text for ex in rows if ex.positive_text is not None}
        | {t for ex in rows for t in ex.negative_texts}
    )
    text_vectors = dict(zip(texts, encode_docs(texts), strict=True)) if texts else {}
    pos, neg, queries, pos_ids = [], [], [], []
    for ex in rows:
        p = text_vectors[ex.positive_text] if ex.positive_text is not None else id_vectors[ex.positive]
        ns = [id_vectors[n] for n in ex.negatives if n in id_vectors] + [text_vectors[t] for t in ex.negative_texts]
        if not ns:
            continue
        queries.append(ex.query)
        pos.append(p)
        neg.append(np.stack([ns[i % len(ns)] for i in range(k)]))
        pos_ids.append(ex.positive or (ex.positive_text or ""))
    dim = next(iter(id_vectors.values()), next(iter(text_vectors.values()), np.zeros(1))).shape[0]
    return FrozenBatchData(
        queries,
        np.stack(pos) if pos else np.zeros((0, dim), np.float32),
        np.stack(neg) if neg else np.zeros((0, k, dim), np.float32),
        pos_ids,
    )


def frozen_contrastive_loss(
    q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, pos_ids: Sequence[str]
) -> torch.Tensor:
    """InfoNCE of queries against fixed positives (in-batch) and their own hard negatives."""
    in_batch = q @ pos.T  # (b, b)
    same = torch.tensor([[a == b for b in pos_ids] for a in pos_ids], dtype=torch.bool)
    same.fill_diagonal_(False)
    in_batch = in_batch.masked_fill(same, float("-inf"))
    hard = torch.einsum("bd,bkd->bk", q, neg)  # (b, k)
    logits = SCALE * torch.cat([in_batch, hard], dim=1)
    return nn.functional.cross_entropy(logits, torch.arange(q.shape[0]))


def _batches(n: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i : i + size] for i in range(0, n, size)]


def train_adapter(
    settings: Settings, data: FrozenBatchData, base_queries: np.ndarray, output_dir: Path
) -> tuple[LowRankAdapter, dict[str, Any]]:
    """Fit a low-rank residual adapter on fixed query and document vectors."""
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    adapter = LowRankAdapter(base_queries.shape[1], settings.adapter_rank)
    optimiser = torch.optim.AdamW(adapter.parameters(), lr=settings.adapter_learning_rate, weight_decay=0.01)
    q_all, p_all, n_all = (
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for x in (base_queries, data.positives, data.negatives)
    )
    started, steps, last = time.perf_counter(), 0, float("nan")
    adapter.train()
    for _ in range(settings.adapter_epochs):
        for idx in _batches(len(data.queries), settings.train_batch_size, rng):
            if len(idx) < 2:
                continue
            loss = frozen_contrastive_loss(
                adapter(q_all[idx]), p_all[idx], n_all[idx], [data.positive_ids[i] for i in idx]
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps, last = steps + 1, float(loss.detach())
    adapter.eval()
    adapter.save(output_dir)
    seconds = time.perf_counter() - started
    rows = len(data.queries) * settings.adapter_epochs
    logger.info(
        "Trained an adapter (rank %d) on %d queries in %.2fs", settings.adapter_rank, len(data.queries), seconds
    )
    return adapter, {"rows": rows, "steps": steps, "train_loss": last, "seconds": seconds}


def train_query_encoder(
    settings: Settings, data: FrozenBatchData, parent: Path, output_dir: Path
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune a copy of the encoder on queries against fixed document vectors."""
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    model = SentenceTransformer(str(parent), device=settings.device or "cpu", local_files_only=True)
    if (model.max_seq_length or 0) > settings.max_seq_length:
        model.max_seq_length = settings.max_seq_length
    p_all = torch.from_numpy(np.ascontiguousarray(data.positives, dtype=np.float32))
    n_all = torch.from_numpy(np.ascontiguousarray(data.negatives, dtype=np.float32))
    # The parent's query embeddings: an anchor that keeps queries from drifting off the frozen documents.
    anchors = torch.from_numpy(
        np.ascontiguousarray(
            model.encode(data.queries, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32
        )
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    started, steps, last = time.perf_counter(), 0, float("nan")
    model.train()
    for _ in range(settings.epochs):
        for idx in _batches(len(data.queries), settings.train_batch_size, rng):
            if len(idx) < 2:
                continue
            features = model.preprocess([data.queries[i] for i in idx])
            features = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            q = nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
            loss = frozen_contrastive_loss(q, p_all[idx], n_all[idx], [data.positive_ids[i] for i in idx])
            loss = loss + ANCHOR_WEIGHT * (1.0 - (q * anchors[idx]).sum(dim=1)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps, last = steps + 1, float(loss.detach())
    model.eval()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir))
    seconds = time.perf_counter() - started
    logger.info("Trained a query encoder on %d queries in %.1fs", len(data.queries), seconds)
    return model, {"rows": len(data.queries) * settings.epochs, "steps": steps, "train_loss": last, "seconds": seconds}
