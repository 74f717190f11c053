"""One pydantic model per operation: the single source of every interface's arguments.

Each :class:`Operation` names a tool (the agent skills' and MCP's name), the
:class:`~embedloop.skills.Agent2EmbeddingSkill` method that runs it, what it
does (the description agents read), its argument model and its behaviour
hints. From these come:

- ``TOOL_DEFINITIONS`` (:mod:`embedloop.skills.tools`): each model's JSON Schema;
- the MCP server's tools (:mod:`embedloop.serving.mcp_server`): the same models validate;
- the HTTP API's request bodies (:mod:`embedloop.serving.http`): the same classes;
- :meth:`Operation.validate` for :meth:`Agent2EmbeddingSkill.call`.

The hard caps here protect the process (no list longer than 100,000 ids,
no text over 1,000,000 characters); the configured, smaller limits
(``EMBEDLOOP_MAX_K``, ``max_query_length``, ...) are checked by the loop.

| Python (``EmbedLoop``)  | tool / MCP                 | HTTP                        | CLI                          |
|-------------------------|----------------------------|-----------------------------|------------------------------|
| ``search``              | ``search``                 | ``POST /search``            | ``search``                   |
| ``record_selection``    | ``record_selection``       | ``POST /selections``        | ``select``                   |
| ``record_feedback``     | ``record_feedback``        | ``POST /feedback``          | ``feedback record``          |
| ``status``              | ``check_fine_tuning_status`` | ``GET /status``           | ``status``                   |
| ``fine_tune``           | ``fine_tune_embeddings``   | ``POST /fine-tune``         | ``finetune``                 |
| ``evaluate``            | ``evaluate_model``         | ``POST /evaluate``          | ``evaluate``                 |
| ``versions``            | ``list_model_versions``    | ``GET /models``             | ``models list``              |
| ``rollback``            | ``rollback_model``         | ``POST /models/rollback``   | ``models rollback``          |
| ``prune``               | ``prune_models``           | ``POST /models/prune``      | ``models prune``             |
| ``trial_status``        | ``get_trial``              | ``GET /trial``              | ``models trial``             |
| ``stop_trial``          | ``stop_trial``             | ``POST /trial/stop``        | ``models trial --stop``      |
| ``runs``                | ``list_training_runs``     | ``GET /runs``               | ``runs``                     |
| ``feedback_stats``      | ``get_feedback_stats``     | ``GET /feedback/stats``     | ``feedback stats``           |
| ``export_feedback``     | ``export_feedback``        | ``GET /feedback/export``    | ``feedback export``          |
| ``review_queue``        | ``get_review_queue``       | ``GET /review/queue``       | ``review``                   |
| ``answer_review``       | ``answer_review``          | ``POST /review/answer``     | ``review``                   |
| ``record_judgment``     | ``record_judgment``        | ``POST /judgments``         | ``review judge``             |

The tool names of the spec (``check_fine_tuning_status``, ``fine_tune_embeddings``)
are kept; the others say what they act on, as an agent reads them without context.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from embedloop.errors import InvalidInputError

#: Hard caps of the argument models (the configured limits are checked by the loop).
MAX_TEXT = 1_000_000
MAX_LIST = 100_000
MAX_ID = 512

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class Params(BaseModel):
    """Arguments of one operation: unknown names are refused, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ------------------------------------------------------------------ search and feedback
class SearchParams(Params):
    """``search``."""

    query: Text = Field(description="What the user is looking for, in plain words (e.g. 'Apple stock price').")
    k: int = Field(
        10,
        ge=1,
        le=100_000,
        description="How many results to return, best first: 1 to the server's EMBEDLOOP_MAX_K (1000 unless "
        "changed). Default 10.",
    )
    user_id: Id | None = Field(None, description="Optional id of the end user or session, stored with the search.")


_EVENT_ID = "Optional idempotency key: repeating a call with the same event_id records it only once."


class SelectionParams(Params):
    """``record_selection``."""

    search_id: Id = Field(description="The search_id returned by the search tool for the results the user saw.")
    item_id: Id = Field(description="The id of the result the user picked; it must be one of that search's results.")
    event_id: Id | None = Field(None, description=_EVENT_ID)


