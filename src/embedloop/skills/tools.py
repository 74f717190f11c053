"""Tool definitions for function-calling agents, and the dispatcher that runs them.

``TOOL_DEFINITIONS`` is a list of ``{"name", "description", "parameters"}``
objects whose ``parameters`` are JSON Schema; hand them to an agent as they
are, or wrapped for a provider with :func:`openai_tools` /
:func:`anthropic_tools`. The MCP server publishes the same names and
descriptions.

>>> result = await skill.call("check_fine_tuning_status", {})
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from embedloop.errors import InvalidInputError

if TYPE_CHECKING:
    from embedloop.skills.agent import Agent2EmbeddingSkill

_ID = {"type": "string", "minLength": 1, "maxLength": 512}
_IDS = {"type": "array", "items": _ID, "minItems": 1, "maxItems": 100_000}

#: Parameter descriptions, shared with the MCP server and the HTTP API.
PARAMS: dict[str, str] = {
    "query": "What the user is looking for, in plain words (e.g. 'Apple stock price').",
    "k": "How many results to return, best first: 1 to the server's EMBEDLOOP_MAX_K (1000 unless changed). Default 10.",
    "user_id": "Optional id of the end user or session, stored with the search for analysis.",
    "search_id": "The search_id returned by the search tool for the results the user saw.",
    "item_id": "The id of the result the user picked; it must be one of that search's results.",
    "event_id": "Optional idempotency key: repeating a call with the same event_id records it only once.",
    "shown": "Ids of the results that were shown to the user, in the order shown (best first).",
    "selected": "Ids the user picked, each one of the shown ids; empty when the user picked nothing.",
    "force": "Train even when fewer new feedback events than the threshold have arrived. Default false.",
    "version": "The model version to switch to; omit it to return to the version before the active one.",
    "reason": "Why the trial is stopped (kept with the trial's record).",
}

#: What each tool does, when to use it, and what it returns.
DESCRIPTIONS: dict[str, str] = {
    "search": (
        "Semantic search over the catalog with the active embedding model. Returns search_id and hits "
        "(item_id, text, score, rank). Report the result the user picks with record_selection and this "
        "search_id: that feedback is what the model learns from."
    ),
    "record_selection": (
        "Record that the user picked one result of an earlier search (by search_id and item_id). Only "
        "items that the search returned can be selected. Returns the logged event."
    ),
    "record_feedback": (
        "Record a search done outside this tool in one call: the query, the ids shown (in order) and the "
        "ids the user picked. Use this when results were not obtained through the search tool."
    ),
    "check_fine_tuning_status": (
        "Report whether enough new feedback has accumulated to fine-tune the embedding model: "
        "should_fine_tune, feedback_count (new events since the last training), threshold, current_model, "
        "active_version, last_run, trial (the candidate on trial, or null), next_scheduled_check and "
        "training_in_progress. Read-only."
    ),
    "fine_tune_embeddings": (
        "Run one fine-tuning cycle now: build training examples from the feedback, train a candidate model, "
        "pre-check it against the active one on held-out feedback, then put it on trial: a share of searches "
        "shows both models' results interleaved and the users' selections decide, with no further call. "
        "Slow (minutes). Returns status (trial, promoted, rejected, skipped or failed), version, metrics and "
        "reasons. Skipped while a trial runs; fails if another fine-tuning cycle is already running."
    ),
    "list_model_versions": (
        "List the kept model versions, newest first, with status, parent, base model, metrics and which one "
        "is active. Read-only."
    ),
    "get_trial": (
        "Show the running trial of a candidate model against the active one: candidate_version, searches, "
        "wins, losses, ties, win_rate, the sequential test's statistic and bounds, and the decision so far "
        "(null when no trial runs), plus the last trials with their outcomes. Read-only."
    ),
    "stop_trial": (
        "End the running trial now: the candidate is rejected and the active model stays. Use when an "
        "operator asks; trials otherwise end by themselves."
    ),
    "rollback_model": (
        "Switch search back to an earlier model version (the one before the active version, or the given "
        "version). Returns the now-active version's manifest."
    ),
}


def _tool(name: str, properties: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    props = {key: {**schema, "description": PARAMS[key]} for key, schema in properties.items()}
    return {
        "name": name,
        "description": DESCRIPTIONS[name],
        "parameters": {"type": "object", "properties": props, "required": required, "additionalProperties": False},
    }


#: JSON-Schema tool definitions (name, description, parameters) for every skill.
TOOL_DEFINITIONS: list[dict[str, Any]] = [
    _tool(
        "search",
        {
            "query": {"type": "string", "minLength": 1},
            "k": {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 10},
            "user_id": _ID,
        },
        ["query"],
    ),
    _tool("record_selection", {"search_id": _ID, "item_id": _ID, "event_id": _ID}, ["search_id", "item_id"]),
    _tool(
        "record_feedback",
        {
            "query": {"type": "string", "minLength": 1},
            "shown": _IDS,
            "selected": {**_IDS, "minItems": 0},
            "user_id": _ID,
            "event_id": _ID,
        },
        ["query", "shown", "selected"],
    ),
    _tool("check_fine_tuning_status", {}, []),
    _tool("fine_tune_embeddings", {"force": {"type": "boolean", "default": False}}, []),
    _tool("list_model_versions", {}, []),
    _tool("rollback_model", {"version": {"type": "integer", "minimum": 0}}, []),
    _tool("get_trial", {}, []),
    _tool("stop_trial", {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}}, []),
]

#: Skill name -> method of :class:`~embedloop.skills.Agent2EmbeddingSkill`.
METHODS: dict[str, str] = {
    "search": "search",
    "record_selection": "record_selection",
    "record_feedback": "record_feedback",
    "check_fine_tuning_status": "check_fine_tuning_status",
    "fine_tune_embeddings": "execute_embedding_fine_tuning",
    "list_model_versions": "list_model_versions",
    "rollback_model": "rollback_model",
    "get_trial": "get_trial",
    "stop_trial": "stop_trial",
}

_BY_NAME = {tool["name"]: tool for tool in TOOL_DEFINITIONS}


def tool_definitions(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Copies of the definitions, all or those in ``names`` (in that order)."""
    if names is None:
        return copy.deepcopy(TOOL_DEFINITIONS)
    return [copy.deepcopy(_definition(name)) for name in names]


