"""HTTP API (FastAPI) over one :class:`~embedloop.EmbedLoop`.

``create_app(loop, settings)`` builds the app; nothing is read from the
environment here. ``serve(settings, ...)`` runs it with uvicorn plus the
fine-tuning scheduler. Endpoints mirror the Python API:

=========================  ======================  ==============
endpoint                   Python API              token
=========================  ======================  ==============
``POST /search``           ``loop.search``         -
``POST /selections``       ``record_selection``    feedback [#]_
``POST /feedback``         ``record_feedback``     feedback
``GET /status``            ``status`` (+schedule)  -
``POST /fine-tune``        ``fine_tune``           admin
``POST /evaluate``         ``evaluate``            admin
``GET /models``            ``versions``            -
``POST /models/rollback``  ``rollback``            admin
``POST /models/prune``     ``prune``               admin
``GET /trial``             ``trial_status``        -
``POST /trial/stop``       ``stop_trial``          admin
``POST /catalog/items``    ``add_items``           admin
``DELETE /catalog/items``  ``delete_items``        admin
``GET /runs``              ``runs``                -
``GET /feedback/stats``    ``feedback_stats``      -
``GET /feedback/export``   ``feedback_records``    admin
``GET /feedback/timeline`` ``feedback_timeline``   -
``GET /dashboard``         operator pages          - [#]_
``GET /health``            liveness                -
``GET /ready``             readiness (database)    -
``GET /review/queue``      ``review_queue``        feedback
``POST /review/answer``    ``answer_review``       feedback
``POST /judgments``        ``record_judgment``     feedback
``GET /judgments``         ``judgments``           feedback
=========================  ======================  ==============

.. [#] Only when ``EMBEDLOOP_FEEDBACK_TOKEN`` is set; the admin token works too.
.. [#] Read-only pages over these endpoints; their admin buttons send the admin token.

Admin endpoints need ``Authorization: Bearer <EMBEDLOOP_API_TOKEN>``. With no
API token configured they answer 403, unless the server was started with
``insecure=True``, which :func:`serve` allows on a loopback address only.
Every error is ``{"error": {"type", "message", "field"}}``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

import embedloop
from embedloop.errors import EmbedLoopError
from embedloop.loop import EmbedLoop
from embedloop.operations import (
    MAX_LIST,
    MAX_TEXT,
    EvaluateParams,
    FeedbackExportQuery,
    FeedbackParams,
    FineTuneParams,
    Id,
    PruneParams,
    RollbackParams,
    RunsQuery,
    SearchParams,
    SelectionParams,
    StopTrialParams,
)
from embedloop.scheduler import FineTuneScheduler
from embedloop.serving.common import (
    check_bind,
    error_body,
    parse_args,
    run_uvicorn,
    start_scheduler_when_ready,
    warn_weak_tokens,
)
from embedloop.serving.dashboard import install_dashboard
from embedloop.serving.limits import BodySizeLimit, json_position, small_body_limit
from embedloop.serving.review_routes import review_router
from embedloop.settings import Settings

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """What went wrong, and which field."""

    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"type", "message", "field"}}``."""

    error: ErrorDetail


#: Documented on every operation: the loop's own checks (e.g. k above EMBEDLOOP_MAX_K) answer 400.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input (the message names the field and the fix)"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorBody, "description": "Admin endpoints disabled (no API token configured)"},
    404: {"model": ErrorBody, "description": "Unknown id (search, item, model version)"},
    409: {"model": ErrorBody, "description": "Conflict (item not shown, training already in progress)"},
    422: {"model": ErrorBody, "description": "Request body does not match the schema"},
}
_bearer = HTTPBearer(auto_error=False, description="EMBEDLOOP_API_TOKEN (admin) or EMBEDLOOP_FEEDBACK_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The request bodies are the operations' argument models (one per operation, shared with MCP and the tools).
SearchRequest = SearchParams
SelectionRequest = SelectionParams
FeedbackRequest = FeedbackParams
FineTuneRequest = FineTuneParams
EvaluateRequest = EvaluateParams
RollbackRequest = RollbackParams
PruneRequest = PruneParams
StopTrialRequest = StopTrialParams


class ItemIn(_Body):
    """One catalog item."""

    id: Id
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="The text that is embedded and searched.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Any JSON object kept with the item.")


class UpsertRequest(_Body):
    """``POST /catalog/items``: insert or update items (all or nothing)."""

    items: list[ItemIn] = Field(min_length=1, max_length=MAX_LIST)


class DeleteRequest(_Body):
    """``DELETE /catalog/items``."""

    ids: list[Id] = Field(min_length=1, max_length=MAX_LIST)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):  # where it was, not which field
        parts = parts[1:]
    return ".".join(parts) or "body"


