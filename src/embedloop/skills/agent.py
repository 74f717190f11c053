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

from embedloop.scheduler import FineTuneScheduler, fine_tune_exclusive
from embedloop.store.locks import TRAINING_LOCK, holder

if TYPE_CHECKING:
    from embedloop.loop import EmbedLoop

logger = logging.getLogger(__name__)


def status_report(loop: EmbedLoop, scheduler: FineTuneScheduler | None = None) -> dict[str, Any]:
    """``loop.status()`` plus the schedule and whether a cycle is running now (blocking).

    Keys: the spec's ``should_fine_tune``, ``feedback_count``, ``threshold``,
    ``current_model``; then ``active_version``, ``last_run``,
    ``next_scheduled_check`` (ISO time, ``None`` without a running scheduler),
    ``training_in_progress`` and ``training_lock`` (holder and lease end), and
    everything else ``loop.status()`` reports.
    """
    report = dict(loop.status())
    lock = holder(loop.store, TRAINING_LOCK)
    if lock is not None and lock["expired"]:
        lock = None
    report["next_scheduled_check"] = scheduler.next_check_at if scheduler is not None else None
    report["training_in_progress"] = lock is not None
    report["training_lock"] = lock
    report["scheduler"] = scheduler.info() if scheduler is not None else None
    return report


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
        self.scheduler = scheduler

    # ------------------------------------------------------------ the spec
    async def check_fine_tuning_status(self) -> dict[str, Any]:
        """Whether to fine-tune now, and what the model is (see :func:`status_report`)."""
        return await asyncio.to_thread(status_report, self.loop, self.scheduler)

    async def execute_embedding_fine_tuning(self, force: bool = False) -> dict[str, Any]:
        """Run one fine-tuning cycle in a worker thread, holding the training lock.

        Returns ``status`` ("promoted" | "trial" | "rejected" | "skipped" | "failed"),
        ``version``, ``metrics`` and ``reasons``. Raises
        :class:`~embedloop.errors.TrainingInProgressError` if another process
        or agent is training.
        """
        return await asyncio.to_thread(fine_tune_exclusive, self.loop, force=force)

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
