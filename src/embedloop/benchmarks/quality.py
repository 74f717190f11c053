"""Quality benchmark: do simulated users' selections make search better?

Protocol (DESIGN.md, "Benchmarks"; issue 5):

1. the BEIR corpus is indexed through the public API (``EmbedLoop.add_items``)
   in a fresh temporary storage folder;
2. simulated users, through the public API only: a train query is picked at
   random, ``resp = loop.search(query, k=10)``, rank r is examined with
   probability (1/r)^theta, an examined judged-relevant result (qrels score
   > 0) is selected with probability ``--p-relevant``, an examined other one
   with ``--p-irrelevant``; each pick goes to ``loop.record_selection``.
   ``--noise p`` replaces each pick, with probability p, by a uniformly random
   shown result; ``--random-selections`` ignores relevance altogether (one
   uniformly random shown result per session);
3. after every round of ``--sessions`` sessions ``loop.fine_tune()`` runs the
   product's own cycle (``fine_tune_threshold``, counted in selections,
   defaults to the sessions per round on NFCorpus and half of them on
   SciFact, whose sessions yield ~0.6 selections each; a round that yields
   fewer is skipped by the product and its feedback carries over);
4. dev queries are scored WITHOUT ``loop.search`` (which would log
   impressions into the feedback store): the active version's encoder
   (``loop.searcher.state.encoder``) embeds the dev queries and the active
   index is searched with ``loop.searcher.search_vector`` (top 100). The
   serving index holds the active model's vectors of every document, so
   nothing is re-embedded for evaluation.
   Metrics: NDCG@10 (linear gains, log2 discount, as pytrec_eval / BEIR),
   MRR@10 and Recall@100 (relevant = score > 0);
5. oracle: ``EmbeddingFineTuner`` with the same Settings trains the base
   model once on (query, judged-relevant doc) pairs from the train qrels,
   as many pairs as distinct (query, selected doc) pairs the feedback
   produced, each with ``hard_negatives`` negatives mined from the base
   model's ranking (top results that are not judged relevant);
6. headline: gain recovered = (final - base) / (oracle - base) on NDCG@10.

Writes ``results.json`` and ``quality.png`` into ``--out``.

Run: ``embedloop bench quality --dataset nfcorpus --out bench-results/nfcorpus`` (or ``bench/feedback_quality.py``)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedloop.benchmarks.beir import BeirData, load_beir
from embedloop.evaluation.metrics import mean_ranking_metrics, ndcg_at_k
from embedloop.models.encoder import encode_queries
from embedloop.simulation import ClickModel, simulate_search
from embedloop.training.examples import normalise_query
from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)

#: Where the BEIR folders are looked for: $EMBEDLOOP_BENCH_DATA, else ./shared/data or ../shared/data.
DATA_ROOT = next(
    (
        Path(p)
        for p in (os.environ.get("EMBEDLOOP_BENCH_DATA"), "shared/data", "../shared/data", "/work/shared/data")
        if p and Path(p).is_dir()
    ),
    Path("../shared/data"),
)
#: Results go here unless --out says otherwise.
RESULTS_ROOT = Path("bench-results")


#: Default sizes per dataset (chosen to run in < 30 min on 2 CPU cores with MiniLM).
DEFAULTS = {
    # SciFact queries have ~1.1 relevant docs, so a session yields ~0.6 selections: threshold = half a round.
    "nfcorpus": {"sessions": 250, "rounds": 4, "corpus_limit": None, "threshold": 250},
    "scifact": {"sessions": 200, "rounds": 4, "corpus_limit": None, "threshold": 100},
}
METRICS = ("ndcg@10", "mrr@10", "recall@100")
#: Key of the per-query NDCG@10 values in a dev result (``score_run(..., per_query=True)``).
PER_QUERY = "per_query_ndcg@10"


# ---------------------------------------------------------------- metrics
def _verdict(cycle: dict[str, Any]) -> str:
    """A cycle's final verdict: a trial's outcome when it went to one, else the cycle's status."""
    return str(cycle.get("final_status", cycle["status"]))


def score_run(
    ranked: dict[str, list[str]], qrels: dict[str, dict[str, int]], *, per_query: bool = False
) -> dict[str, Any]:
    """Mean NDCG@10, MRR@10, Recall@100 over the queries of ``qrels`` (:mod:`embedloop.evaluation.metrics`).

    With ``per_query``, also ``PER_QUERY``: each scored query's NDCG@10, which the judge report pairs
    between a candidate and its rival to tell a real dev change from sampling noise.
    """
    runs = ((ranked.get(q, []), judged) for q, judged in qrels.items())
    out: dict[str, Any] = mean_ranking_metrics(runs, 10, recall_k=100)
    if per_query:
        out[PER_QUERY] = {
            q: round(ndcg_at_k(ranked.get(q, []), judged, 10), 6)
            for q, judged in qrels.items()
            if any(g > 0 for g in judged.values())
        }
    return out


def evaluate_active(loop: Any, data: BeirData, split: str) -> dict[str, Any]:
    """Dev metrics of the active version, through its encoder and serving index (no search log)."""
    state = loop.searcher.state
    qrels = data.qrels[split]
    qids = sorted(qrels)
    # the query side of the active version (query-side modes transform queries only)
    vectors = encode_queries(state.encoder, [data.queries[q] for q in qids], batch_size=loop.settings.encode_batch_size)
    ranked = {}
    for q, vec in zip(qids, vectors, strict=True):
        hits = loop.searcher.search_vector(state, vec[None, :], 100)
        ranked[q] = [state.items[key][0] for key, _score in hits]
    out = score_run(ranked, qrels, per_query=True)
    out["version"] = state.version
    return out


