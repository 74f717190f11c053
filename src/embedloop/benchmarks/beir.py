"""Load a BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

* corpus texts are ``"title. text"`` (just ``text`` when there is no title),
  cut to ``max_text_length`` characters (the product's own limit, 1,000,000 by
  default: no BEIR document is that long; the encoders only read the first
  128-512 tokens anyway; the published runs used 10,000, which cut 1 NFCorpus
  and 2 SciFact documents);
* qrels per split as ``{query_id: {doc_id: score}}``; only queries that have
  a text are kept;
* SciFact has no dev split: ``carve_dev`` moves a deterministic 20 % of the
  train queries (chosen by a salted SHA-256 of the query id, independent of
  any run seed) into ``dev``; the rest stay in ``train``;
* ``corpus_limit`` (quick runs): keeps whole queries (every one of their
  judged-relevant documents stays in the corpus) while their relevant
  documents fit in half the limit, then fills the corpus up to the limit
  with seeded random other documents (distractors).

Test splits are loaded only when asked for (``splits=("train", "dev", "test")``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

DEV_SALT = "embedloop-beir-dev"


@dataclass
class BeirData:
    """A BEIR dataset, possibly reduced."""

    name: str
    corpus: dict[str, str]  # doc id -> "title. text"
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> doc id -> score
    notes: list[str] = field(default_factory=list)

    def relevant(self, split: str) -> dict[str, set[str]]:
        """Query id -> ids of documents judged relevant (score > 0), queries with at least one."""
        out = {q: {d for d, s in docs.items() if s > 0} for q, docs in self.qrels.get(split, {}).items()}
        return {q: d for q, d in out.items() if d}

    def summary(self) -> dict[str, object]:
        """Sizes of the corpus, the queries and the judgments per split."""
        return {
            "name": self.name,
            "corpus_docs": len(self.corpus),
            "queries_per_split": {s: len(self.relevant(s)) for s in self.qrels},
            "judgments_per_split": {s: sum(len(v) for v in q.values()) for s, q in self.qrels.items()},
            "notes": list(self.notes),
        }


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            out.setdefault(row[0], {})[row[1]] = int(row[2])
    return out


def in_dev(query_id: str, fraction: float = 0.2) -> bool:
    """Whether a train query is carved out into dev (deterministic, run-seed independent)."""
    digest = hashlib.sha256(f"{DEV_SALT}:{query_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_beir(
    folder: str | Path,
    *,
    splits: tuple[str, ...] = ("train", "dev"),
    dev_fraction: float = 0.2,
    corpus_limit: int | None = None,
    seed: int = 0,
    max_text_length: int = 1_000_000,
) -> BeirData:
    """Read a BEIR folder; see the module docstring."""
    folder = Path(folder)
    notes: list[str] = []
    corpus: dict[str, str] = {}
    long_docs = 0
    for row in _read_jsonl(folder / "corpus.jsonl"):
        title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
        full = f"{title}. {text}" if title and text else (title or text)
        if not full:
            continue
        if len(full) > max_text_length:
            long_docs += 1
            full = full[:max_text_length]
        corpus[str(row["_id"])] = full
    if long_docs:
        notes.append(f"{long_docs} document(s) cut to {max_text_length} characters")
    queries = {
        str(r["_id"]): r["text"].strip() for r in _read_jsonl(folder / "queries.jsonl") if r.get("text", "").strip()
    }

    qdir = folder / "qrels"
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    wanted = set(splits)
    need_carve = "dev" in wanted and not (qdir / "dev.tsv").exists()
    for split in ("train", "dev", "test"):
        if split not in wanted and not (split == "train" and need_carve):
            continue
        path = qdir / f"{split}.tsv"
        if path.exists():
            qrels[split] = _read_qrels(path)
    if need_carve:
        train = qrels.get("train", {})
        qrels["dev"] = {q: d for q, d in train.items() if in_dev(q, dev_fraction)}
        qrels["train"] = {q: d for q, d in train.items() if not in_dev(q, dev_fraction)}
        notes.append(
            f"no dev split: {len(qrels['dev'])} of {len(train)} train queries carved out as dev "
            f"(SHA-256 of '{DEV_SALT}:<query id>' < {dev_fraction})"
        )
        if "train" not in wanted:
            qrels.pop("train")
    # keep judgments whose query has a text and whose document exists
    for split, per_query in qrels.items():
        qrels[split] = {
            q: {d: s for d, s in docs.items() if d in corpus} for q, docs in per_query.items() if q in queries
        }
        qrels[split] = {q: d for q, d in qrels[split].items() if d}

    data = BeirData(folder.name, corpus, queries, qrels, notes)
    if corpus_limit is not None and corpus_limit < len(corpus):
        _limit(data, corpus_limit, seed)
    return data


def _limit(data: BeirData, limit: int, seed: int) -> None:
    """Shrink the corpus to ``limit`` docs, keeping every relevant doc of the queries kept."""
    rng = random.Random(seed)
    keep: set[str] = set()
    budget = max(1, limit // 2)
    kept_queries: dict[str, list[str]] = {}
    # interleave splits so each keeps queries
    orders = {}
    for split in data.qrels:
        ids = sorted(data.qrels[split])
        rng.shuffle(ids)
        orders[split] = ids
    pos = dict.fromkeys(orders, 0)
    kept_queries = {s: [] for s in orders}
    active = [s for s in orders if orders[s]]
    while active:
        for split in list(active):
            if pos[split] >= len(orders[split]):
                active.remove(split)
                continue
            q = orders[split][pos[split]]
            pos[split] += 1
            rel = set(data.qrels[split][q])  # every judged doc (scores 0 included) of a kept query
            if len(keep | rel) <= budget:
                keep |= rel
                kept_queries[split].append(q)
    others = sorted(set(data.corpus) - keep)
    rng.shuffle(others)
    keep |= set(others[: max(0, limit - len(keep))])
    before = len(data.corpus)
    data.corpus = {d: t for d, t in data.corpus.items() if d in keep}
    for split in data.qrels:
        data.qrels[split] = {q: data.qrels[split][q] for q in kept_queries[split]}
    data.notes.append(
        f"corpus limited to {len(data.corpus)} of {before} docs (seed {seed}); kept queries: "
        + ", ".join(f"{s} {len(v)}" for s, v in kept_queries.items())
        + "; every judged doc of a kept query is in the corpus"
    )
