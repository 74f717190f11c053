"""One typed settings object, read from the environment.

The spec's variables keep their names (``EMBEDDING_MODEL``,
``LEARNING_STORAGE_PATH``, ``ADAPTIVE_LEARNING_DB``); every other field is
read from ``EMBEDLOOP_<FIELD>`` (e.g. ``EMBEDLOOP_FINE_TUNE_THRESHOLD``).
A bad value is refused with a message naming the variable, the value seen and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from embedloop.errors import ConfigError

DEFAULT_MODEL = "all-mpnet-base-v2"


class LossName(StrEnum):
    """Training objective. See ``embedloop.training.losses``."""

    MNRL = "mnrl"
    TRIPLET = "triplet"


class TrainingMode(StrEnum):
    """What a cycle trains. See ``docs/training.md``."""

    FULL = "full"  # the whole model; promotion re-embeds the catalog
    QUERY_ENCODER = "query_encoder"  # a query-side copy of the encoder; documents keep their embeddings
    ADAPTER = "adapter"  # a low-rank transform of query embeddings; the cheapest


class TrialQueries(StrEnum):
    """Which searches a trial may interleave. See ``docs/trials.md``."""

    UNSEEN = "unseen"  # only queries the candidate was not trained on in its cycle
    ALL = "all"  # every search (trial_share of them)


class InferenceBackend(StrEnum):
    """What runs the encoder for search and catalog embedding. See ``docs/inference.md``.

    Training always runs in torch; the ONNX backends run each version's exported copy.
    """

    TORCH = "torch"  # the sentence-transformers model itself
    ONNX = "onnx"  # ONNX Runtime, fp32: the same vectors, a faster runtime
    ONNX_INT8 = "onnx-int8"  # ONNX Runtime, weights dynamically quantised to int8: fastest, approximate


#: The allowed values of ``negative_sources``.
NEGATIVE_SOURCES = ("skip_above", "shown", "mined")

#: The allowed values of ``click_model``, ``train_from`` and ``exploration`` (issue 11).
CLICK_MODELS = ("off", "pbm", "pbm_scores")
TRAIN_FROM = ("active", "base")
EXPLORATION = ("off", "fairpairs", "insert", "both")

#: Environment variable for each field whose name is not ``EMBEDLOOP_<FIELD>``.
SPEC_ENV_NAMES = {
    "embedding_model": "EMBEDDING_MODEL",
    "storage_path": "LEARNING_STORAGE_PATH",
    "database_url": "ADAPTIVE_LEARNING_DB",
}


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return SPEC_ENV_NAMES.get(field_name, f"EMBEDLOOP_{field_name.upper()}")


def _default_storage() -> Path:
    return Path.home() / ".embedloop"


@dataclass(frozen=True)
class Settings:
    """Everything embedloop can be configured with.

    ``Settings(storage_path="./data")`` takes the values given, then the
    environment for every other field, then the defaults;
    ``Settings.from_env(environ)`` reads another mapping instead of
    ``os.environ`` (``EmbedLoop()`` builds ``Settings()``).
    """

    embedding_model: str = DEFAULT_MODEL
    storage_path: Path = field(default_factory=_default_storage)
    #: A file path (SQLite) or any SQLAlchemy URL. Default: ``<storage_path>/feedback.db``.
    database_url: str | None = None

    # The loop (the spec's defaults).
    fine_tune_threshold: int = 100
    check_interval_seconds: float = 3600.0
    min_accuracy: float = 0.70
    #: How far the candidate's held-out NDCG@10 may fall below the active model's (see the gate).
    metric_tolerance: float = 0.02

    # Trials: a candidate that passes the pre-check is judged by users on interleaved results
    # (``evaluation/trial_test.py``, ``docs/trials.md``).
    #: Off: no live traffic judges candidates; the pre-check alone decides and promotes at once.
    trials: bool = True
    #: Share of searches answered with an interleaved list during a trial.
    trial_share: float = 0.5
    #: Trial searches after which an undecided trial ends and the active model stays.
    trial_max_searches: int = 4000
    #: One-sided error bound of the trial's sequential test: P(promote | candidate no better) <= trial_alpha.
    trial_alpha: float = 0.05
    #: Error bound for rejecting a better candidate by the test (before the search limit ends it).
    trial_beta: float = 0.05
    #: Smallest candidate win rate (over searches with a winner) the test is tuned to detect quickly.
    trial_min_effect: float = 0.55
    #: ``unseen``: searches for the queries the candidate was trained on are answered by the active model
    #: alone, so users judge it where its training did not already decide the answer (its gains on its own
    #: training queries are near certain; what is in doubt is everything else). ``all``: every search.
    trial_queries: TrialQueries = TrialQueries.ALL
    #: Pre-check (trials on): how far held-out triplet accuracy and NDCG@10 may fall below the active model's
    #: before a candidate is too broken to show users. Wide on purpose: held-out clicks favour the active model
    #: (docs/benchmarks-quality.md: candidates better on dev lost up to 0.03 accuracy and 0.17 NDCG@10 there).
    precheck_accuracy_drop: float = 0.10
    precheck_ndcg_drop: float = 0.30

    # Training.
    loss: LossName = LossName.MNRL
    training_mode: TrainingMode = TrainingMode.FULL
    adapter_rank: int = 32
    adapter_epochs: int = 20
    adapter_learning_rate: float = 1e-3
    #: Chosen on SciFact and NFCorpus dev (docs/benchmarks-quality.md): 1e-4 gained more than 2e-5 on both.
    learning_rate: float = 1e-4
    epochs: int = 1
    train_batch_size: int = 32
    seed: int = 42
    hard_negatives: int = 2
    #: Where negatives come from, comma-separated, in order of trust: skip_above, shown, mined
    #: (random catalog items fill any remaining slots).
    negative_sources: str = "skip_above,shown,mined"
    position_bias: bool = False
    replay: bool = True
    distill_weight: float = 0.0
    holdout_fraction: float = 0.2
    min_holdout_queries: int = 5
    min_train_examples: int = 10
    #: Most click examples one cycle trains on (0 = no limit): the newest window's first, then the
    #: best-supported older pairs (training/examples.py, ``cap_examples``). Bounds the cycle time.
    max_train_examples: int = 5000
    domain_examples_path: Path | None = None
    #: Lease length of the single-flight training lock; a crashed trainer's lock expires after it.
    lock_ttl_seconds: float = 30.0
    max_seq_length: int = 128

    # Training signal (issue 11; docs/training.md, "The training signal"). Defaults chosen by the benchmarks.
    #: "pbm": weight/filter click positives by a position-based click model's P(relevant | clicks) pooled
    #: over every search of the query; "pbm_scores": the same with a relevance prior from how far the active
    #: model's score of the item stands out in its shown list (tells a lone mis-click from a relevant click);
    #: "off": every click is a positive. pbm_scores is the default since stop 24: over several rounds with
    #: trials it gained more than pbm in total (much more on SciFact, 0.009 less on NFCorpus, within noise)
    #: and it keeps noisy clicks out of a single round (docs/benchmarks-quality.md, "Stop 24").
    click_model: str = "pbm_scores"
    #: With a click model, positives whose P(relevant) is below this are dropped.
    click_min_relevance: float = 0.5
    #: Shown results below the last selection and mined negatives must pass a similarity margin to be negatives.
    safe_negatives: bool = False
    #: A checked negative must score <= (1 - margin) x the positive's similarity (sentence-transformers' relative_margin).
    negative_relative_margin: float = 0.05
    #: WiSE-FT mixing weight of the trained weights with the starting model's (1.0 = off, 0.5 = the midpoint).
    weight_averaging: float = 1.0
    #: Choose the mixing weight per cycle on held-out judgments (of 0, 0.25, ..., 1: the best accuracy); clicks: keep 1.
    auto_averaging: bool = False
    #: Fine-tunes per cycle from the same start (seeds seed, seed + 1, ...), their weights averaged uniformly
    #: (a model soup): the batch order's noise in a small cycle's update averages out; costs draws x training.
    #: 3 by evidence (docs/benchmarks-quality.md, "A soup of training draws"); 1 = one fine-tune, as before stop 28.
    train_draws: int = 3
    #: The most a soup may lengthen a full-mode cycle, as a multiple of the cycle with one draw (the issue's
    #: "must not double the cycle"): fewer than ``train_draws`` draws are trained when training would dominate,
    #: estimated from the training rows' and the catalog's tokens (``training.averaging.soup_draws``). 0 = no limit.
    soup_cost_cap: float = 2.0
    #: Which weights a full-mode cycle starts from: "active" (the serving model) or "base" (all feedback replayed).
    train_from: str = "active"
    #: Clicks, judgments, domain examples and distillation as separate datasets, each with its own loss.
    multi_task: bool = False
    #: Exploration in the shown list: "off", "fairpairs", "insert" or "both" (embedloop.search.exploration).
    exploration: str = "off"
    #: FairPairs: probability a pair is swapped is 0.5 x rate; insert: probability of one insertion per search.
    exploration_rate: float = 0.1

    # Serving.
    #: Runtime of the encoder for searches and catalog embedding (env EMBEDLOOP_INFERENCE_BACKEND).
    inference_backend: InferenceBackend = InferenceBackend.TORCH
    encode_batch_size: int = 64
    max_k: int = 1000
    #: Longest item text kept (characters). The whole text is stored and returned; the encoder embeds
    #: only its first ``max_seq_length`` tokens (see docs/catalog.md, "Long texts").
    max_text_length: int = 1_000_000
    #: Longest query (characters): searches and feedback queries.
    max_query_length: int = 10_000
    #: Largest HTTP request body (bytes); bigger requests answer 413 before being read.
    max_request_bytes: int = 32 * 1024 * 1024
    device: str | None = None
    #: CPU threads for torch and FAISS (None: the libraries' default). 1 is much faster on a busy
    #: 2-core machine, where default threads spin-wait (see docs/benchmarks.md, "Threads").
    torch_threads: int | None = None
    show_progress: bool = True
    api_token: str | None = None
    feedback_token: str | None = None

    def __post_init__(self) -> None:
        # Coerce and validate, so Settings(...) built in code is checked like env input.
        for f in fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(f.name, value, f.type, source=f.name)
            object.__setattr__(self, f.name, coerced)
        _validate(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``); ``overrides`` win.

        ``Settings(**overrides)`` is the same as ``Settings.from_env(**overrides)``: explicit
        values first, then the environment, then the defaults.
        """
        values: dict[str, Any] = _env_values(os.environ if environ is None else environ, skip=overrides.keys())
        values.update(overrides)
        values["_environ"] = {}  # the environment was read above
        try:
            return cls(**values)
        except TypeError as exc:  # unknown override name
            raise ConfigError(f"Unknown setting: {exc}") from exc

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (the others are kept as they are, not re-read)."""
        return dataclasses.replace(self, **changes)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL SQLAlchemy should open."""
        if self.database_url is None:
            return f"sqlite:///{(self.storage_path / 'feedback.db').resolve()}"
        if "://" in self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.database_url).expanduser().resolve()}"

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain JSON values, secrets masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("token"):
                value = "***" if value else None
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Enum):
                value = value.value
            out[f.name] = value
        return out


