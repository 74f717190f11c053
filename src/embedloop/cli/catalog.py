"""``embedloop catalog``: load, list and delete catalog items (load_catalog, load_demo_catalog, list_items, delete_items)."""

from __future__ import annotations

from pathlib import Path

import click

from embedloop.cli.context import CliState, LoopGroup, pass_state
from embedloop.cli.output import table


@click.group(cls=LoopGroup, short_help="Load, list or delete catalog items.")
def catalog() -> None:
    """Load items into the catalog, list them, or delete them; the index follows."""


@catalog.command(short_help="Load items from a file or the demo catalog.")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id-field", default="id", show_default=True, help="Column or JSON key holding each item's id.")
@click.option("--text-field", default="text", show_default=True, help="Column or JSON key holding the text to embed.")
@click.option("--demo", is_flag=True, help="Load the packaged demo catalog of US-listed securities instead of FILE.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --demo: load only the first N securities (by ticker).",
)
@pass_state
def load(state: CliState, file: Path | None, id_field: str, text_field: str, demo: bool, limit: int | None) -> None:
    """Upsert the items of FILE (CSV, TSV or JSON lines, optionally .gz) and index them.

    Every row needs an id and a text; other columns become metadata. The
    whole file is checked first: one bad row loads nothing. With --demo,
    load the packaged demo catalog instead (load_demo_catalog).
    """
    if demo == (file is not None):
        raise click.UsageError("give either FILE or --demo (exactly one).")
    if limit is not None and not demo:
        raise click.UsageError("--limit only applies to --demo.")
    if demo:
        result = state.loop.load_demo_catalog(limit)
        source = "the demo catalog"
    else:
        assert file is not None
        result = state.loop.load_catalog(file, id_field=id_field, text_field=text_field)
        source = str(file)
    state.emit(
        result,
        f"Loaded {result['received']} items from {source} ({result['changed']} new or changed); "
        f"the catalog now holds {result['total']} items.",
    )


@catalog.command(short_help="Remove items from the catalog and index.")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@pass_state
def delete(state: CliState, ids: tuple[str, ...]) -> None:
    """Remove the items ID... from the catalog and the index (delete_items).

    Feedback that names them is kept.
    """
    result = state.loop.delete_items(list(ids))
    state.emit(result, f"Deleted {result['deleted']} items; the catalog now holds {result['total']} items.")


@catalog.command(name="list", short_help="List catalog items, a page at a time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Items per page.")
@click.option("--after", metavar="ID", help="Start after this item id (the 'next page' id the previous page printed).")
@pass_state
def list_(state: CliState, limit: int, after: str | None) -> None:
    """List catalog items ordered by id, LIMIT at a time (list_items).

    Each page ends with the command for the next page. Loads no model.
    """
    page = state.loop.list_items(limit=limit, after=after)
    rows = [[item["id"], item["text"]] for item in page["items"]]
    lines = [table(["id", "text"], rows, max_widths={"id": 24, "text": 80}), ""]
    lines.append(f"{len(rows)} of {page['total']} items.")
    if page["next_after"] is not None:
        lines.append(f"Next page: embedloop catalog list --limit {limit} --after {page['next_after']!r}")
    state.emit(page, "\n".join(lines))