def openai_tools(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The definitions in OpenAI's chat-completions shape: ``{"type": "function", "function": {...}}``."""
    return [{"type": "function", "function": tool} for tool in tool_definitions(names)]


def anthropic_tools(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The definitions in Anthropic's shape: ``{"name", "description", "input_schema"}``."""
    return [
        {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
        for t in tool_definitions(names)
    ]


def _definition(name: Any) -> dict[str, Any]:
    if not isinstance(name, str) or name not in _BY_NAME:
        raise InvalidInputError(f"Unknown skill {name!r}; known skills: {sorted(_BY_NAME)}.", field="name")
    return _BY_NAME[name]


_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "boolean": (bool,), "array": (list,)}


def _check_value(value: Any, schema: Mapping[str, Any], field: str) -> None:
    kind = schema["type"]
    ok = isinstance(value, _TYPES[kind]) and not (kind == "integer" and isinstance(value, bool))
    if not ok:
        raise InvalidInputError(
            f"{field} must be of type {kind}, got {type(value).__name__} {value!r:.60}.", field=field
        )
    if kind == "string" and not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        raise InvalidInputError(
            f"{field} must be {schema.get('minLength', 0)} to {schema.get('maxLength', 'any')} characters long, "
            f"got {len(value)}.",
            field=field,
        )
    if kind == "integer" and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        raise InvalidInputError(
            f"{field}={value} is out of range [{schema.get('minimum')}, {schema.get('maximum')}].", field=field
        )
    if kind == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            raise InvalidInputError(
                f"{field} must have {schema.get('minItems', 0)} to {schema.get('maxItems')} entries, got {len(value)}.",
                field=field,
            )
        for n, entry in enumerate(value):
            _check_value(entry, schema["items"], f"{field}[{n}]")


def validate_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """Check ``arguments`` against skill ``name``'s schema; returns them without ``None`` values.

    Raises :class:`~embedloop.errors.InvalidInputError` naming the field.
    """
    schema = _definition(name)["parameters"]
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise InvalidInputError(
            f"arguments of {name!r} must be an object, got {type(arguments).__name__}.", field="arguments"
        )
    unknown = sorted(set(arguments) - set(schema["properties"]))
    if unknown:
        raise InvalidInputError(
            f"{name!r} takes no argument(s) {unknown}; allowed: {sorted(schema['properties'])}.", field=str(unknown[0])
        )
    clean = {key: value for key, value in arguments.items() if value is not None}
    for key in schema["required"]:
        if key not in clean:
            raise InvalidInputError(f"{name!r} needs the argument {key!r}: {PARAMS[key]}", field=key)
    for key, value in clean.items():
        _check_value(value, schema["properties"][key], key)
    return clean


async def dispatch(skill: Agent2EmbeddingSkill, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
    """Validate ``arguments`` and run skill ``name`` on ``skill``; returns its JSON-ready result."""
    clean = validate_arguments(name, arguments)
    method = getattr(skill, METHODS[name])
    return await method(**clean)