def _env_values(environ: Mapping[str, str], skip: Collection[str] = ()) -> dict[str, Any]:
    """The fields set in ``environ`` (except ``skip``), coerced; a bad value raises :class:`ConfigError`."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in skip:
            continue
        name = env_name(f.name)
        raw = environ.get(name)
        if raw is not None and raw.strip() != "":
            values[f.name] = _coerce(f.name, raw.strip(), f.type, source=name)
    return values


_dataclass_init = Settings.__init__


def _settings_init(self: Settings, _environ: Mapping[str, str] | None = None, **values: Any) -> None:
    """Explicit values first, then the environment (``_environ``, default ``os.environ``), then defaults."""
    merged = _env_values(os.environ if _environ is None else _environ, skip=values.keys())
    merged.update(values)
    _dataclass_init(self, **merged)


_settings_init.__doc__ = Settings.__doc__
Settings.__init__ = _settings_init  # type: ignore[method-assign,assignment]


def with_stored_model(
    settings: Settings, *, explicit: bool = False, environ: Mapping[str, str] | None = None
) -> Settings:
    """``settings`` using the base model its storage was built with, unless one was given.

    A model given on the command line (``explicit``) or in ``EMBEDDING_MODEL`` wins;
    otherwise an existing storage's own base model replaces the default, so commands
    on it need no ``--model``.
    """
    environ = os.environ if environ is None else environ
    if explicit or (environ.get(env_name("embedding_model")) or "").strip():
        return settings
    from embedloop.registry.stored import stored_base_model

    stored = stored_base_model(settings.storage_path)
    if stored is None or stored == settings.embedding_model:
        return settings
    return settings.replace(embedding_model=stored)


#: The settings' enum types by annotation name (values are parsed case-insensitively).
_ENUMS: dict[str, type[StrEnum]] = {
    "LossName": LossName,
    "TrainingMode": TrainingMode,
    "InferenceBackend": InferenceBackend,
    "TrialQueries": TrialQueries,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any, type_hint: Any, *, source: str) -> Any:
    hint = str(type_hint)
    optional = "None" in hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source} must be set (got None).")
    try:
        if hint.startswith("Path"):
            return Path(value).expanduser()
        for enum_name, enum_type in _ENUMS.items():
            if hint.startswith(enum_name):
                return enum_type(value.lower() if isinstance(value, str) else value)
        if hint.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if hint.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint.startswith("str"):
            if not isinstance(value, str):
                raise ValueError
            return value
    except (ValueError, TypeError):
        allowed = _allowed(hint)
        raise ConfigError(f"{source}={value!r} is not valid: expected {allowed}.") from None
    return value


def _allowed(hint: str) -> str:
    for enum_name, enum_type in _ENUMS.items():
        if hint.startswith(enum_name):
            return "one of " + ", ".join(repr(x.value) for x in enum_type)
    if hint.startswith("bool"):
        return "a boolean (true/false, 1/0, yes/no)"
    if hint.startswith("int"):
        return "an integer"
    if hint.startswith("float"):
        return "a number"
    return "a string"


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{env_name(name)}={value!r} is not valid: {allowed}.")


def _validate(s: Settings) -> None:
    _check(bool(s.embedding_model.strip()), "embedding_model", s.embedding_model, "give a model name or folder")
    _check(s.fine_tune_threshold >= 1, "fine_tune_threshold", s.fine_tune_threshold, "must be >= 1")
    _check(s.check_interval_seconds > 0, "check_interval_seconds", s.check_interval_seconds, "must be > 0")
    _check(0.0 <= s.min_accuracy <= 1.0, "min_accuracy", s.min_accuracy, "must be between 0 and 1")
    _check(0.0 <= s.metric_tolerance < 1.0, "metric_tolerance", s.metric_tolerance, "must be in [0, 1)")
    _check(0.0 < s.learning_rate < 1.0, "learning_rate", s.learning_rate, "must be in (0, 1)")
    _check(1 <= s.epochs <= 100, "epochs", s.epochs, "must be between 1 and 100")
    _check(2 <= s.train_batch_size <= 4096, "train_batch_size", s.train_batch_size, "must be between 2 and 4096")
    _check(0 <= s.hard_negatives <= 50, "hard_negatives", s.hard_negatives, "must be between 0 and 50")
    _check(1 <= s.adapter_rank <= 1024, "adapter_rank", s.adapter_rank, "must be between 1 and 1024")
    _check(1 <= s.adapter_epochs <= 1000, "adapter_epochs", s.adapter_epochs, "must be between 1 and 1000")
    _check(0.0 < s.adapter_learning_rate < 1.0, "adapter_learning_rate", s.adapter_learning_rate, "must be in (0, 1)")
    sources = [x.strip() for x in s.negative_sources.split(",") if x.strip()]
    _check(
        all(x in NEGATIVE_SOURCES for x in sources),
        "negative_sources",
        s.negative_sources,
        "a comma-separated subset of " + ", ".join(NEGATIVE_SOURCES),
    )
    _check(s.distill_weight >= 0.0, "distill_weight", s.distill_weight, "must be >= 0")
    _check(0.0 < s.holdout_fraction < 1.0, "holdout_fraction", s.holdout_fraction, "must be in (0, 1)")
    _check(s.min_holdout_queries >= 1, "min_holdout_queries", s.min_holdout_queries, "must be >= 1")
    _check(s.lock_ttl_seconds >= 1.0, "lock_ttl_seconds", s.lock_ttl_seconds, "must be >= 1")
    _check(s.min_train_examples >= 1, "min_train_examples", s.min_train_examples, "must be >= 1")
    _check(
        s.max_train_examples == 0 or s.max_train_examples >= s.min_train_examples,
        "max_train_examples",
        s.max_train_examples,
        "must be 0 (no limit) or at least min_train_examples",
    )
    _check(8 <= s.max_seq_length <= 8192, "max_seq_length", s.max_seq_length, "must be between 8 and 8192")
    _check(1 <= s.encode_batch_size <= 4096, "encode_batch_size", s.encode_batch_size, "must be between 1 and 4096")
    if s.torch_threads is not None:
        _check(1 <= s.torch_threads <= 1024, "torch_threads", s.torch_threads, "must be between 1 and 1024")
    _check(1 <= s.max_k <= 100_000, "max_k", s.max_k, "must be between 1 and 100000")
    _check(s.max_text_length >= 1, "max_text_length", s.max_text_length, "must be >= 1")
    _check(0.0 < s.trial_share <= 1.0, "trial_share", s.trial_share, "must be in (0, 1]")
    _check(s.trial_max_searches >= 10, "trial_max_searches", s.trial_max_searches, "must be >= 10")
    _check(0.0 < s.trial_alpha <= 0.5, "trial_alpha", s.trial_alpha, "must be in (0, 0.5]")
    _check(0.0 < s.trial_beta <= 0.5, "trial_beta", s.trial_beta, "must be in (0, 0.5]")
    _check(0.5 < s.trial_min_effect < 1.0, "trial_min_effect", s.trial_min_effect, "must be in (0.5, 1)")
    _check(
        0.0 <= s.precheck_accuracy_drop < 1.0, "precheck_accuracy_drop", s.precheck_accuracy_drop, "must be in [0, 1)"
    )
    _check(0.0 <= s.precheck_ndcg_drop < 1.0, "precheck_ndcg_drop", s.precheck_ndcg_drop, "must be in [0, 1)")
    _check(1 <= s.max_text_length <= 100_000_000, "max_text_length", s.max_text_length, "must be between 1 and 1e8")
    _check(1 <= s.max_query_length <= 1_000_000, "max_query_length", s.max_query_length, "must be between 1 and 1e6")
    _check(s.max_request_bytes >= 1024, "max_request_bytes", s.max_request_bytes, "must be >= 1024")
    if s.database_url is not None:
        _check(bool(s.database_url.strip()), "database_url", s.database_url, "give a file path or a SQLAlchemy URL")
    _validate_signal(s)


def _validate_signal(s: Settings) -> None:
    """The training-signal options (issue 11)."""
    _check(s.click_model in CLICK_MODELS, "click_model", s.click_model, "one of " + ", ".join(CLICK_MODELS))
    _check(0.0 <= s.click_min_relevance < 1.0, "click_min_relevance", s.click_min_relevance, "must be in [0, 1)")
    _check(
        0.0 <= s.negative_relative_margin < 1.0,
        "negative_relative_margin",
        s.negative_relative_margin,
        "must be in [0, 1)",
    )
    _check(0.0 < s.weight_averaging <= 1.0, "weight_averaging", s.weight_averaging, "must be in (0, 1]")
    _check(
        not (s.auto_averaging and s.weight_averaging < 1.0),
        "weight_averaging",
        s.weight_averaging,
        "must stay 1.0 when auto_averaging chooses the mixing weight; set one of the two",
    )
    _check(1 <= s.train_draws <= 16, "train_draws", s.train_draws, "must be an integer from 1 to 16")
    _check(
        s.soup_cost_cap == 0 or 1.0 <= s.soup_cost_cap <= 100.0,
        "soup_cost_cap",
        s.soup_cost_cap,
        "must be 0 (no limit) or a multiple from 1 to 100",
    )
    _check(s.train_from in TRAIN_FROM, "train_from", s.train_from, "one of " + ", ".join(TRAIN_FROM))
    _check(s.exploration in EXPLORATION, "exploration", s.exploration, "one of " + ", ".join(EXPLORATION))
    _check(0.0 <= s.exploration_rate <= 1.0, "exploration_rate", s.exploration_rate, "must be in [0, 1]")
