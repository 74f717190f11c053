"""``Agent2EmbeddingSkill``: the spec's async agent skill over one :class:`~embedloop.EmbedLoop`.

Every call runs the blocking work in a worker thread (``asyncio.to_thread``),
so a search, a database write or a minutes-long fine-tuning cycle never
blocks the agent's event loop.

>>> skill = Agent2EmbeddingSkill(loop)
>>> status = await skill.check_fine_tuning_status()
>>> if status["should_fine_tune"]:
...     result = await skill.execute_embedding_fine_tuning()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedloop.loop import EmbedLoop
    from embedloop.scheduler import FineTuneScheduler

logger = logging.getLogger(__name__)


class Agent2EmbeddingSkill:
    """Search, feedback, status and fine-tuning for an agent, all ``async``.

    The spec's skills are ``check_fine_tuning_status`` and
    ``fine_tune_embeddings`` (:meth:`execute_embedding_fine_tuning`); search
    and feedback make the loop usable from the same object.
    :attr:`tool_definitions` are JSON-Schema definitions for a
    function-calling agent, and :meth:`call` runs one by name.
    """

    def __init__(self, loop: EmbedLoop, scheduler: FineTuneScheduler | None = None) -> None:
        self.loop = loop
        if scheduler is not None:  # the loop's status() reports its schedule
            loop.scheduler = scheduler

    # ------------------------------------------------------------ the spec
    async def check_fine_tuning_status(self) -> dict[str, Any]:
        """Whether to fine-tune now, and what the model is (:meth:`EmbedLoop.status`)."""
        return await asyncio.to_thread(self.loop.status)

    async def execute_embedding_fine_tuning(self, force: bool = False) -> dict[str, Any]:
        """Run one fine-tuning cycle in a worker thread, holding the training lock.

        Returns ``status`` ("promoted" | "trial" | "rejected" | "skipped" | "failed"),
        ``version``, ``metrics`` and ``reasons``. Raises
        :class:`~embedloop.errors.TrainingInProgressError` if another process
        or agent is training.
        """
        return await asyncio.to_thread(self.loop.fine_tune, force)

    #: The spec's skill name for :meth:`execute_embedding_fine_tuning`.
    fine_tune_embeddings = execute_embedding_fine_tuning

    # ------------------------------------------------------- search, feedback
    async def search(self, query: str, k: int = 10, user_id: str | None = None) -> dict[str, Any]:
        """Ranked hits for ``query`` and the ``search_id`` to report the selection against."""
        response = await asyncio.to_thread(self.loop.search, query, k, user_id=user_id)
        return response.to_dict()

    async def record_selection(self, search_id: str, item_id: str, event_id: str | None = None) -> dict[str, Any]:
        """Log that the user picked ``item_id`` from search ``search_id``."""
        selection = await asyncio.to_thread(self.loop.record_selection, search_id, item_id, event_id=event_id)
        return selection.to_dict()

    async def record_feedback(
        self,
        query: str,
        shown: Sequence[str],
        selected: Sequence[str],
        user_id: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Log a search done elsewhere: the query, the ids shown in order, the ids picked."""
        return await asyncio.to_thread(
            self.loop.record_feedback, query, shown, selected, user_id=user_id, event_id=event_id
        )

    # -------------------------------------------------------------- versions
    async def list_model_versions(self) -> list[dict[str, Any]]:
        """Kept model versions, newest first, the active one marked."""
        return await asyncio.to_thread(self.loop.versions)

    async def rollback_model(self, version: int | None = None) -> dict[str, Any]:
        """Switch to the previous version, or to ``version``; returns its manifest."""
        return await asyncio.to_thread(self.loop.rollback, version)

    async def get_trial(self) -> dict[str, Any]:
        """The running trial (or ``None``) and the last trials."""

        def read() -> dict[str, Any]:
            return {"trial": self.loop.trial_status(), "history": self.loop.trials(limit=10)}

        return await asyncio.to_thread(read)

    async def stop_trial(self, reason: str = "stopped by an agent") -> dict[str, Any]:
        """End the running trial: the candidate is rejected."""
        return await asyncio.to_thread(self.loop.stop_trial, reason)

    async def prune_models(self, keep: int = 5) -> dict[str, Any]:
        """Delete old trained versions, keeping ``keep`` (the active one first, then the newest)."""
        return await asyncio.to_thread(self.loop.prune, keep)

    async def evaluate_model(self, candidate: str | None = None) -> dict[str, Any]:
        """The active model's (and ``candidate``'s) metrics on held-out feedback; nothing is promoted."""
        return await asyncio.to_thread(self.loop.evaluate, candidate)

    async def list_training_runs(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Training runs newest first, one page."""
        return await asyncio.to_thread(self.loop.runs, limit, offset)

    # ------------------------------------------------------------ feedback data
    async def get_feedback_stats(self) -> dict[str, Any]:
        """Counts of items, searches, impressions and selections, the selection rate."""
        return await asyncio.to_thread(self.loop.feedback_stats)

    async def export_feedback(self, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        """One page of the feedback export, oldest first."""
        return await asyncio.to_thread(self.loop.feedback_records, limit, offset)

    # ------------------------------------------------------ review queue
    async def get_review_queue(self, limit: int = 10) -> dict[str, Any]:
        """Open review questions, most useful first (``{"questions": [...]}``)."""
        return {"questions": await asyncio.to_thread(self.loop.review_queue, limit)}

    async def answer_review(
        self,
        review_id: str,
        selected: Sequence[str] = (),
        rejected: Sequence[str] = (),
        reviewer: str | None = None,
    ) -> dict[str, Any]:
        """Answer a review question: which candidates are relevant (``selected``) and which are not."""
        return await asyncio.to_thread(self.loop.answer_review, review_id, selected, rejected, reviewer)

    async def record_judgment(
        self, query: str, item_id: str, relevant: bool, reviewer: str | None = None
    ) -> dict[str, Any]:
        """Record that ``item_id`` is (not) relevant to ``query``."""
        return await asyncio.to_thread(self.loop.record_judgment, query, item_id, relevant, reviewer)

    # ------------------------------------------------------------ tool calls
    @property
    def tool_definitions(self) -> list[dict[str, Any]]:
        """JSON-Schema definitions of every skill (see :mod:`embedloop.skills.tools`)."""
        from embedloop.skills.tools import tool_definitions

        return tool_definitions()

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run skill ``name`` with ``arguments`` (a dict, as an agent's tool call carries them).

        Arguments are checked against the tool's schema first; a bad one raises
        :class:`~embedloop.errors.InvalidInputError` naming the field.
        """
        from embedloop.skills.tools import dispatch

        return await dispatch(self, name, arguments)