def evaluate_model(model: Any, data: BeirData, split: str, doc_ids: list[str], batch_size: int) -> dict[str, float]:
    """Dev metrics of a bare sentence-transformers model (exact inner-product search)."""
    from embedloop.models.encoder import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(model)
    docs = enc.encode([data.corpus[d] for d in doc_ids], batch_size=batch_size)
    qrels = data.qrels[split]
    qids = sorted(qrels)
    qv = enc.encode([data.queries[q] for q in qids], batch_size=batch_size)
    scores = qv @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    ranked = {q: [doc_ids[j] for j in row] for q, row in zip(qids, top, strict=True)}
    return score_run(ranked, qrels)


def score_candidate(encoder: Any, corpus: np.ndarray, doc_ids: list[str], data: BeirData, split: str) -> dict[str, Any]:
    """Dev metrics of a candidate from its encoder and the catalog vectors the cycle computed (exact search)."""
    qrels = data.qrels[split]
    qids = sorted(qrels)
    vectors = encode_queries(encoder, [data.queries[q] for q in qids], batch_size=64)
    scores = vectors @ corpus.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    return score_run({q: [doc_ids[j] for j in row] for q, row in zip(qids, top, strict=True)}, qrels, per_query=True)


class CandidateScorer:
    """Scores every candidate on dev when the cycle has scored it on held-out feedback, whatever its verdict.

    It wraps the cycle's ``score`` stage for the benchmark's run only (a rejected candidate's files are gone
    by the time ``fine_tune()`` returns, and a trial's verdict comes much later).
    """

    def __init__(self, data: BeirData, split: str) -> None:
        self.data, self.split = data, split
        self.scores: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> CandidateScorer:
        from embedloop.training import cycle

        self._real = cycle.score

        def scoring(sv: Any, state: Any, held: Any, candidate: Any, timings: dict[str, float]) -> Any:
            metrics = self._real(sv, state, held, candidate, timings)
            ids = [r.id for r in held.catalog]
            self.scores[candidate.version] = score_candidate(
                candidate.encoder, candidate.corpus, ids, self.data, self.split
            )
            return metrics

        cycle.score = scoring  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from embedloop.training import cycle

        cycle.score = self._real  # type: ignore[assignment]


