"""Agent skills: ``Agent2EmbeddingSkill`` (async), its tool definitions, and ``EmbeddingFineTuner``.

>>> from embedloop.skills import Agent2EmbeddingSkill
>>> skill = Agent2EmbeddingSkill(loop)
>>> await skill.check_fine_tuning_status()
>>> await skill.execute_embedding_fine_tuning()
"""

from __future__ import annotations

from typing import Any

from embedloop.skills.agent import Agent2EmbeddingSkill
from embedloop.skills.tools import TOOL_DEFINITIONS, anthropic_tools, openai_tools, tool_definitions

__all__ = [
    "TOOL_DEFINITIONS",
    "Agent2EmbeddingSkill",
    "EmbeddingFineTuner",
    "anthropic_tools",
    "openai_tools",
    "tool_definitions",
]


def __getattr__(name: str) -> Any:
    """Import ``EmbeddingFineTuner`` (and its training dependencies) only when it is asked for."""
    if name == "EmbeddingFineTuner":
        from embedloop.training.finetuner import EmbeddingFineTuner

        return EmbeddingFineTuner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
