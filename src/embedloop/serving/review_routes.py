"""HTTP endpoints of the review queue and explicit judgments (all behind the feedback token).

=========================  ======================
endpoint                   Python API
=========================  ======================
``GET /review/queue``      ``review_queue``
``POST /review/answer``    ``answer_review``
``POST /judgments``        ``record_judgment``
``GET /judgments``         ``judgments``
=========================  ======================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.params import Depends

from embedloop.loop import EmbedLoop
from embedloop.operations import AnswerParams, JudgmentParams, ReviewQueueQuery

# The request bodies are the operations' argument models (shared with MCP and the tools).
AnswerRequest = AnswerParams
JudgmentRequest = JudgmentParams


def review_router(loop: EmbedLoop, dependencies: Sequence[Depends]) -> APIRouter:
    """The review endpoints over ``loop``; ``dependencies`` is the feedback-token check."""
    router = APIRouter(tags=["review"], dependencies=list(dependencies))

    @router.get("/review/queue")
    def review_queue(page: Annotated[ReviewQueueQuery, Query()]) -> dict[str, Any]:
        """Open review questions, most useful first: review_id, query, candidates, reason."""
        return {"questions": loop.review_queue(page.limit)}

    @router.post("/review/answer")
    def answer_review(body: AnswerRequest) -> dict[str, Any]:
        """Answer a question: which candidates are relevant (selected) and which are not (rejected)."""
        return loop.answer_review(body.review_id, body.selected, body.rejected, body.reviewer)

    @router.post("/judgments")
    def record_judgment(body: JudgmentRequest) -> dict[str, Any]:
        """Record that an item is (not) relevant to a query, without a question."""
        return loop.record_judgment(body.query, body.item_id, body.relevant, body.reviewer)

    @router.get("/judgments")
    def judgments(
        query: Annotated[str | None, Query(min_length=1, description="Only judgments of this query.")] = None,
        reviewer: Annotated[str | None, Query(min_length=1, description="Only judgments by this reviewer.")] = None,
        limit: Annotated[int | None, Query(ge=1, le=100_000, description="At most this many, newest first.")] = None,
    ) -> dict[str, Any]:
        """Recorded judgments, newest first."""
        return {"judgments": loop.judgments(query, reviewer=reviewer, limit=limit)}

    return router
