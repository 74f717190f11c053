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
from pydantic import BaseModel, ConfigDict, Field

from embedloop.loop import EmbedLoop
from embedloop.skills.tools import PARAMS, REVIEW_PARAMS

Id = Annotated[str, Field(min_length=1, max_length=512)]
MAX_LIST = 100_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnswerRequest(_Body):
    """``POST /review/answer``."""

    review_id: Id = Field(description=PARAMS["review_id"])
    selected: list[Id] = Field(default_factory=list, max_length=MAX_LIST, description=REVIEW_PARAMS["selected"])
    rejected: list[Id] = Field(default_factory=list, max_length=MAX_LIST, description=PARAMS["rejected"])
    reviewer: Id | None = Field(None, description=PARAMS["reviewer"])


class JudgmentRequest(_Body):
    """``POST /judgments``."""

    query: str = Field(min_length=1, max_length=1_000_000, description=PARAMS["query"])
    item_id: Id = Field(description=REVIEW_PARAMS["item_id"])
    relevant: bool = Field(strict=True, description=PARAMS["relevant"])
    reviewer: Id | None = Field(None, description=PARAMS["reviewer"])


def review_router(loop: EmbedLoop, dependencies: Sequence[Depends]) -> APIRouter:
    """The review endpoints over ``loop``; ``dependencies`` is the feedback-token check."""
    router = APIRouter(tags=["review"], dependencies=list(dependencies))

    @router.get("/review/queue")
    def review_queue(
        limit: Annotated[int, Query(ge=1, le=1000, description=PARAMS["limit"])] = 10,
    ) -> dict[str, Any]:
        """Open review questions, most useful first: review_id, query, candidates, reason."""
        return {"questions": loop.review_queue(limit)}

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
