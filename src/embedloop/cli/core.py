"""Top-level commands: ``search``, ``select``, ``status``, ``finetune``, ``evaluate``, ``runs``."""

from __future__ import annotations

import signal
from typing import Any

import click

from embedloop.cli.context import CliState, LoopCommand, pass_state
from embedloop.cli.output import key_values, metrics_text, table

#: ``finetune`` exits with this code when the cycle failed (promoted, rejected, skipped: 0).
EXIT_FINETUNE_FAILED = 1


@click.command(cls=LoopCommand, short_help="Search the catalog and log what was shown.")
@click.argument("query")
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many results to return.")
@click.option("--user", "user_id", metavar="ID", help="User or session id to log the search under.")
@pass_state
def search(state: CliState, query: str, k: int, user_id: str | None) -> None:
    """Search the catalog for QUERY and log what was shown.

    Prints the ranked results and the search id; pass that id to `select`
    when the user picks a result.
    """
    resp = state.loop.search(query, k=k, user_id=user_id)
    rows = [[h.rank, h.item_id, h.score, h.text] for h in resp.hits]
    text = table(["rank", "id", "score", "text"], rows, max_widths={"id": 24, "text": 80})
    state.emit(resp.to_dict(), f"{text}\n\nsearch id: {resp.search_id} (model version {resp.model_version})")


@click.command(cls=LoopCommand, short_help="Record that the user picked a result.")
@click.argument("search_id")
@click.argument("item_id")
@click.option(
    "--event-id",
    metavar="ID",
    help="Idempotency key: a repeated event id is recorded once (without one, a search's item is recorded once).",
)
@pass_state
def select(state: CliState, search_id: str, item_id: str, event_id: str | None) -> None:
    """Record that the user picked ITEM_ID from the results of SEARCH_ID (record_selection).

    ITEM_ID must be one of the results shown for that search.
    """
    sel = state.loop.record_selection(search_id, item_id, event_id=event_id)
    note = " (duplicate event, already recorded)" if sel.duplicate else ""
    state.emit(sel.to_dict(), f"Recorded selection of {sel.item_id} at rank {sel.rank}{note}; event id {sel.event_id}.")


@click.command(cls=LoopCommand, short_help="Feedback count vs threshold, active model.")
@pass_state
def status(state: CliState) -> None:
    """Show whether enough feedback has accumulated to fine-tune, and the active model."""
    data = state.loop.status()
    state.emit(data, key_values(data))


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@click.command(cls=LoopCommand, short_help="Train a candidate model version and put it on trial.")
@click.option(
    "--force",
    is_flag=True,
    help="Run even if the feedback count is below the fine-tuning threshold; after a rejection this "
    "retrains on feedback already used (e.g. with other settings).",
)
@pass_state
@click.pass_context
def finetune(ctx: click.Context, state: CliState, force: bool) -> None:
    """Run one fine-tuning cycle; the candidate goes on trial, or (trials off) is promoted if better.

    Trains a candidate on the feedback gathered since the last cycle (fine_tune)
    and pre-checks it against the active model on held-out feedback. With
    trials on (EMBEDLOOP_TRIALS, the default) a candidate that passes is put
    on trial: a share of searches shows both models interleaved and the users'
    selections promote or reject it later (`embedloop models trial`). With
    trials off, held-out feedback alone decides and promotes at once. Exits 0
    when the candidate went on trial, was promoted or rejected, or the cycle
    was skipped, and 1 when it failed. SIGTERM stops it like Ctrl-C.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: the cycle closes its run, the lock is freed
    try:
        result = state.loop.fine_tune(force=force)
    finally:
        signal.signal(signal.SIGTERM, previous)
    version = result.get("version")
    lines = [
        f"status:  {result.get('status')}",
        f"version: {version if version is not None else '-'}",
        "reasons:",
        *(f"  - {r}" for r in result.get("reasons") or ["(none)"]),
        "metrics:",
        metrics_text(result.get("metrics")),
    ]
    details = {k: v for k, v in result.items() if k not in ("status", "version", "reasons", "metrics")}
    if details:
        lines += ["details:", key_values(details, indent=2)]
    state.emit(result, "\n".join(lines))
    if result.get("status") == "failed":
        ctx.exit(EXIT_FINETUNE_FAILED)


@click.command(cls=LoopCommand, short_help="Score the active model on held-out feedback.")
@click.option(
    "--candidate",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="A saved model folder to score against the active model on the same held-out feedback (nothing is promoted).",
)
@pass_state
def evaluate(state: CliState, candidate: str | None) -> None:
    """Measure the active model on the held-out part of the feedback (evaluate).

    Uses the same split a fine-tuning cycle would, so the numbers compare
    with the "active" column of `finetune`.
    """
    result = state.loop.evaluate(candidate)
    state.emit(result, key_values(result))


@click.command(cls=LoopCommand, short_help="Training runs, newest first, one page.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="Runs per page.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Runs to skip (newest first).")
@pass_state
def runs(state: CliState, limit: int, offset: int) -> None:
    """List fine-tuning runs newest first: outcome, feedback window, metrics and reasons (runs)."""
    page = state.loop.runs(limit, offset)
    rows = [
        [
            r.get("id"),
            r.get("status"),
            r.get("version"),
            f"{r.get('feedback_from_seq')}..{r.get('feedback_to_seq')}",
            r.get("duration_seconds"),
            "; ".join(r.get("reasons") or [])[:80],
        ]
        for r in page["runs"]
    ]
    shown = f"runs {offset + 1}-{offset + len(rows)} of {page['total']}" if rows else f"no runs (total {page['total']})"
    headers = ["run", "status", "version", "feedback", "seconds", "reasons"]
    text = table(headers, rows) + "\n" + shown if rows else shown
    state.emit(page, text)


COMMANDS = [search, select, status, finetune, evaluate, runs]