class FeedbackParams(Params):
    """``record_feedback``: a search done elsewhere."""

    query: Text = Field(description="What the user searched for.")
    shown: list[Id] = Field(
        min_length=1,
        max_length=MAX_LIST,
        description="Ids of the results that were shown to the user, in the order shown (best first).",
    )
    selected: list[Id] = Field(
        max_length=MAX_LIST,
        description="Ids the user picked, each one of the shown ids; empty when the user picked nothing.",
    )
    user_id: Id | None = Field(None, description="Optional id of the end user or session, stored with the search.")
    event_id: Id | None = Field(None, description=_EVENT_ID)


class NoParams(Params):
    """An operation without arguments."""


class FeedbackExportParams(Params):
    """``export_feedback``."""

    limit: int = Field(
        1000, ge=1, le=MAX_LIST, description="At most this many searches with selections, oldest first. Default 1000."
    )
    offset: int = Field(0, ge=0, le=10**12, description="Searches to skip (oldest first). Default 0.")


# ------------------------------------------------------------------ fine-tuning and models
class FineTuneParams(Params):
    """``fine_tune_embeddings``."""

    force: bool = Field(
        False, description="Train even when fewer new feedback events than the threshold have arrived. Default false."
    )


class EvaluateParams(Params):
    """``evaluate_model``."""

    candidate: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None,
        description="Optional path, on the server, of a model folder to score against the active model on the "
        "same held-out feedback (nothing is promoted). Omit it to score the active model alone.",
    )


class RollbackParams(Params):
    """``rollback_model``."""

    version: int | None = Field(
        None,
        ge=0,
        description="The model version to switch to; omit it to return to the version before the active one.",
    )


class PruneParams(Params):
    """``prune_models``."""

    keep: int = Field(
        5,
        ge=1,
        le=10_000,
        description="How many trained versions to keep: the active one first, then the newest. Versions they "
        "depend on, the one on trial and the base model are kept as well. Default 5.",
    )


class StopTrialParams(Params):
    """``stop_trial``."""

    reason: str = Field(
        "stopped by an operator",
        min_length=1,
        max_length=1000,
        description="Why the trial is stopped (kept with the trial's record).",
    )


class RunsParams(Params):
    """``list_training_runs``."""

    limit: int = Field(50, ge=1, le=500, description="Runs per page, newest first: 1 to 500. Default 50.")
    offset: int = Field(0, ge=0, le=10**12, description="Runs to skip (newest first). Default 0.")


# ------------------------------------------------------------------ review queue and judgments
class ReviewQueueParams(Params):
    """``get_review_queue``."""

    limit: int = Field(
        10, ge=1, le=1000, description="How many open review questions to return, most useful first: 1 to 1000."
    )


class AnswerParams(Params):
    """``answer_review``."""

    review_id: Id = Field(description="The review_id of a question returned by get_review_queue.")
    selected: list[Id] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Candidate ids the user said ARE relevant to the question's query (may be empty if rejected "
        "is not).",
    )
    rejected: list[Id] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Candidate ids the user said are NOT relevant to the question's query.",
    )
    reviewer: Id | None = Field(
        None, description="Optional id of the person or agent who answered, stored with the judgments."
    )


class JudgmentParams(Params):
    """``record_judgment``."""

    query: Text = Field(description="The query the judgment is about, in plain words.")
    item_id: Id = Field(description="The catalog id of the item being judged.")
    relevant: bool = Field(
        description="true if the item is relevant to the query (a good result for it), false if it is not."
    )
    reviewer: Id | None = Field(
        None, description="Optional id of the person or agent who answered, stored with the judgments."
    )


# ------------------------------------------------------------------ from URL query strings
#: In a URL query string every value arrives as text: numbers are parsed there, not refused.
QUERY_STRING = ConfigDict(extra="forbid", strict=False)


class RunsQuery(RunsParams):
    """``list_training_runs`` as ``GET /runs?limit=&offset=``."""

    model_config = QUERY_STRING


class FeedbackExportQuery(FeedbackExportParams):
    """``export_feedback`` as ``GET /feedback/export?limit=&offset=``."""

    model_config = QUERY_STRING


class ReviewQueueQuery(ReviewQueueParams):
    """``get_review_queue`` as ``GET /review/queue?limit=``."""

    model_config = QUERY_STRING


