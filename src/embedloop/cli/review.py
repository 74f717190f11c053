"""``embedloop review``: answer the review queue's questions; record, list and export judgments.

``embedloop review`` shows the next open question (review_queue). Answer it
with ``--select``/``--reject`` (answer_review), or ``--interactive`` to be
asked for the answer (the default when stdin is a terminal).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from embedloop.cli.context import CliState, LoopGroup, pass_state
from embedloop.cli.output import table
from embedloop.errors import InvalidInputError

logger = logging.getLogger(__name__)


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _question_text(q: dict[str, Any]) -> str:
    rows = [[n, c["item_id"], c["score"], c["text"]] for n, c in enumerate(q["candidates"], start=1)]
    listing = table(["#", "id", "score", "text"], rows, max_widths={"id": 24, "text": 80})
    return f"query: {q['query']}\nreason: {q['reason']}   review id: {q['review_id']}\n\n{listing}"


def _resolve(answer: str, candidates: list[str]) -> list[str]:
    """``"1, AAPL"`` → candidate ids (numbers are 1-based positions)."""
    out = []
    for part in (p.strip() for p in answer.split(",")):
        if not part:
            continue
        if part.isdigit() and 1 <= int(part) <= len(candidates):
            out.append(candidates[int(part) - 1])
        else:
            out.append(part)
    return out


@click.group(cls=LoopGroup, invoke_without_command=True, short_help="Answer review questions; manage judgments.")
@click.option("--id", "review_id", metavar="ID", help="Answer this question instead of the next one.")
@click.option("--select", "selected", multiple=True, metavar="ID,...", help="Candidates that ARE relevant.")
@click.option("--reject", "rejected", multiple=True, metavar="ID,...", help="Candidates that are NOT relevant.")
@click.option("--reviewer", metavar="NAME", help="Who answers (stored with the judgments).")
@click.option("-i/-I", "--interactive/--no-interactive", default=None, help="Ask for the answer (default: on a TTY).")
@click.option("--list", "list_n", type=int, metavar="N", help="Only list the N most useful open questions.")
@click.pass_context
def review(
    ctx: click.Context,
    review_id: str | None,
    selected: tuple[str, ...],
    rejected: tuple[str, ...],
    reviewer: str | None,
    interactive: bool | None,
    list_n: int | None,
) -> None:
    """Show the next review question and record the answer (review_queue, answer_review).

    A question asks which of a few candidate results are relevant to a query
    the logs are unsure about. Answer with --select/--reject (ids, or the
    candidates' numbers), or interactively.
    """
    if ctx.invoked_subcommand is not None:
        return
    state = ctx.find_object(CliState)
    assert state is not None
    with contextlib.redirect_stdout(sys.stderr):  # as LoopCommand: stray prints off stdout
        _review(state, review_id, _split(selected), _split(rejected), reviewer, interactive, list_n)


def _review(
    state: CliState,
    review_id: str | None,
    selected: list[str],
    rejected: list[str],
    reviewer: str | None,
    interactive: bool | None,
    list_n: int | None,
) -> None:
    loop = state.loop
    if list_n is not None:
        queue = loop.review_queue(limit=list_n)
        rows = [[q["review_id"], q["reason"], q["priority"], q["query"]] for q in queue]
        state.emit(queue, table(["review id", "reason", "priority", "query"], rows) if rows else "No open questions.")
        return
    question: dict[str, Any] | None
    if review_id is None:
        queue = loop.review_queue(limit=1)
        question = queue[0] if queue else None
    else:
        question = next((q for q in loop.review_queue(limit=1000) if q["review_id"] == review_id), None)
    if not selected and not rejected:
        if question is None:
            state.emit(None, "No open questions." if review_id is None else f"No open question {review_id!r}.")
            return
        if interactive is None:
            interactive = sys.stdin.isatty() and not state.as_json
        if not interactive:
            state.emit(question, _question_text(question))
            return
        click.echo(_question_text(question), file=state.stdout)
        ids = [c["item_id"] for c in question["candidates"]]
        selected = _resolve(
            click.prompt("Relevant (numbers or ids, comma-separated)", default="", show_default=False), ids
        )
        rejected = _resolve(
            click.prompt("Not relevant (numbers or ids, comma-separated)", default="", show_default=False), ids
        )
        if not selected and not rejected:
            click.echo("Skipped: nothing recorded.", file=state.stdout)
            return
    target = review_id or (question["review_id"] if question is not None else None)
    if target is None:
        raise InvalidInputError("There is no open question to answer; give --id.", field="review_id")
    if question is not None and target == question["review_id"]:
        ids = [c["item_id"] for c in question["candidates"]]
        selected, rejected = _resolve(",".join(selected), ids), _resolve(",".join(rejected), ids)
    result = loop.answer_review(target, selected=selected, rejected=rejected, reviewer=reviewer)
    labels = ", ".join(f"{j['item_id']}={'relevant' if j['relevant'] else 'not relevant'}" for j in result["judgments"])
    again = " (already recorded)" if result["duplicate"] else ""
    state.emit(result, f"Recorded review {target}{again}: {labels}.")


@review.command(short_help="Record one judgment without a question.")
@click.argument("query")
@click.argument("item_id")
@click.option("--relevant/--not-relevant", required=True, help="Whether ITEM_ID is relevant to QUERY.")
@click.option("--reviewer", metavar="NAME", help="Who judged.")
@pass_state
def judge(state: CliState, query: str, item_id: str, relevant: bool, reviewer: str | None) -> None:
    """Record that ITEM_ID is (--relevant) or is not (--not-relevant) a good result for QUERY (record_judgment)."""
    result = state.loop.record_judgment(query, item_id, relevant, reviewer=reviewer)
    state.emit(result, f"Recorded: {item_id} is {'relevant' if relevant else 'not relevant'} to {query!r}.")


@review.command(name="judgments", short_help="List judgments, newest first.")
@click.option("--query", help="Only this query's judgments.")
@click.option("--reviewer", metavar="NAME", help="Only this reviewer's judgments.")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="At most this many.")
@pass_state
def list_judgments(state: CliState, query: str | None, reviewer: str | None, limit: int) -> None:
    """List recorded judgments, newest first (judgments)."""
    rows = state.loop.judgments(query, reviewer=reviewer, limit=limit)
    text = table(
        ["id", "query", "item", "relevant", "reviewer"],
        [[j["judgment_id"], j["query"], j["item_id"], j["relevant"], j["reviewer"] or ""] for j in rows],
        max_widths={"query": 50},
    )
    state.emit(rows, text if rows else "No judgments yet.")


@review.command(short_help="Export judgments as JSON lines.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@pass_state
def export(state: CliState, output: Path | None) -> None:
    """Export every judgment as JSON lines, oldest first (export_judgments); stdout unless -o."""
    if output is None:
        state.loop.export_judgments(state.stdout)
        return
    count = state.loop.export_judgments(output)
    state.emit({"exported": count, "path": str(output)}, f"Exported {count} judgments to {output}.")