def _detail(error: Mapping[str, Any], body: Any) -> dict[str, Any]:
    """One validation error as ``{"field", "message"}``; malformed JSON names its line and column."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
        reason = (error.get("ctx") or {}).get("error") or error.get("msg", "invalid JSON")
        where = json_position(body, loc[1])
        at = f" at line {where[0]}, column {where[1]}" if where else ""
        return {"field": "body", "message": f"malformed JSON{at}: {reason}; send a valid JSON object."}
    return {"field": _field_of(loc), "message": error.get("msg", "")}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EmbedLoopError)
    async def _domain(_request: Request, exc: EmbedLoopError) -> JSONResponse:
        return JSONResponse(error_body(type(exc).__name__, str(exc), getattr(exc, "field", None)), exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [_detail(e, exc.body) for e in exc.errors()]
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}"
        return JSONResponse(error_body("ValidationError", message, first["field"], details=details), 422)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        kind = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed"}.get(
            exc.status_code, "HTTPError"
        )
        return JSONResponse(error_body(kind, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("Unhandled error in a request", exc_info=exc)
        return JSONResponse(error_body("InternalError", "Internal server error; see the server log."), 500)


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def create_app(
    loop: EmbedLoop,
    settings: Settings | None = None,
    *,
    insecure: bool = False,
    scheduler: FineTuneScheduler | None = None,
) -> FastAPI:
    """The HTTP API over ``loop``; tokens come from ``settings`` (default: ``loop.settings``)."""
    settings = settings if settings is not None else loop.settings
    app = FastAPI(
        title="embedloop",
        version=embedloop.__version__,
        description="Semantic search that fine-tunes itself from its users' selections.",
        responses=ERROR_RESPONSES,
    )
    _install_error_handlers(app)
    app.add_middleware(  # size first (issue 12, item 4): catalog uploads may be large, nothing else is
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        small_bytes=small_body_limit(settings.max_k, settings.max_request_bytes),
        large_prefixes=("/catalog",),
    )
    warn_weak_tokens(settings)

    def _refuse() -> HTTPException:
        return HTTPException(
            401, "Missing or wrong bearer token: send 'Authorization: Bearer <token>'.", {"WWW-Authenticate": "Bearer"}
        )

    def require_admin(credentials: Credentials) -> None:
        token = settings.api_token
        if token is None:
            if insecure:
                return
            raise HTTPException(
                403,
                "Admin endpoints are disabled: no API token is configured. Set EMBEDLOOP_API_TOKEN and send "
                "'Authorization: Bearer <token>', or start the server with --insecure on a loopback address.",
            )
        if credentials is None or not _same(credentials.credentials, token):
            raise _refuse()

    def require_feedback(credentials: Credentials) -> None:
        tokens = [t for t in (settings.feedback_token, settings.api_token) if t]
        if settings.feedback_token is None:
            return
        if credentials is None or not any(_same(credentials.credentials, t) for t in tokens):
            raise _refuse()

    admin = [Depends(require_admin)]
    feedback = [Depends(require_feedback)]

    @app.post("/search", tags=["search"])
    def search(body: SearchRequest) -> dict[str, Any]:
        """Rank catalog items for a query; report the pick with ``POST /selections`` and the ``search_id``."""
        return loop.search(body.query, body.k, user_id=body.user_id).to_dict()

    @app.post("/selections", tags=["feedback"], dependencies=feedback)
    def record_selection(body: SelectionRequest) -> dict[str, Any]:
        """Log that the user picked ``item_id`` from search ``search_id`` (idempotent by ``event_id``)."""
        return loop.record_selection(body.search_id, body.item_id, event_id=body.event_id).to_dict()

    @app.post("/feedback", tags=["feedback"], dependencies=feedback)
    def record_feedback(body: FeedbackRequest) -> dict[str, Any]:
        """Log a search done elsewhere: query, ids shown in order, ids selected."""
        return loop.record_feedback(body.query, body.shown, body.selected, user_id=body.user_id, event_id=body.event_id)

    # issue 13: review queue and judgments (the token is declared only when one is configured)
    app.include_router(review_router(loop, feedback if settings.feedback_token else []))

    @app.get("/status", tags=["fine-tuning"])
    def status() -> dict[str, Any]:
        """Whether to fine-tune (the spec's keys), active version, last run, next scheduled check."""
        return loop.status()

    @app.post("/fine-tune", tags=["fine-tuning"], dependencies=admin)
    def fine_tune(body: FineTuneRequest | None = None) -> dict[str, Any]:
        """Run one fine-tuning cycle now (minutes); 409 if one is already running."""
        return loop.fine_tune(force=body.force if body is not None else False)

    @app.post("/evaluate", tags=["fine-tuning"], dependencies=admin)
    def evaluate(body: EvaluateRequest | None = None) -> dict[str, Any]:
        """Score the active model (and ``candidate``, a model folder on the server) on held-out feedback."""
        return loop.evaluate(body.candidate if body is not None else None)

    @app.get("/models", tags=["models"])
    def versions() -> dict[str, Any]:
        """Kept model versions, newest first, the active one marked."""
        return {"active_version": loop.active_version, "versions": loop.versions()}

    @app.post("/models/rollback", tags=["models"], dependencies=admin)
    def rollback(body: RollbackRequest | None = None) -> dict[str, Any]:
        """Switch to the previous version, or to ``version``; returns its manifest."""
        return loop.rollback(body.version if body is not None else None)

    @app.post("/models/prune", tags=["models"], dependencies=admin)
    def prune(body: PruneRequest | None = None) -> dict[str, Any]:
        """Delete old trained versions, keeping ``keep`` (the active one first, then the newest)."""
        return loop.prune(body.keep if body is not None else 5)

    @app.get("/trial", tags=["models"])
    def trial() -> dict[str, Any]:
        """The running trial (candidate, searches, wins, losses, ties, the test statistic, decision so far) and recent ones."""
        return {"trial": loop.trial_status(), "history": loop.trials(limit=20)}

    @app.post("/trial/stop", tags=["models"], dependencies=admin)
    def stop_trial(body: StopTrialRequest | None = None) -> dict[str, Any]:
        """End the running trial now: the candidate is rejected, the active model stays; 409 if none runs."""
        return loop.stop_trial(body.reason if body is not None else "stopped by an operator")

    @app.post("/catalog/items", tags=["catalog"], dependencies=admin)
    def upsert_items(body: UpsertRequest) -> dict[str, int]:
        """Insert or update items and index them (all or nothing)."""
        return loop.add_items([item.model_dump() for item in body.items])

    @app.delete("/catalog/items", tags=["catalog"], dependencies=admin)
    def delete_items(body: DeleteRequest) -> dict[str, int]:
        """Delete items by id (all or nothing; unknown ids refuse the request)."""
        return loop.delete_items(body.ids)

    @app.get("/runs", tags=["fine-tuning"])
    def runs(page: Annotated[RunsQuery, Query()]) -> dict[str, Any]:
        """Training runs newest first (feedback window, outcome, metrics, reasons, timings), one page."""
        return loop.runs(page.limit, page.offset)

    @app.get("/feedback/stats", tags=["feedback"])
    def feedback_stats() -> dict[str, Any]:
        """Counts of items, searches, impressions and selections; the selection rate and mean selected rank."""
        return loop.feedback_stats()

    @app.get("/feedback/export", tags=["feedback"], dependencies=admin)
    def export_feedback(page: Annotated[FeedbackExportQuery, Query()]) -> dict[str, Any]:
        """One page of the feedback export (searches with selections, oldest first); ``total`` counts them all."""
        return loop.feedback_records(page.limit, page.offset)

    @app.get("/feedback/timeline", tags=["feedback"])
    def feedback_timeline(
        days: Annotated[int, Query(ge=1, le=366, description="Days back from today (UTC).")] = 30,
    ) -> dict[str, Any]:
        """Searches, selections and click-through per day; top unselected queries and selected items."""
        return loop.feedback_timeline(days)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], response_model=None)
    def ready() -> dict[str, Any] | JSONResponse:
        """Readiness: the database answers and a model version is being served."""
        try:
            items = loop.store.count_items()
            version = loop.active_version
        except Exception as exc:
            logger.warning("Readiness check failed: %s", exc)
            return JSONResponse(error_body("NotReady", f"Not ready: {exc}"), 503)
        return {"status": "ready", "active_version": version, "items": items}

    install_dashboard(app)
    return app


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    insecure: bool = False,
    with_scheduler: bool = True,
    *,
    log_level: str = "info",
) -> None:
    """Run the HTTP API (and the fine-tuning scheduler) until SIGINT / SIGTERM."""
    check_bind(host, insecure)
    if settings.api_token is None and not insecure:
        logger.warning("No EMBEDLOOP_API_TOKEN: fine-tune, rollback and catalog endpoints answer 403.")
    loop = EmbedLoop(settings)
    loop.warm_up()  # the model loads before the server accepts requests, not at the first search
    scheduler = FineTuneScheduler(loop) if with_scheduler else None
    app = create_app(loop, settings, insecure=insecure, scheduler=scheduler)
    # The scheduler starts once the server accepts connections (its first check may train for minutes).
    ready = start_scheduler_when_ready(scheduler, f"http://{host}:{port}") if scheduler is not None else None
    logger.info("Dashboard at %s", dashboard_url(host, port))
    try:
        run_uvicorn(app, host, port, log_level, on_ready=ready)
    finally:
        if scheduler is not None and not scheduler.stop(timeout=10):
            logger.warning("A fine-tuning cycle is still running; its training lock lease will expire on its own.")
        loop.close()
        logger.info("embedloop HTTP server stopped.")


def dashboard_url(host: str, port: int) -> str:
    """The dashboard's address for a server bound to ``host``:``port``."""
    shown = (
        "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host and not host.startswith("[") else host
    )
    return f"http://{shown}:{port}/dashboard"


def main(argv: list[str] | None = None) -> None:
    """``python -m embedloop.serving.http``: the HTTP API for one storage folder."""
    args = parse_args(argv, prog="python -m embedloop.serving.http", description="The embedloop HTTP API.", http=True)
    try:
        serve(
            args.settings,
            args.host,
            args.port,
            insecure=args.insecure,
            with_scheduler=not args.no_scheduler,
            log_level=args.log_level,
        )
    except EmbedLoopError as exc:
        logger.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
