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

from embedloop.operations import OPERATIONS, operation

if TYPE_CHECKING:
    from embedloop.skills.agent import Agent2EmbeddingSkill

#: JSON-Schema tool definitions (name, description, parameters) for every skill,
#: built from the operations' argument models (:mod:`embedloop.operations`).
TOOL_DEFINITIONS: list[dict[str, Any]] = [op.definition() for op in OPERATIONS]

#: Skill name -> method of :class:`~embedloop.skills.Agent2EmbeddingSkill`.
METHODS: dict[str, str] = {op.name: op.method for op in OPERATIONS}


def tool_definitions(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Copies of the definitions, all or those in ``names`` (in that order)."""
    if names is None:
        return copy.deepcopy(TOOL_DEFINITIONS)
    return [operation(name).definition() for name in names]


def openai_tools(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The definitions in OpenAI's chat-completions shape: ``{"type": "function", "function": {...}}``."""
    return [{"type": "function", "function": tool} for tool in tool_definitions(names)]


def anthropic_tools(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The definitions in Anthropic's shape: ``{"name", "description", "input_schema"}``."""
    return [
        {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
        for t in tool_definitions(names)
    ]


def validate_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """Check ``arguments`` with skill ``name``'s argument model; returns those given, without ``None`` values.

    Raises :class:`~embedloop.errors.InvalidInputError` naming the field.
    """
    return operation(name).validate(arguments)


async def dispatch(skill: Agent2EmbeddingSkill, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
    """Validate ``arguments`` and run skill ``name`` on ``skill``; returns its JSON-ready result."""
    op = operation(name)
    clean = op.validate(arguments)
    return await getattr(skill, op.method)(**clean)
