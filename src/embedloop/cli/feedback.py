"""``embedloop feedback``: record, count and export feedback (record_feedback, feedback_stats, export_feedback)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from embedloop.cli.context import CliState, LoopGroup, pass_state
from embedloop.cli.output import key_values

logger = logging.getLogger(__name__)


def _split_ids(values: tuple[str, ...]) -> list[str]:
    """``("A,B", "C")`` → ``["A", "B", "C"]``; blanks dropped, order kept."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.group(cls=LoopGroup, short_help="Record, count and export feedback.")
def feedback() -> None:
    """Record feedback for searches done elsewhere, show counts, export it."""


@feedback.command(short_help="Log a search done elsewhere.")
@click.option("--query", required=True, help="The query the user searched for.")
@click.option(
    "--shown",
    required=True,
    multiple=True,
    metavar="ID,ID,...",
    help="Ids shown to the user, in rank order: comma-separated, or the option repeated.",
)
@click.option(
    "--selected",
    multiple=True,
    metavar="ID,...",
    help="Ids the user picked (each must be among --shown); leave out when nothing was picked.",
)
@click.option("--user", "user_id", metavar="ID", help="User or session id to log the search under.")
@click.option("--event-id", metavar="ID", help="Idempotency key: a repeated event id is recorded once.")
@pass_state
def record(
    state: CliState,
    query: str,
    shown: tuple[str, ...],
    selected: tuple[str, ...],
    user_id: str | None,
    event_id: str | None,
) -> None:
    """Log one search done elsewhere: the query, what was shown, what was picked (record_feedback)."""
    result = state.loop.record_feedback(
        query, _split_ids(shown), _split_ids(selected), user_id=user_id, event_id=event_id
    )
    picked = ", ".join(f"{s['item_id']} (rank {s['rank']})" for s in result["selections"]) or "nothing"
    state.emit(result, f"Recorded search {result['search_id']}; selected: {picked}.")


@feedback.command(short_help="Counts of searches and selections.")
@pass_state
def stats(state: CliState) -> None:
    """Show counts of items, searches, impressions and selections (feedback_stats)."""
    data = state.loop.feedback_stats()
    state.emit(data, key_values(data))


@feedback.command(short_help="Export feedback as JSON lines.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@pass_state
def export(state: CliState, output: Path | None) -> None:
    """Export feedback as JSON lines, one per search with selections (export_feedback).

    Writes to stdout unless -o is given; the output is JSON lines either way.
    """
    if output is None:
        count = state.loop.export_feedback(state.stdout)
        logger.info("Exported %d searches", count)
        return
    count = state.loop.export_feedback(output)
    state.emit({"exported": count, "path": str(output)}, f"Exported {count} searches to {output}.")