# ------------------------------------------------------------------ the operations
@dataclass(frozen=True)
class Operation:
    """One operation of the product, as every interface publishes it."""

    name: str
    method: str
    params: type[Params]
    description: str
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False

    def schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema, as agents read it (no titles; an optional argument is just omitted)."""
        return clean_schema(self.params.model_json_schema())

    def definition(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``: a function-calling tool definition."""
        return {"name": self.name, "description": self.description, "parameters": self.schema()}

    def validate(self, arguments: Any) -> dict[str, Any]:
        """``arguments`` checked by the model; returns those given, without ``None`` values.

        Raises :class:`~embedloop.errors.InvalidInputError` naming the first wrong field.
        """
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise InvalidInputError(
                f"arguments of {self.name!r} must be an object, got {type(arguments).__name__}.", field="arguments"
            )
        given = {key: value for key, value in arguments.items() if value is not None}
        try:
            parsed = self.params.model_validate(given)
        except ValidationError as exc:
            raise invalid_input(self, exc) from None
        return parsed.model_dump(exclude_unset=True)


def invalid_input(op: Operation, exc: ValidationError) -> InvalidInputError:
    """The first error of ``exc`` as an :class:`InvalidInputError` naming the field (``shown[3]``)."""
    error = exc.errors(include_url=False)[0]
    loc = list(error.get("loc", ()))
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "arguments"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        allowed = sorted(op.params.model_fields)
        return InvalidInputError(f"{op.name!r} takes no argument {field!r}; allowed: {allowed}.", field=field)
    if kind == "missing":
        info = op.params.model_fields.get(str(loc[0])) if loc else None
        what = f": {info.description}" if info is not None and info.description else "."
        return InvalidInputError(f"{op.name!r} needs the argument {field!r}{what}", field=field)
    given = error.get("input")
    shown = f" (got {type(given).__name__} {given!r:.60})" if not isinstance(given, (dict, list)) else ""
    return InvalidInputError(f"{field}: {error.get('msg', 'invalid value')}{shown}.", field=field)


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without pydantic's titles, with ``X | None`` shown as ``X`` (omit the argument for None)."""
    out = copy.deepcopy(schema)
    out.pop("title", None)
    out.pop("description", None)  # the model's docstring: the operation's description says it better
    for name, prop in out.get("properties", {}).items():
        prop.pop("title", None)
        variants = prop.get("anyOf")
        if variants and any(v.get("type") == "null" for v in variants):
            rest = [v for v in variants if v.get("type") != "null"]
            if len(rest) == 1:
                del prop["anyOf"]
                prop.update(rest[0])
                if prop.get("default", 0) is None:
                    del prop["default"]
        out["properties"][name] = prop
    out["additionalProperties"] = False
    out.setdefault("required", [])
    return out


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "search",
        "search",
        SearchParams,
        "Semantic search over the catalog with the active embedding model. Returns search_id and hits "
        "(item_id, text, score, rank). Report the result the user picks with record_selection and this "
        "search_id: that feedback is what the model learns from.",
    ),
    Operation(
        "record_selection",
        "record_selection",
        SelectionParams,
        "Record that the user picked one result of an earlier search (by search_id and item_id). Only "
        "items that the search returned can be selected. Returns the logged event.",
        idempotent=True,
    ),
    Operation(
        "record_feedback",
        "record_feedback",
        FeedbackParams,
        "Record a search done outside this tool in one call: the query, the ids shown (in order) and the "
        "ids the user picked. Use this when results were not obtained through the search tool.",
    ),
    Operation(
        "check_fine_tuning_status",
        "check_fine_tuning_status",
        NoParams,
        "Report whether enough new feedback has accumulated to fine-tune the embedding model: "
        "should_fine_tune, feedback_count (new events since the last training), threshold, current_model, "
        "active_version, last_run, trial (the candidate on trial, or null), next_scheduled_check and "
        "training_in_progress. Read-only.",
        read_only=True,
    ),
    Operation(
        "fine_tune_embeddings",
        "execute_embedding_fine_tuning",
        FineTuneParams,
        "Run one fine-tuning cycle now: build training examples from the feedback, train a candidate model, "
        "pre-check it against the active one on held-out feedback, then put it on trial: a share of searches "
        "shows both models' results interleaved and the users' selections decide, with no further call. "
        "Slow (minutes). Returns status (trial, promoted, rejected, skipped or failed), version, metrics and "
        "reasons. Skipped while a trial runs; fails if another fine-tuning cycle is already running.",
    ),
    Operation(
        "evaluate_model",
        "evaluate_model",
        EvaluateParams,
        "Score the active model on the held-out part of the recorded feedback (triplet accuracy, NDCG@10, "
        "MRR@10), and optionally a candidate model folder against it on the same queries with the gate's "
        "verdict. Nothing is promoted. Fails with a clear message when there is too little held-out feedback.",
        read_only=True,
    ),
    Operation(
        "list_model_versions",
        "list_model_versions",
        NoParams,
        "List the kept model versions, newest first, with status, parent, base model, metrics and which one "
        "is active. Read-only.",
        read_only=True,
    ),
    Operation(
        "rollback_model",
        "rollback_model",
        RollbackParams,
        "Switch search back to an earlier model version (the one before the active version, or the given "
        "version). Returns the now-active version's manifest.",
        destructive=True,
        idempotent=True,
    ),
    Operation(
        "prune_models",
        "prune_models",
        PruneParams,
        "Delete old trained model versions, keeping `keep` of them (the active one first, then the newest), those "
        "they depend on, the one on trial and the base model. Returns the versions removed and kept. Cannot be "
        "undone: a removed version can no longer be rolled back to.",
        destructive=True,
        idempotent=True,
    ),
    Operation(
        "get_trial",
        "get_trial",
        NoParams,
        "Show the running trial of a candidate model against the active one: candidate_version, searches, "
        "wins, losses, ties, win_rate, the sequential test's statistic and bounds, and the decision so far "
        "(null when no trial runs), plus the last trials with their outcomes. Read-only.",
        read_only=True,
    ),
    Operation(
        "stop_trial",
        "stop_trial",
        StopTrialParams,
        "End the running trial now: the candidate is rejected and the active model stays. Use when an "
        "operator asks; trials otherwise end by themselves.",
        destructive=True,
    ),
    Operation(
        "list_training_runs",
        "list_training_runs",
        RunsParams,
        "List fine-tuning runs newest first, one page: status, feedback window, metrics of the active model and "
        "the candidate, reasons and timings, with the total count. Read-only.",
        read_only=True,
    ),
    Operation(
        "get_feedback_stats",
        "get_feedback_stats",
        NoParams,
        "Counts of catalog items, searches, shown results and selections, the share of searches with a "
        "selection and the mean selected rank. Read-only.",
        read_only=True,
    ),
    Operation(
        "export_feedback",
        "export_feedback",
        FeedbackExportParams,
        "Export recorded feedback, one record per search with selections (oldest first): search_id, query, "
        "user_id, created_at, model_version, shown (item_id, rank, score) and selected (item_id, rank). "
        "Paged by limit and offset; total says how many there are. Read-only.",
        read_only=True,
    ),
    Operation(
        "get_review_queue",
        "get_review_queue",
        ReviewQueueParams,
        "List open review questions, most useful first: each has review_id, query, candidates (item_id, text, "
        "score) and the reason it is asked (tied scores, conflicting clicks, no selection, ...). Ask your user "
        "which candidates are relevant to the query, then pass the answer to answer_review.",
    ),
    Operation(
        "answer_review",
        "answer_review",
        AnswerParams,
        "Answer a review question: selected = candidate ids that are relevant to its query, rejected = ids that "
        "are not (at least one id in all). Stored as trusted judgments for training and evaluation. Repeating the "
        "same answer is a no-op; ids that were not candidates are refused and nothing is stored.",
        idempotent=True,
    ),
    Operation(
        "record_judgment",
        "record_judgment",
        JudgmentParams,
        "Record, without a review question, that one catalog item is or is not relevant to a query (e.g. when "
        "the user says so in conversation). Trusted over clicks in training.",
    ),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}


def operation(name: Any) -> Operation:
    """The operation called ``name``; an unknown name is an :class:`InvalidInputError` listing the known ones."""
    if not isinstance(name, str) or name not in BY_NAME:
        raise InvalidInputError(f"Unknown skill {name!r}; known skills: {sorted(BY_NAME)}.", field="name")
    return BY_NAME[name]
