"""Shared pieces: the synthetic catalog, the lookup encoder, measurement helpers, the machine."""

from __future__ import annotations

import logging
import os
import platform
import random
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil

log = logging.getLogger("bench.performance")


MODEL = "all-MiniLM-L6-v2"
K = 10

# --------------------------------------------------------------------------- synthetic catalog
_SYLLABLES = [
    "bra", "nex", "tor", "vel", "qua", "lin", "mar", "zen", "cor", "dyn", "flo", "gra", "hel", "ion", "jov",
    "kal", "lum", "mon", "nor", "ort", "pra", "riv", "sol", "tek", "ul", "ver", "wes", "xan", "yor", "zel",
    "ami", "bel", "cas", "dor", "eno", "fal",
]  # fmt: skip
_SECTORS = [
    "Solar", "Biotech", "Energy", "Financial", "Pharma", "Software", "Mining", "Realty", "Capital", "Motors",
    "Foods", "Networks", "Semiconductor", "Airlines", "Insurance", "Retail", "Logistics", "Health", "Water",
    "Gaming", "Steel", "Shipping", "Media", "Robotics", "Oil & Gas", "Hotels", "Payments", "Cloud", "Medical",
    "Aerospace", "Chemicals", "Apparel", "Beverages", "Telecom", "Utilities", "Semis", "Lithium", "Gold",
]  # fmt: skip
_FORMS = [
    "Holdings Inc.", "Corporation", "Group Ltd.", "Inc.", "Technologies Inc.", "Bancorp", "Partners LP",
    "Trust", "Industries Inc.", "Co.", "Holdings Corp.", "International plc",
]  # fmt: skip
_SECURITIES = [
    "Common Stock", "Common Stock", "Common Stock", "Class A Common Stock", "Class B Common Stock",
    "American Depositary Shares", "Ordinary Shares", "Depositary Shares", "Units", "Warrants",
]  # fmt: skip


def make_catalog(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` unique company-like items: ``{"id", "text", "name", "sector"}``."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    tickers: set[str] = set()
    texts: set[str] = set()
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while len(out) < n:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
        sector = rng.choice(_SECTORS)
        text_tail = f"{name} {sector} {rng.choice(_FORMS)} {rng.choice(_SECURITIES)}"
        if text_tail in texts:
            continue
        ticker = (name[:2] + sector[0]).upper()
        while ticker in tickers:
            ticker = "".join(rng.choice(letters) for _ in range(rng.choice((3, 4, 4, 5))))
        tickers.add(ticker)
        texts.add(text_tail)
        out.append({"id": ticker, "text": f"{ticker} - {text_tail}", "name": name, "sector": sector})
    return out


def make_query(item: dict[str, Any], rng: random.Random) -> str:
    """A user phrasing for ``item``: its name words shuffled, abbreviated or its ticker."""
    name, sector, ticker = item["name"].lower(), item["sector"].lower(), item["id"].lower()
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{name} {sector} stock"
    if pattern == 1:
        return f"{sector} company {name} shares"
    if pattern == 2:
        return f"{ticker} share price"
    if pattern == 3:
        return f"{name[:4]} {sector} equity"
    if pattern == 4:
        return f"buy {name} stock"
    return f"{name} {sector} quote"


def random_unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random float32 unit vectors of length ``dim``."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


class LookupEncoder:
    """Catalog texts from a precomputed table; anything else (queries) from the real encoder."""

    def __init__(self, real: Any, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.real = real
        self.table = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        rows = [self.table.get(t) for t in texts]
        if all(r is not None for r in rows):
            return self.vectors[np.asarray(rows, dtype=np.int64)] if rows else self.vectors[:0]
        return self.real.encode(texts, batch_size=batch_size, show_progress=show_progress)


# --------------------------------------------------------------------------- measurement helpers
class RssSampler:
    """Peak resident memory of this process, sampled in a thread (psutil)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    def reset(self) -> None:
        self.peak = self.proc.memory_info().rss

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def summarise_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean in milliseconds."""
    if not seconds:
        return {"n": 0}
    arr = np.asarray(seconds) * 1000.0
    return {
        "n": len(arr),
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p90_ms": round(float(np.percentile(arr, 90)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "mean_ms": round(float(arr.mean()), 3),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def settings_for(storage: Path, **overrides: Any) -> Any:
    from embedloop import Settings

    return Settings(storage_path=storage, embedding_model=MODEL, show_progress=False, **overrides)


def model_path(cache: Path) -> Path:
    """The local folder of MiniLM, resolved the way the product does it."""
    from embedloop.models import resolve_model

    return resolve_model(MODEL, cache)


def load_raw_model(path: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = min(model.max_seq_length or 128, 128)  # as the product's default max_seq_length
    return model


def machine_info() -> dict[str, Any]:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import faiss
    import sentence_transformers
    import sqlalchemy
    import transformers

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "faiss": faiss.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),
    }
