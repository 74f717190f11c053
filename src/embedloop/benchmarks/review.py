"""Simulated reviewer: is an answer to the review queue's question worth more than one to a random question?

Protocol (issue 13), inside ``embedloop bench quality --review-budgets 25,50,100``:

1. one round of simulated clicks (the quality benchmark's users) on the indexed corpus;
2. the storage folder is copied once per arm, so every arm starts from the same clicks;
3. arm ``clicks``: no answers. Arms ``queue@B``: the simulated reviewer answers the first ``B``
   questions of ``loop.review_queue`` (refilled until ``B`` are answered or it is empty);
   arms ``random@B``: ``B`` questions on train queries drawn at random from the same traffic,
   each about the active model's top :data:`~embedloop.feedback.review.MAX_CANDIDATES` results
   (the same size as a queue question), recorded with ``loop.record_judgment``;
4. the reviewer answers from the train judgments (qrels): a candidate judged relevant
   (score > 0) is selected, every other candidate rejected;
5. each arm runs the product's cycle once (``fine_tune(force=True)``); the candidate it trains is
   scored on the dev split whatever the gate's (or trial's) verdict, since the question is what
   the answers are worth to training. Gain per answer = (arm NDCG@10 - clicks NDCG@10) / B.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embedloop.feedback.persistence import recent_traffic
from embedloop.feedback.review import MAX_CANDIDATES, state_ranker
from embedloop.training.examples import normalise_query

logger = logging.getLogger(__name__)


def simulated_answer(candidates: Sequence[str], relevant: set[str]) -> tuple[list[str], list[str]]:
    """The reviewer's answer: candidates judged relevant are selected, the others rejected."""
    return [c for c in candidates if c in relevant], [c for c in candidates if c not in relevant]


def logged_traffic(loop: Any) -> list[Any]:
    """Every logged search with what it showed and what was selected (a benchmark's store is small)."""
    return recent_traffic(loop.store, 1_000_000)


class LabelChanges:
    """What the answers change: a label the clicks alone would not give.

    Per question, against the clicks: relevant items nobody clicked (new positives) and clicked items
    judged irrelevant (a click-positive overruled). A question that does neither only confirms what the
    clicks said. With ``trained`` (normalised query -> the positives the next cycle would train on:
    :func:`training_positives`), the same counts against training's labels, which the click model and
    the held-out split have already thinned: a mis-click training already dropped is no change there,
    and a relevant click it dropped comes back as a new training positive.
    """

    def __init__(self, traffic: Sequence[Any], trained: dict[str, set[str]] | None = None) -> None:
        self.clicked: dict[str, set[str]] = {}
        for session in traffic:
            self.clicked.setdefault(normalise_query(session.query), set()).update(i for i, *_ in session.selected)
        self.trained = trained
        self.counts: Counter[str] = Counter()

    def add(self, query: str, selected: Sequence[str], rejected: Sequence[str]) -> None:
        """Count one answered question about ``query``."""
        key = normalise_query(query)
        against = [("", self.clicked)] + ([("training_", self.trained)] if self.trained is not None else [])
        for prefix, positives in against:
            known = positives.get(key, set())
            new = sum(item not in known for item in selected)
            overruled = sum(item in known for item in rejected)
            self.counts[prefix + "new_positives"] += new
            self.counts[prefix + "overruled_clicks"] += overruled
            self.counts["questions_changing_" + prefix + "labels"] += bool(new or overruled)

    def report(self) -> dict[str, int]:
        """The totals so far."""
        keys = ["questions_changing_labels", "new_positives", "overruled_clicks"]
        if self.trained is not None:
            keys += ["questions_changing_training_labels", "training_new_positives", "training_overruled_clicks"]
        return {k: self.counts[k] for k in keys}


def next_examples(loop: Any) -> list[Any]:
    """The training examples the loop's next cycle would use (nothing is trained or stored)."""
    from embedloop.training.cycle import next_training_examples

    return next_training_examples(loop.services())[0]


def training_positives(examples: Sequence[Any]) -> dict[str, set[str]]:
    """Normalised query -> the catalog items ``examples`` (:func:`next_examples`) train on as positives."""
    out: dict[str, set[str]] = {}
    for ex in examples:
        if ex.positive_text is None:  # not a domain example
            out.setdefault(normalise_query(ex.query), set()).add(ex.positive)
    return out