def run_trial_traffic(
    loop: Any,
    data: BeirData,
    train_qids: list[str],
    rel: dict[str, set[str]],
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    """Keep the simulated users searching until the running trial is decided (or ``--trial-cap`` sessions).

    With ``--trial-reviews N`` a simulated reviewer also answers up to N review-queue questions after every
    100 sessions (from the train judgments), so the trial hears judgments as well as clicks.
    """
    from embedloop.benchmarks.review import answer_queue

    by_text = {normalise_query(data.queries[q]): q for q in train_qids if q in rel}

    def relevant_of(query: str) -> set[str] | None:
        qid = by_text.get(normalise_query(query))
        return rel[qid] if qid is not None else None

    chunk = argparse.Namespace(**{**vars(args), "sessions": 100})
    sessions = selections = answered = 0
    while loop.status()["trial"] is not None and sessions < args.trial_cap:
        sim = simulate_round(loop, data, train_qids, rel, chunk, rng)
        sessions += sim["sessions"]
        selections += sim["selections"]
        reviews = getattr(args, "trial_reviews", 0)
        if reviews and loop.status()["trial"] is not None:
            answered += answer_queue(loop, reviews, relevant_of)["questions"]
    if loop.status()["trial"] is not None:  # the cap: the benchmark, not the product, gives up
        loop.stop_trial(f"benchmark traffic cap of {args.trial_cap} sessions reached")
    last = loop.trials(limit=1)[0]
    return {
        "sessions": sessions,
        "selections": selections,
        "reviews": answered,
        "trial_id": last["id"],
        "status": last["status"],
        "outcome": last.get("outcome"),
        "reason": last.get("reason"),
    }


# ---------------------------------------------------------------- simulation
def simulate_round(
    loop: Any,
    data: BeirData,
    train_qids: list[str],
    rel: dict[str, set[str]],
    args: argparse.Namespace,
    rng: random.Random,
) -> dict[str, Any]:
    """``args.sessions`` simulated sessions through the public API."""
    selections = relevant_picks = sessions_with_pick = 0
    pairs: set[tuple[str, str]] = set()
    model = ClickModel(
        theta=args.theta,
        p_relevant=args.p_relevant,
        p_irrelevant=args.p_irrelevant,
        noise=args.noise,
        uniform_random=bool(getattr(args, "random_selections", False)),
    )
    exploring = getattr(args, "exploration", "off") != "off"
    for _ in range(args.sessions):
        qid = rng.choice(train_qids)
        if exploring:  # the shown list is randomised (search/exploration.py) and logged as external feedback
            shown = explored_list(loop, data.queries[qid], args, rng)
            picked = list(dict.fromkeys(model.clicks(shown, rel[qid], rng)))
            loop.record_feedback(data.queries[qid], shown=shown, selected=picked)
        else:
            picked = simulate_search(loop, data.queries[qid], rel[qid], model, rng, k=10).picks
        for item in picked:
            selections += 1
            relevant_picks += item in rel[qid]
            pairs.add((qid, item))
        sessions_with_pick += bool(picked)
    return {
        "sessions": args.sessions,
        "selections": selections,
        "relevant_selections": relevant_picks,
        "sessions_with_selection": sessions_with_pick,
        "pairs": pairs,
    }


def explored_list(loop: Any, query: str, args: argparse.Namespace, rng: random.Random) -> list[str]:
    """The top 10 shown under ``args.exploration`` from the active model's top 50 (nothing is logged here).

    Emulates serving with ``Settings(exploration=...)`` until the search path applies it itself.
    """
    from embedloop.search.exploration import explore

    state = loop.searcher.state
    vec = encode_queries(state.encoder, [query], batch_size=1)
    ranked = [state.items[key][0] for key, _score in loop.searcher.search_vector(state, vec[:1], 50)]
    return explore(ranked, 10, mode=args.exploration, rate=args.exploration_rate, rng=rng).shown


def shown_quality(
    loop: Any, data: BeirData, split: str, mode: str, rate: float, draws: int = 20, seed: int = 0
) -> dict[str, float]:
    """What exploration costs users: mean NDCG@10 / MRR@10 of the *shown* lists on ``split`` queries."""
    from embedloop.search.exploration import explore

    state = loop.searcher.state
    qrels = data.qrels[split]
    qids = sorted(qrels)
    vectors = encode_queries(state.encoder, [data.queries[q] for q in qids], batch_size=loop.settings.encode_batch_size)
    ranked = {
        q: [state.items[key][0] for key, _s in loop.searcher.search_vector(state, v[None, :], 50)]
        for q, v in zip(qids, vectors, strict=True)
    }
    rng = random.Random(seed)
    runs = [
        score_run({q: explore(r, 10, mode=mode, rate=rate, rng=rng).shown for q, r in ranked.items()}, qrels)
        for _ in range(draws)
    ]
    plain = score_run({q: r[:10] for q, r in ranked.items()}, qrels)
    return {
        "mode": mode,  # type: ignore[dict-item]
        "rate": rate,
        "ndcg@10_plain": plain["ndcg@10"],
        "ndcg@10_shown": float(np.mean([x["ndcg@10"] for x in runs])),
        "mrr@10_plain": plain["mrr@10"],
        "mrr@10_shown": float(np.mean([x["mrr@10"] for x in runs])),
    }


def time_rollback(loop: Any, repeats: int = 3) -> dict[str, Any] | None:
    """Median seconds of ``rollback()`` to the parent and back to the final version (None: nothing promoted)."""
    final = loop.active_version
    if final == 0:
        return None
    back, forward = [], []
    for _ in range(repeats):
        tick = time.perf_counter()
        loop.rollback()
        back.append(time.perf_counter() - tick)
        parent = loop.active_version
        tick = time.perf_counter()
        loop.rollback(version=final)
        forward.append(time.perf_counter() - tick)
    return {
        "from_version": final,
        "to_version": parent,
        "rollback_seconds": round(float(np.median(back)), 4),
        "roll_forward_seconds": round(float(np.median(forward)), 4),
    }


# ---------------------------------------------------------------- indexing
def index_corpus(settings: Any, items: list[dict[str, str]], dataset: str, cache_root: Path | None) -> Any:
    """A loop over ``items``, indexed through ``add_items``.

    With a ``cache_root`` (``--index-cache``) the freshly indexed storage folder (catalog, base index, no
    feedback) is kept there, keyed by everything that determines it, and later runs start from a copy of it:
    the index is still the product's own, built through the public API, just not rebuilt every run.
    """
    from embedloop import EmbedLoop

    if cache_root is None:
        loop = EmbedLoop(settings)
        loop.add_items(items)
        return loop
    digest = hashlib.sha256()
    digest.update(f"{settings.embedding_model}|{settings.max_seq_length}|".encode())
    for it in items:
        digest.update(f"{it['id']}\x1f{it['text']}\x1e".encode())
    snapshot = cache_root / f"{dataset}-{digest.hexdigest()[:16]}"
    if (snapshot / "READY").is_file():
        shutil.rmtree(settings.storage_path, ignore_errors=True)
        shutil.copytree(snapshot / "storage", settings.storage_path)
        logger.info("Index: copied the cached storage %s", snapshot)
        return EmbedLoop(settings)
    loop = EmbedLoop(settings)
    loop.add_items(items)
    loop.close()
    # Built beside the cache under a private name, then renamed into place: runs started together each
    # index on their own and the first to finish publishes; the others keep theirs and leave the cache alone.
    staging = cache_root / f".{snapshot.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(settings.storage_path, staging / "storage")
    (staging / "READY").write_text("ok\n")
    if snapshot.exists() and not (snapshot / "READY").is_file():
        shutil.rmtree(snapshot, ignore_errors=True)  # left half-written by a run that was stopped
    try:
        staging.rename(snapshot)
        logger.info("Index: cached the indexed storage in %s", snapshot)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        logger.info("Index: %s was cached by another run meanwhile; kept it", snapshot)
    return EmbedLoop(settings)


# ---------------------------------------------------------------- oracle
def train_oracle(
    loop: Any,
    data: BeirData,
    budget: int,
    rng_seed: int,
    out_dir: Path,
    base_doc_vecs: np.ndarray | None = None,
    within_top: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune ``loop``'s base model once on ``budget`` judged (query, relevant doc) train pairs.

    ``within_top``: only pairs whose document the base model ranks in its top ``within_top`` for the
    query, i.e. what clicks on the base model's results could reveal at best.
    """
    return train_on_judgments(
        loop.settings, loop.model_path(0), data, budget, rng_seed, out_dir, base_doc_vecs, within_top
    )


def judged_pairs(relevant: dict[str, set[str]], budget: int, rng_seed: int) -> list[tuple[str, str]]:
    """``budget`` (query, relevant doc) pairs: a query uniformly (as the simulated users pick them), then
    one of its relevant docs not drawn yet; at most every pair once."""
    rng = random.Random(rng_seed)
    remaining = {q: sorted(d) for q, d in relevant.items()}
    qids = sorted(remaining)
    pairs: list[tuple[str, str]] = []
    budget = min(budget, sum(len(v) for v in remaining.values()))
    while len(pairs) < budget:
        q = rng.choice(qids)
        if not remaining[q]:
            continue
        pairs.append((q, remaining[q].pop(rng.randrange(len(remaining[q])))))
    return pairs


def within_ranking(relevant: dict[str, set[str]], ranked: dict[str, list[str]]) -> dict[str, set[str]]:
    """Each query's relevant docs that appear in its ``ranked`` list; queries left with none are dropped."""
    kept = {q: docs & set(ranked.get(q, ())) for q, docs in relevant.items()}
    return {q: docs for q, docs in kept.items() if docs}


def train_on_judgments(
    s: Any,
    base_path: Path,
    data: BeirData,
    budget: int,
    rng_seed: int,
    out_dir: Path,
    base_doc_vecs: np.ndarray | None = None,
    within_top: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune the model at ``base_path`` with Settings ``s`` on ``budget`` judged train pairs (the oracle).

    ``within_top``: draw only pairs whose document the base model ranks in its top ``within_top``.
    """
    from sentence_transformers import SentenceTransformer

    from embedloop.models.encoder import SentenceTransformerEncoder
    from embedloop.training.examples import TrainingExample
    from embedloop.training.finetuner import EmbeddingFineTuner

    base = SentenceTransformer(str(base_path), device=s.device or "cpu", local_files_only=True)
    if (base.max_seq_length or 0) > s.max_seq_length:
        base.max_seq_length = s.max_seq_length
    doc_ids = sorted(data.corpus)
    tick = time.perf_counter()
    enc = SentenceTransformerEncoder(base)
    if base_doc_vecs is None:
        base_doc_vecs = enc.encode([data.corpus[d] for d in doc_ids], batch_size=s.encode_batch_size)
    doc_vecs = base_doc_vecs
    rel = data.relevant("train")
    if within_top is not None:
        tops = sorted(rel)
        top_vecs = enc.encode([data.queries[q] for q in tops], batch_size=s.encode_batch_size)
        order = np.argsort(-(top_vecs @ doc_vecs.T), axis=1, kind="stable")[:, :within_top]
        rel = within_ranking(rel, {q: [doc_ids[j] for j in row] for q, row in zip(tops, order, strict=True)})
    judged = {q: set(d) for q, d in data.qrels["train"].items()}
    pairs = judged_pairs(rel, budget, rng_seed)
    # hard negatives from the base model: top results not judged for the query
    uq = sorted({q for q, _ in pairs})
    qv = enc.encode([data.queries[q] for q in uq], batch_size=s.encode_batch_size)
    order = np.argsort(-(qv @ doc_vecs.T), axis=1, kind="stable")[:, : s.hard_negatives + 50]
    mined = {
        q: [doc_ids[j] for j in row if doc_ids[j] not in judged[q]][: s.hard_negatives]
        for q, row in zip(uq, order, strict=True)
    }
    examples = [TrainingExample(data.queries[q], d, list(mined[q]), source="oracle") for q, d in pairs]
    rng2 = random.Random(s.seed)
    rng2.shuffle(examples)
    texts = {d: data.corpus[d] for d in {d for _, d in pairs} | {n for v in mined.values() for n in v}}
    mine_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    result = EmbeddingFineTuner(s).train(
        base, examples, texts, out_dir, distill_texts=[data.corpus[d] for d in doc_ids]
    )
    info = {
        "pairs": len(pairs),
        "queries": len(uq),
        "mine_seconds": round(mine_seconds, 2),
        "train_seconds": round(time.perf_counter() - tick, 2),
        "rows": result.rows,
        "steps": result.steps,
        "train_loss": result.train_loss,
    }
    return result.model, info


# ---------------------------------------------------------------- naive reference
#: The plain loop every report is compared with (issue 11): MNRL on every click, skip-above negatives, lr 2e-5.
NAIVE_LEARNING_RATE = 2e-5


def naive_rows(sessions: list[FeedbackSession], texts: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Every click as a row, no merging, no denoising: ``(query, clicked, skipped-above)`` per skipped-above
    result, ``(query, clicked)`` for a click with nothing above it. Two datasets (MNRL needs equal columns)."""
    pairs: dict[str, list[str]] = {"anchor": [], "positive": []}
    triplets: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for s in sessions:
        picked = set(s.selected_ids)
        for item, rank, _seq in s.selected:
            if item not in texts:
                continue
            above = [i for i in s.shown[: (rank or 1) - 1] if i not in picked and i in texts]
            if not above:
                pairs["anchor"].append(s.query)
                pairs["positive"].append(texts[item])
            for neg in above:
                triplets["anchor"].append(s.query)
                triplets["positive"].append(texts[item])
                triplets["negative"].append(texts[neg])
    return {name: cols for name, cols in (("pairs", pairs), ("skip_above", triplets)) if len(cols["anchor"]) >= 2}


def train_naive(model: Any, sessions: list[FeedbackSession], texts: dict[str, str], settings: Any) -> dict[str, Any]:
    """Train ``model`` in place the naive way on ``sessions`` (one epoch, lr 2e-5, MNRL per dataset)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    columns = naive_rows(sessions, texts)
    rows = sum(len(c["anchor"]) for c in columns.values())
    if not columns:
        return {"rows": 0, "train_seconds": 0.0}
    data: Any = {name: Dataset.from_dict(cols) for name, cols in columns.items()}
    loss: Any = {name: MultipleNegativesRankingLoss(model) for name in columns}
    scratch = Path(tempfile.mkdtemp(prefix="embedloop-naive-"))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=1,
        per_device_train_batch_size=settings.train_batch_size,
        learning_rate=NAIVE_LEARNING_RATE,
        seed=settings.seed,
        data_seed=settings.seed,
        batch_sampler="no_duplicates",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=(settings.device or "cpu") == "cpu",
    )
    tick = time.perf_counter()
    try:
        SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"rows": rows, "train_seconds": round(time.perf_counter() - tick, 2)}


def load_base_model(loop: Any) -> Any:
    """The loop's base model (version 0) as a fresh sentence-transformers model."""
    from sentence_transformers import SentenceTransformer

    s = loop.settings
    model = SentenceTransformer(str(loop.model_path(0)), device=s.device or "cpu", local_files_only=True)
    if (model.max_seq_length or 0) > s.max_seq_length:
        model.max_seq_length = s.max_seq_length
    return model


# ---------------------------------------------------------------- chart
def write_chart(results: dict[str, Any], path: Path) -> bool:
    """A PNG of each dev metric per cycle, with the base and oracle lines; ``False`` without matplotlib.

    matplotlib is the optional ``bench`` extra: without it the results are still
    written and the chart is skipped with a logged note.
    """
    try:
        import matplotlib
    except ImportError:
        logger.warning(
            "matplotlib is not installed: skipping the chart %s (the results JSON is complete). "
            "Install it with: pip install 'embedloop[bench]'",
            path,
        )
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cycles = results["cycles"]
    xs = list(range(len(cycles) + 1))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = {"promoted": "tab:green", "rejected": "tab:red", "skipped": "tab:gray", "failed": "black"}
    for ax, metric in zip(axes, METRICS, strict=True):
        ys = [results["base"][metric]] + [c["dev"][metric] for c in cycles]
        ax.plot(xs, ys, "-", color="tab:blue", label="feedback loop (active model)")
        for x, c in zip(xs[1:], cycles, strict=True):
            color = colors.get(_verdict(c), "black")
            ax.scatter([x], [c["dev"][metric]], color=color, zorder=3, s=30)
            if c.get("candidate_dev") and _verdict(c) != "promoted":  # the candidate it turned away, scored anyway
                ax.scatter([x], [c["candidate_dev"][metric]], facecolors="none", edgecolors=color, zorder=3, s=40)
        ax.scatter([0], [ys[0]], color="tab:blue", zorder=3, s=30)
        naive = (results.get("naive") or {}).get("cycles") or []
        if naive:
            ax.plot(
                xs[: len(naive) + 1],
                [ys[0]] + [c["dev"][metric] for c in naive],
                "--",
                color="tab:purple",
                label="naive loop (MNRL, every click, lr 2e-5)",
            )
        if results.get("oracle"):
            ax.axhline(
                results["oracle"]["dev"][metric], color="tab:orange", linestyle="--", label="oracle (train judgments)"
            )
        ax.axhline(ys[0], color="tab:blue", linestyle=":", linewidth=0.8, label="base")
        ax.set_title(f"dev {metric}")
        ax.set_xlabel("cycle (0 = base)")
        ax.set_xticks(xs)
    handles, labels = axes[0].get_legend_handles_labels()
    for status, color in colors.items():
        if any(_verdict(c) == status for c in cycles):
            handles.append(plt.Line2D([], [], marker="o", linestyle="", color=color))
            labels.append(f"cycle {status}")
    if any(c.get("candidate_dev") and _verdict(c) != "promoted" for c in cycles):
        handles.append(plt.Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="tab:red"))
        labels.append("candidate not promoted (scored on dev anyway)")
    cfg = results["config"]
    fig.suptitle(
        f"{cfg['dataset']} · {cfg['model']} · {cfg['rounds']}×{cfg['sessions']} sessions · θ={cfg['theta']} "
        f"noise={cfg['noise']}{' random' if cfg['random_selections'] else ''} · gain recovered "
        f"{results['headline']['gain_recovered']}"
    )
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main
def parse_set(values: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` → ``{key: value}`` (``--set`` options)."""
    out = {}
    for v in values:
        if "=" not in v:
            raise SystemExit(f"--set expects key=value, got {v!r}")
        k, val = v.split("=", 1)
        out[k.strip()] = val.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="nfcorpus")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT, help="folder holding the BEIR datasets")
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--sessions", type=int, default=None, help="sessions per round (default per dataset)")
    p.add_argument(
        "--rounds", type=int, default=None, help="rounds, each followed by fine_tune() (default per dataset)"
    )
    p.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="fine_tune_threshold (default per dataset: nfcorpus = sessions per round, scifact = half of it)",
    )
    p.add_argument("--theta", type=float, default=1.0, help="examination probability at rank r is (1/r)^theta")
    p.add_argument("--p-relevant", type=float, default=0.9)
    p.add_argument("--p-irrelevant", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.0, help="fraction of selections replaced by a random shown result")
    p.add_argument("--random-selections", action="store_true", help="one uniformly random shown result per session")
    p.add_argument(
        "--corpus-limit", type=int, default=None, help="cap the corpus (keeps every judged doc of kept queries)"
    )
    p.add_argument("--eval-split", default="dev", choices=["dev", "test"], help="test only for final reports")
    p.add_argument("--no-oracle", action="store_true")
    p.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the naive reference loop on the same traffic (MNRL on every click, skip-above, lr 2e-5)",
    )
    p.add_argument(
        "--exploration",
        choices=["off", "fairpairs", "insert", "both"],
        default="off",
        help="randomise the simulated users' shown lists (search/exploration.py)",
    )
    p.add_argument("--exploration-rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="any Settings field"
    )
    p.add_argument(
        "--mode",
        choices=["full", "query_encoder", "adapter"],
        default=None,
        help="training mode (same as --set training_mode=...)",
    )
    p.add_argument(
        "--trial-cap",
        type=int,
        default=20_000,
        help="most simulated sessions a trial may take before the benchmark stops it (the product's own limit is "
        "trial_max_searches interleaved searches)",
    )
    p.add_argument(
        "--trial-reviews",
        type=int,
        default=0,
        metavar="N",
        help="during every trial, a simulated reviewer answers up to N review-queue questions per 100 sessions "
        "(from the train judgments); the answers count as trial evidence (default 0: clicks only)",
    )
    p.add_argument(
        "--review-budgets",
        default=None,
        metavar="B,B,...",
        help="simulated reviewer (issue 13): after one round of clicks, answer B review-queue questions vs B "
        "random ones per budget, one cycle per arm; writes review.json (see benchmarks/review.py)",
    )
    p.add_argument(
        "--review-arms",
        default="queue,random",
        metavar="ARM,...",
        help="which answered arms --review-budgets runs besides the clicks-only one: queue, random or both "
        "(default). A seeded arm repeats exactly, so a change to the queue can be measured on the queue arms "
        "alone and pooled with an earlier run's random arms (bench/review_seeds.py --reuse-arms)",
    )
    p.add_argument(
        "--review-questions-only",
        action="store_true",
        help="with --review-budgets: ask and answer every arm's questions and count what the answers change "
        "(against the clicks and against training's labels), without training or scoring any arm: minutes "
        "instead of hours, to compare how arms choose their questions over many seeds",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default bench-results/<dataset>)")
    p.add_argument("--keep-storage", action="store_true", help="keep the temporary storage folder")
    p.add_argument(
        "--index-cache",
        type=Path,
        default=None,
        help="keep the indexed storage (no feedback) here and start later runs on the same corpus from a copy",
    )
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Index, simulate, fine-tune round by round, score on dev, train the oracle; write results and chart."""
    from embedloop import Settings

    defaults = DEFAULTS[args.dataset]
    args.sessions = args.sessions or defaults["sessions"]
    args.rounds = args.rounds or defaults["rounds"]
    if args.corpus_limit is None:
        args.corpus_limit = defaults["corpus_limit"]
    if args.threshold is None:
        args.threshold = max(1, round(args.sessions * defaults["threshold"] / defaults["sessions"]))
    out_dir = args.out or RESULTS_ROOT / args.dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    splits = ("train", args.eval_split)
    data = load_beir(args.data_root / args.dataset, splits=splits, corpus_limit=args.corpus_limit, seed=args.seed)
    logger.info("Loaded %s", data.summary())
    rel_train = data.relevant("train")
    train_qids = sorted(rel_train)

    storage = Path(tempfile.mkdtemp(prefix=f"embedloop-bench-{args.dataset}-"))
    overrides: dict[str, Any] = parse_set(args.overrides)
    if args.mode is not None:
        overrides["training_mode"] = args.mode
    settings_kwargs: dict[str, Any] = {
        "embedding_model": args.model,
        "storage_path": storage,
        "fine_tune_threshold": args.threshold,
        "show_progress": False,
        **overrides,
    }
    settings = Settings(**settings_kwargs)
    try:
        tick = time.perf_counter()
        items = [{"id": d, "text": t} for d, t in sorted(data.corpus.items())]
        loop = index_corpus(settings, items, args.dataset, args.index_cache)
        # the serving loop's coin flips (which searches a trial interleaves, team-draft turns) are random in
        # production; seeded here so that a run repeats exactly
        loop._trial_rng.seed(args.seed)
        timings["index_seconds"] = round(time.perf_counter() - tick, 2)
        # the base model's vectors of every doc (sorted ids), from the v0 serving index: used to mine oracle negatives
        state0 = loop.searcher.state
        key_of = {item_id: key for key, (item_id, _t) in state0.items.items()}
        base_doc_vecs = state0.index.vectors([key_of[d] for d in sorted(data.corpus)])
        logger.info("Indexed %d docs in %.1f s", len(items), timings["index_seconds"])

        tick = time.perf_counter()
        base = evaluate_active(loop, data, args.eval_split)
        timings["eval_seconds"] = round(time.perf_counter() - tick, 2)
        logger.info("Base %s: %s", args.eval_split, _fmt(base))

        rng = random.Random(args.seed)
        scorer = CandidateScorer(data, args.eval_split)
        if args.review_budgets:  # issue 13: the simulated reviewer's arms instead of the rounds
            return _review_benchmark(args, loop, settings, storage, data, rel_train, train_qids, rng, out_dir, base)
        naive_model = load_base_model(loop) if args.naive else None
        naive_cycles: list[dict[str, Any]] = []
        naive_seen_seq = 0
        cycles: list[dict[str, Any]] = []
        all_pairs: set[tuple[str, str]] = set()
        sim_seconds = 0.0
        for rnd in range(1, args.rounds + 1):
            tick = time.perf_counter()
            sim = simulate_round(loop, data, train_qids, rel_train, args, rng)
            sim_seconds += time.perf_counter() - tick
            all_pairs |= sim.pop("pairs")
            logger.info("Round %d: %s", rnd, sim)
            tick = time.perf_counter()
            with scorer:
                result = loop.fine_tune()
            cycle_seconds = time.perf_counter() - tick
            trial = None
            if result["status"] == "trial":
                tick = time.perf_counter()
                trial = run_trial_traffic(loop, data, train_qids, rel_train, args, rng)
                trial["seconds"] = round(time.perf_counter() - tick, 2)
                logger.info("Round %d trial: %s", rnd, trial)
            dev = evaluate_active(loop, data, args.eval_split)
            candidate_dev = scorer.scores.get(result.get("version")) if result.get("version") is not None else None
            entry = {
                "trial": trial,
                "candidate_dev": candidate_dev,
                "final_status": trial["status"] if trial else result["status"],
                "round": rnd,
                "simulation": sim,
                "status": result["status"],
                "version": result.get("version"),
                "active_version": loop.active_version,
                "reasons": result.get("reasons", []),
                "gate_metrics": result.get("metrics", {}),
                "train_examples": result.get("train_examples"),
                "train_queries": result.get("train_queries"),
                "holdout_queries": result.get("holdout_queries"),
                "holdout_sessions": result.get("holdout_sessions"),
                "product_timings": result.get("timings", {}),
                "cycle_seconds": round(cycle_seconds, 2),
                "dev": dev,
            }
            cycles.append(entry)
            if naive_model is not None:  # the naive loop: this round's clicks, trained on top, always promoted
                new_sessions = [x for x in loop.store.feedback_sessions() if x.last_seq > naive_seen_seq]
                naive_seen_seq = max([naive_seen_seq] + [x.last_seq for x in new_sessions])
                ids = {i for x in new_sessions for i in x.shown}
                info = train_naive(naive_model, new_sessions, loop.store.iter_item_texts(ids), settings)
                naive_dev = evaluate_model(
                    naive_model, data, args.eval_split, sorted(data.corpus), settings.encode_batch_size
                )
                naive_cycles.append({"round": rnd, **info, "dev": naive_dev})
                logger.info("Naive %d: %s", rnd, _fmt(naive_dev))
            partial = {
                "benchmark": "feedback_quality",
                "partial": True,
                "config": vars(args),
                "base": base,
                "cycles": cycles,
            }
            (out_dir / "results.partial.json").write_text(json.dumps(partial, indent=2, default=_json_default))
            logger.info(
                "Cycle %d %s in %.1f s (%s); dev: %s",
                rnd,
                result["status"],
                cycle_seconds,
                "; ".join(entry["reasons"]),
                _fmt(dev),
            )
        timings["simulation_seconds"] = round(sim_seconds, 2)
        final = cycles[-1]["dev"] if cycles else base
        rollback = time_rollback(loop)

        oracle = None
        if not args.no_oracle:
            tick = time.perf_counter()
            oracle_dir = storage / "oracle"
            model, info = train_oracle(loop, data, max(1, len(all_pairs)), args.seed, oracle_dir, base_doc_vecs)
            dev = evaluate_model(model, data, args.eval_split, sorted(data.corpus), settings.encode_batch_size)
            oracle = {"dev": dev, **info, "seconds": round(time.perf_counter() - tick, 2)}
            timings["oracle_seconds"] = oracle["seconds"]
            logger.info("Oracle (%d pairs): %s", info["pairs"], _fmt(dev))
        timings["total_seconds"] = round(time.perf_counter() - started, 2)
        loop.close()
    finally:
        if not args.keep_storage:
            shutil.rmtree(storage, ignore_errors=True)

    def gain(metric: str) -> float | None:
        if oracle is None:
            return None
        denom = oracle["dev"][metric] - base[metric]
        if abs(denom) < 1e-9:
            return None
        return round((final[metric] - base[metric]) / denom, 4)

    judged = judge_report(base, cycles)
    promoted = [c for c in cycles if _verdict(c) == "promoted"]
    worse = [
        {"round": c["round"], "version": c["version"], "ndcg@10": c["dev"]["ndcg@10"]}
        for c in promoted
        if c["dev"]["ndcg@10"] < base["ndcg@10"]
    ]
    results = {
        "benchmark": "feedback_quality",
        "config": {
            "dataset": args.dataset,
            "eval_split": args.eval_split,
            "model": args.model,
            "sessions": args.sessions,
            "rounds": args.rounds,
            "theta": args.theta,
            "p_relevant": args.p_relevant,
            "p_irrelevant": args.p_irrelevant,
            "noise": args.noise,
            "random_selections": args.random_selections,
            "corpus_limit": args.corpus_limit,
            "fine_tune_threshold": args.threshold,
            "seed": args.seed,
            "overrides": overrides,
            "settings": {k: v for k, v in settings.public_dict().items() if k not in ("storage_path", "database_url")},
        },
        "data": data.summary(),
        "base": base,
        "cycles": cycles,
        "final": final,
        "oracle": oracle,
        "naive": {"cycles": naive_cycles, "final": naive_cycles[-1]["dev"] if naive_cycles else None}
        if args.naive
        else None,
        "headline": {
            "gain_recovered": gain("ndcg@10"),
            "gain_recovered_per_metric": {m: gain(m) for m in METRICS},
            "base_ndcg@10": base["ndcg@10"],
            "final_ndcg@10": final["ndcg@10"],
            "oracle_ndcg@10": oracle["dev"]["ndcg@10"] if oracle else None,
            "naive_ndcg@10": naive_cycles[-1]["dev"]["ndcg@10"] if naive_cycles else None,
            "beats_naive": final["ndcg@10"] > naive_cycles[-1]["dev"]["ndcg@10"] if naive_cycles else None,
            "cycles_promoted": len(promoted),
            "cycles_rejected": sum(_verdict(c) in ("rejected", "stopped") for c in cycles),
            "judge_accuracy": judged["accuracy"],
            "judge_accuracy_resolved": judged["accuracy_resolved"],
            "median_trial_searches": judged["median_trial_searches"],
            "cycles_skipped": sum(c["status"] == "skipped" for c in cycles),
            "cycles_failed": sum(c["status"] == "failed" for c in cycles),
            "feedback_pairs": len(all_pairs),
            "selections": sum(c["simulation"]["selections"] for c in cycles),
        },
        "judge": judged,
        "safety": {
            "promoted_worse_than_base": bool(worse),
            "worse_promotions": worse,
            "final_minus_base_ndcg@10": round(final["ndcg@10"] - base["ndcg@10"], 5),
        },
        "timings": timings,
        "rollback": rollback,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=_json_default))
    write_chart(results, out_dir / "quality.png")
    logger.info("Headline: %s", results["headline"])
    logger.info("Safety: %s", results["safety"])
    logger.info("Wrote %s", out_dir)
    return results


#: Dev NDCG@10 changes within this band count as ties, where either verdict is right.
TIE_BAND = 0.003
#: A dev change is *resolved* when it is more than this many paired standard errors from zero.
RESOLVED_Z = 1.96


def paired_change(candidate: dict[str, Any], rival: dict[str, Any]) -> tuple[float | None, int]:
    """Standard error of the mean per-query NDCG@10 difference (candidate - rival), and the queries paired.

    ``None`` when either side has no per-query values (results written before they were recorded).
    """
    a, b = candidate.get(PER_QUERY) or {}, rival.get(PER_QUERY) or {}
    shared = sorted(a.keys() & b.keys())
    if len(shared) < 2:
        return None, len(shared)
    diffs = np.array([a[q] - b[q] for q in shared])
    return float(diffs.std(ddof=1) / np.sqrt(len(diffs))), len(shared)


def judge_report(base: dict[str, Any], cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """Was each candidate's final verdict right? Compared with the sign of its own dev NDCG@10 change.

    The change is the candidate's dev NDCG@10 minus that of the model it competed with (the active one
    when it was trained); changes within ``TIE_BAND`` count as ties, where either verdict is right.
    Each change also gets its paired standard error over the dev queries: a change within
    ``RESOLVED_Z`` standard errors of zero is *unresolved* — the dev split cannot tell its sign, so a
    verdict on it is right or wrong by chance. ``accuracy_resolved`` counts only the resolved ones.
    """
    rows = []
    rival = base
    for c in cycles:
        cand = c.get("candidate_dev")
        if cand is not None:
            change = cand["ndcg@10"] - rival["ndcg@10"]
            se, paired = paired_change(cand, rival)
            promoted = _verdict(c) == "promoted"
            right = abs(change) <= TIE_BAND or (change > 0) == promoted
            trial = c.get("trial") or {}
            rows.append(
                {
                    "round": c["round"],
                    "version": c["version"],
                    "precheck": "pass" if c["status"] in ("trial", "promoted") else "stop",
                    "trial_searches": (trial.get("outcome") or {}).get("searches"),
                    "trial_sessions": trial.get("sessions"),
                    "verdict": _verdict(c),
                    "dev_change": round(change, 5),
                    "dev_change_se": round(se, 5) if se is not None else None,
                    "dev_queries_paired": paired,
                    "resolved": se is not None and abs(change) > max(TIE_BAND, RESOLVED_Z * se),
                    "right": right,
                }
            )
        rival = c["dev"]
    searches = sorted(r["trial_searches"] for r in rows if r["trial_searches"] is not None)
    resolved = [r for r in rows if r["resolved"]]
    return {
        "candidates": rows,
        "accuracy": round(sum(r["right"] for r in rows) / len(rows), 4) if rows else None,
        "resolved": len(resolved),
        "accuracy_resolved": round(sum(r["right"] for r in resolved) / len(resolved), 4) if resolved else None,
        "median_trial_searches": searches[len(searches) // 2] if searches else None,
        "promoted_worse_than_0.005": [r for r in rows if r["verdict"] == "promoted" and r["dev_change"] < -0.005],
    }


def _review_benchmark(
    args: argparse.Namespace,
    loop: Any,
    settings: Any,
    storage: Path,
    data: BeirData,
    rel_train: dict[str, set[str]],
    train_qids: list[str],
    rng: random.Random,
    out_dir: Path,
    base: dict[str, float],
) -> dict[str, Any]:
    """One round of clicks, then the reviewer arms of :mod:`embedloop.benchmarks.review`; writes review.json."""
    from embedloop.benchmarks.review import gate_verdicts, run_review_arms

    budgets = [int(b) for b in str(args.review_budgets).split(",") if b.strip()]
    strategies = [x.strip() for x in str(args.review_arms).split(",") if x.strip()]
    unknown = sorted(set(strategies) - {"queue", "random"})
    if unknown or not strategies:
        raise SystemExit(f"--review-arms takes queue, random or both (comma-separated), got {args.review_arms!r}")
    sim = simulate_round(loop, data, train_qids, rel_train, args, rng)
    sim.pop("pairs")
    loop.close()
    review = run_review_arms(
        settings,
        storage,
        {q: data.queries[q] for q in train_qids},
        rel_train,
        budgets,
        lambda lp: evaluate_active(lp, data, args.eval_split),
        args.seed,
        scorer=lambda: CandidateScorer(data, args.eval_split),
        strategies=strategies,
        train=not args.review_questions_only,
    )
    review["gate"] = gate_verdicts(review["arms"], base)
    results = {"benchmark": "review_queue", "config": vars(args), "base": base, "clicks_round": sim, **review}
    (out_dir / "review.json").write_text(json.dumps(results, indent=2, default=_json_default))
    logger.info("Review summary: %s", review["summary"])
    return results


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, set):
        return sorted(o)
    return str(o)


def _fmt(m: dict[str, Any]) -> str:
    return " ".join(f"{k}={m[k]:.4f}" for k in METRICS)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the benchmark with command-line ``argv``; 0 on success, 2 on a bad command line or missing data."""
    parser = build_parser()
    if prog:
        parser.prog = prog
    args = parser.parse_args(argv)
    if args.review_questions_only and not args.review_budgets:
        parser.error("--review-questions-only needs --review-budgets (the budgets whose questions to answer)")
    folder = args.data_root / args.dataset
    if not (folder / "corpus.jsonl").is_file():
        parser.error(
            f"no BEIR dataset at {folder} (corpus.jsonl, queries.jsonl, qrels/). "
            "Point --data-root (or EMBEDLOOP_BENCH_DATA) at the folder holding it."
        )
    if not logging.getLogger("embedloop").handlers:  # run as a script; the CLI has its own handler
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    for noisy in ("sentence_transformers", "transformers", "httpx", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger(__name__).setLevel(logging.INFO)  # progress, also under `embedloop` (whose CLI logs warnings)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