def training_set(loop: Any, examples: Sequence[Any]) -> dict[str, int]:
    """What the next cycle would train on: ``examples``, those from judgments, judged queries held out."""
    from embedloop.feedback.judgments import judgment_holdout

    holdout = judgment_holdout(loop.store)
    return {
        "examples": len(examples),
        "from_judgments": sum(ex.source == "judgment" for ex in examples),
        "judged_queries_held_out": len(holdout.keys) if holdout is not None else 0,
    }


def answer_queue(
    loop: Any,
    budget: int,
    relevant_of: Callable[[str], set[str] | None],
    trained: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Answer up to ``budget`` questions of the review queue, most useful first.

    ``trained``: training's positives before the answers (:class:`LabelChanges`).
    """
    answered, judgments, positives = 0, 0, 0
    changes = LabelChanges(logged_traffic(loop), trained)
    reasons: Counter[str] = Counter()
    skipped: set[str] = set()
    while answered < budget:
        queue = [
            q
            for q in loop.review_queue(limit=min(1000, budget - answered + len(skipped)))
            if q["review_id"] not in skipped
        ]
        if not queue:
            break
        for q in queue[: budget - answered]:
            relevant = relevant_of(q["query"])
            if relevant is None:  # not a train query: the reviewer cannot answer it
                skipped.add(q["review_id"])
                continue
            selected, rejected = simulated_answer([c["item_id"] for c in q["candidates"]], relevant)
            loop.answer_review(q["review_id"], selected=selected, rejected=rejected, reviewer="simulated")
            changes.add(q["query"], selected, rejected)
            answered += 1
            judgments += len(selected) + len(rejected)
            positives += len(selected)
            reasons[q["reason"]] += 1
    return {
        "questions": answered,
        "judgments": judgments,
        "relevant_found": positives,
        "reasons": dict(reasons),
        **changes.report(),
    }


def answer_random(
    loop: Any,
    budget: int,
    relevant_of: Callable[[str], set[str] | None],
    rng: random.Random,
    trained: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Answer ``budget`` questions about train queries drawn at random from the logged traffic."""
    traffic = logged_traffic(loop)
    queries = sorted({r.query for r in traffic if relevant_of(r.query) is not None})
    picked = rng.sample(queries, min(budget, len(queries)))
    ranked = state_ranker(loop.searcher.state, loop.settings.encode_batch_size)(picked, MAX_CANDIDATES)
    judgments = positives = 0
    changes = LabelChanges(traffic, trained)
    for query, top in zip(picked, ranked, strict=True):
        relevant = relevant_of(query) or set()
        selected, rejected = simulated_answer([item_id for item_id, _score in top], relevant)
        for item_id, _score in top:
            loop.record_judgment(query, item_id, relevant=item_id in relevant, reviewer="simulated-random")
            judgments += 1
            positives += item_id in relevant
        changes.add(query, selected, rejected)
    return {"questions": len(picked), "judgments": judgments, "relevant_found": positives, **changes.report()}


def run_review_arms(
    settings: Any,
    storage: Path,
    queries: dict[str, str],
    relevant: dict[str, set[str]],
    budgets: Sequence[int],
    evaluate: Callable[[Any], dict[str, float]],
    seed: int,
    scorer: Callable[[], Any] | None = None,
    strategies: Sequence[str] = ("queue", "random"),
    train: bool = True,
) -> dict[str, Any]:
    """Every arm from a copy of ``storage`` (a closed loop's folder after one round of clicks).

    ``queries``/``relevant``: train query texts and judged-relevant doc ids by query id;
    ``evaluate(loop)``: dev metrics of the loop's active model; ``scorer()``: a context manager
    whose ``scores`` maps each candidate version trained inside it to its dev metrics, so that an
    arm's model is scored whatever the gate's or trial's verdict (the value of the answers to
    training is measured apart from the promotion decision). ``strategies``: the answered arms to run
    (the clicks-only arm always runs: it is every comparison's reference). ``train=False`` only asks
    and answers the questions and counts what the answers change (:func:`summarise_answers`): no
    cycle, no scoring — minutes instead of hours, for comparing how arms choose their questions.
    """
    import contextlib

    from embedloop import EmbedLoop

    by_text = {normalise_query(text): qid for qid, text in queries.items() if qid in relevant}

    def relevant_of(query: str) -> set[str] | None:
        qid = by_text.get(normalise_query(query))
        return relevant[qid] if qid is not None else None

    arms: list[tuple[str, int]] = [("clicks", 0)] + [
        (s, b) for b in budgets for s in ("queue", "random") if s in strategies
    ]
    results: dict[str, Any] = {}
    trained: dict[str, set[str]] | None = None  # training's positives before any answer (every arm's are equal)
    for strategy, budget in arms:
        name = strategy if budget == 0 else f"{strategy}@{budget}"
        copy = Path(tempfile.mkdtemp(prefix="embedloop-review-arm-"))
        tick = time.perf_counter()
        try:
            shutil.copytree(storage, copy, dirs_exist_ok=True)
            with EmbedLoop(settings.replace(storage_path=copy)) as loop:
                spent: dict[str, Any] = {"questions": 0, "judgments": 0}
                examples = None
                if trained is None:  # the clicks-only arm, first: nothing answered yet
                    examples = next_examples(loop)
                    trained = training_positives(examples)
                    spent["training_positives"] = sum(len(ids) for ids in trained.values())
                if strategy == "queue":
                    spent = answer_queue(loop, budget, relevant_of, trained)
                elif strategy == "random":
                    spent = answer_random(loop, budget, relevant_of, random.Random(seed + budget), trained)
                if budget or examples is None:  # answers changed the training set
                    examples = next_examples(loop)
                spent["training_set"] = training_set(loop, examples)
                if not train:
                    results[name] = {"strategy": strategy, "budget": budget, "answers": spent}
                    logger.info("Review arm %s (questions only): %s", name, spent)
                    continue
                watch = scorer() if scorer is not None else contextlib.nullcontext()
                with watch:
                    cycle = loop.fine_tune(force=True)
                dev = evaluate(loop)
                scored = getattr(watch, "scores", {})
                candidate_dev = scored[max(scored)] if scored else dev
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        results[name] = {
            "strategy": strategy,
            "budget": budget,
            "answers": spent,
            "status": cycle["status"],
            "reasons": cycle.get("reasons", []),
            # what the pre-check read (held-out judgments or clicks) and what it measured there
            "holdout_source": cycle.get("holdout_source"),
            "holdout_metrics": cycle.get("metrics", {}),
            "dev": dev,
            "candidate_dev": candidate_dev,
            "seconds": round(time.perf_counter() - tick, 1),
        }
        logger.info("Review arm %s: %s, %s, dev %s", name, spent, cycle["status"], dev)
    return {"arms": results, "summary": summarise(results, budgets) if train else summarise_answers(results, budgets)}


def summarise(
    arms: dict[str, Any], budgets: Sequence[int], metric: str = "ndcg@10", key: str = "candidate_dev"
) -> dict[str, Any]:
    """Gain per answer of each arm's trained model over ``clicks`` and the queue/random ratio per budget.

    A budget is reported only when both its queue and its random arm exist.
    """
    base = arms["clicks"][key][metric]
    out: dict[str, Any] = {"clicks_" + metric: base}
    for b in budgets:
        if f"queue@{b}" not in arms or f"random@{b}" not in arms:
            continue
        q, r = arms[f"queue@{b}"][key][metric], arms[f"random@{b}"][key][metric]
        per_q, per_r = (q - base) / b, (r - base) / b
        out[str(b)] = {
            "queue_" + metric: q,
            "random_" + metric: r,
            "queue_gain_per_answer": round(per_q, 6),
            "random_gain_per_answer": round(per_r, 6),
            "ratio": round(per_q / per_r, 3) if per_r > 0 else None,
            "queue_beats_random": q > r,
        }
        out[str(b)].update(_change_shares(arms, b))
    return out


def summarise_answers(arms: dict[str, Any], budgets: Sequence[int]) -> dict[str, Any]:
    """Per budget, what each answered arm's questions changed (a questions-only run: nothing trained)."""
    out: dict[str, Any] = {}
    for b in budgets:
        shares = _change_shares(arms, b)
        if shares:
            out[str(b)] = shares
    return out


def _change_shares(arms: dict[str, Any], budget: int) -> dict[str, float]:
    """Share of each arm's answers that changed a label the clicks (``label_change_share``) or training gave."""
    out = {}
    for strategy in ("queue", "random"):
        spent = arms.get(f"{strategy}@{budget}", {}).get("answers", {})
        for against in ("", "training_"):
            changing = spent.get(f"questions_changing_{against}labels")
            if spent.get("questions") and changing is not None:
                out[f"{strategy}_{against}label_change_share"] = round(changing / spent["questions"], 3)
    return out


def reuse_arms(run: dict[str, Any], earlier: dict[str, Any], tolerance: float = 1e-9) -> dict[str, Any]:
    """``run`` completed with the arms only ``earlier`` has (the same seed's run before a change).

    Seeded arms repeat exactly, so an arm the change cannot affect (e.g. ``random@B`` after a change to
    the queue) is taken from ``earlier`` — but only when both runs' clicks-only arm scored the same on
    dev, which checks that the traffic and training did repeat. Raises ``ValueError`` otherwise.
    The summary and the gate's verdicts are recomputed over the merged arms.
    """
    mine = run["arms"]["clicks"]["candidate_dev"]
    theirs = earlier["arms"]["clicks"]["candidate_dev"]
    numbers = [m for m, v in mine.items() if isinstance(v, int | float) and isinstance(theirs.get(m), int | float)]
    drift = max((abs(mine[m] - theirs[m]) for m in numbers), default=float("inf"))
    if drift > tolerance:
        raise ValueError(
            f"the clicks-only arm differs from the earlier run's by {drift:.6f}: the runs did not repeat the same "
            "traffic and training (another seed, corpus limit or setting?), so their arms cannot be pooled"
        )
    arms = {**{k: v for k, v in earlier["arms"].items() if k not in run["arms"]}, **run["arms"]}
    budgets = sorted({a["budget"] for a in arms.values() if a["budget"]})
    return {
        **run,
        "arms": arms,
        "reused_arms": sorted(set(arms) - set(run["arms"])),
        "summary": summarise(arms, budgets),
        "gate": gate_verdicts(arms, run["base"]),
    }


def average_draws(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of the same traffic seed (``config.seed``) merged into one: every arm's dev metrics averaged.

    Runs that share a traffic seed but differ in the training seed (``--set seed=N``) are independent
    training draws on the same clicks and answers; their mean is what the answers are worth with less
    of one training run's noise. They must have logged the same clicks round (else ``ValueError``).
    The gate's verdicts are summed over the draws (each draw's candidates are candidates of their own).
    """
    groups: dict[Any, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["config"]["seed"], []).append(run)
    out = []
    for seed, group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        if any("candidate_dev" not in arm for run in group for arm in run["arms"].values()):
            raise ValueError(
                f"seed {seed} has several runs and one of them trained nothing (questions only): "
                "a questions-only run's answers do not depend on the training seed; pass each seed once"
            )
        if any(run.get("clicks_round") != group[0].get("clicks_round") for run in group):
            raise ValueError(f"runs of seed {seed} logged different clicks rounds: they are not draws of one traffic")
        names = [name for name in group[0]["arms"] if all(name in run["arms"] for run in group)]
        arms = {}
        for name in names:
            devs = [run["arms"][name]["candidate_dev"] for run in group]
            mean = {m: sum(d[m] for d in devs) / len(devs) for m, v in devs[0].items() if isinstance(v, int | float)}
            arms[name] = {**group[0]["arms"][name], "candidate_dev": mean, "draws": [d.get("ndcg@10") for d in devs]}
        budgets = sorted({a["budget"] for a in arms.values() if a["budget"]})
        out.append(
            {
                **group[0],
                "arms": arms,
                "training_draws": len(group),
                "summary": summarise(arms, budgets),
                "gate": {"by_source": _gate_totals(group)},
            }
        )
    return out


def gate_verdicts(arms: dict[str, Any], base: dict[str, float], metric: str = "ndcg@10") -> dict[str, Any]:
    """Did each arm's pre-check read its candidate right? The truth is the candidate's dev gain over ``base``.

    Per arm: the held-out set the pre-check read (``judgments`` once enough are held out, else
    ``clicks``), its verdict (``pass`` unless the candidate was rejected), the held-out
    triplet-accuracy change it saw, the dev change, and whether verdict and sign agree
    (``correct``: a pass for a dev gain, a rejection for a dev loss). Totals per source.
    """
    from embedloop.evaluation.precheck import PRIMARY

    rows: dict[str, Any] = {}
    totals: dict[str, Counter[str]] = {}
    for name, arm in arms.items():
        held = arm.get("holdout_metrics") or {}
        if "active" not in held or "candidate" not in held:
            continue  # the cycle stopped before scoring (skipped)
        seen = held["candidate"][PRIMARY] - held["active"][PRIMARY]
        dev = arm["candidate_dev"][metric] - base[metric]
        passed = arm["status"] != "rejected"
        source = arm.get("holdout_source") or "clicks"
        rows[name] = {
            "source": source,
            "verdict": "pass" if passed else "reject",
            "holdout_accuracy_delta": round(seen, 4),
            "dev_delta": round(dev, 4),
            "correct": passed == (dev > 0),
            "sign_agrees": (seen > 0) == (dev > 0),
        }
        count = totals.setdefault(source, Counter())
        count["arms"] += 1
        count["correct"] += rows[name]["correct"]
        count["sign_agrees"] += rows[name]["sign_agrees"]
    return {"arms": rows, "by_source": {k: dict(v) for k, v in totals.items()}}


def _mean_se(values: Sequence[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"mean": round(mean, 5), "se": round((var / n) ** 0.5, 5)}


def pool_seeds(runs: Sequence[dict[str, Any]], metric: str = "ndcg@10") -> dict[str, Any]:
    """Several ``review.json`` results (one per seed) pooled: the paired differences' mean and standard error.

    Per budget: queue - clicks, random - clicks and queue - random (each seed's arms share its clicks,
    so the differences are paired), the ratio of the mean gains per answer, the share of seeds where
    the queue won, relevant items found and label-changing answers summed over seeds (against the clicks,
    and against training's labels where the runs counted them: ``training_*``). ``gate``: every
    arm's pre-check verdict against its dev gain, counted by the held-out set it read.
    """
    budgets = sorted({int(b) for run in runs for b in run["summary"] if b.isdigit()})
    out: dict[str, Any] = {"seeds": len(runs), "budgets": {}}
    for b in budgets:
        rows = [run for run in runs if all(f"{x}@{b}" in run["arms"] for x in ("queue", "random"))]
        entry: dict[str, Any] = {"seeds": len(rows)}
        scored = [run for run in rows if "queue_" + metric in run["summary"].get(str(b), {})]
        if scored:  # questions-only runs (nothing trained) count answers only
            entry.update(_paired_gains([run["summary"] for run in scored], str(b), metric))
        for strategy in ("queue", "random"):
            answers = [run["arms"][f"{strategy}@{b}"]["answers"] for run in rows]
            entry[strategy] = {
                "questions": sum(a["questions"] for a in answers),
                "relevant_found": sum(a.get("relevant_found", 0) for a in answers),
            }
            for against in ("", "training_"):
                counted = [a for a in answers if f"questions_changing_{against}labels" in a]
                asked = sum(a["questions"] for a in counted)
                if not asked:
                    continue
                changing = sum(a[f"questions_changing_{against}labels"] for a in counted)
                entry[strategy][f"{against}label_change_share"] = round(changing / asked, 3)
                for kind in ("new_positives", "overruled_clicks"):
                    if any(against + kind in a for a in counted):
                        entry[strategy][against + kind] = sum(a.get(against + kind, 0) for a in counted)
        out["budgets"][str(b)] = entry
    out["gate"] = _gate_totals(runs)
    return out


def _paired_gains(summaries: Sequence[dict[str, Any]], budget: str, metric: str) -> dict[str, Any]:
    """Queue/random/clicks differences of one budget over seeds (paired within each seed)."""
    clicks = [x["clicks_" + metric] for x in summaries]
    queue = [x[budget]["queue_" + metric] for x in summaries]
    rand = [x[budget]["random_" + metric] for x in summaries]
    q_gain = [q - c for q, c in zip(queue, clicks, strict=True)]
    r_gain = [r - c for r, c in zip(rand, clicks, strict=True)]
    mean_r = sum(r_gain) / len(r_gain)
    return {
        "queue_minus_clicks": _mean_se(q_gain),
        "random_minus_clicks": _mean_se(r_gain),
        "queue_minus_random": _mean_se([q - r for q, r in zip(queue, rand, strict=True)]),
        "queue_wins": sum(q > r for q, r in zip(queue, rand, strict=True)),
        "gain_per_answer_ratio": round(sum(q_gain) / len(q_gain) / mean_r, 3) if mean_r > 0 else None,
    }


def _gate_totals(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The pre-check's verdict counts (``gate.by_source``) summed over runs."""
    gate: dict[str, Counter[str]] = {}
    for run in runs:
        for source, counts in run.get("gate", {}).get("by_source", {}).items():
            gate.setdefault(source, Counter()).update(counts)
    return {source: dict(counts) for source, counts in gate.items()}
