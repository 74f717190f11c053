"""The ``embedloop`` command: global options, logging, and errors translated to exit codes.

Every command is a thin translation to one :class:`embedloop.EmbedLoop`
method of the same name. A mistake by the user (a domain error from
:mod:`embedloop.errors`, or a bad command line) prints ``error: <message>``
on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from embedloop import __version__
from embedloop.cli import bench, catalog, core, feedback, lock, models, review, serve
from embedloop.cli.context import CliState
from embedloop.cli.output import to_json
from embedloop.errors import EmbedLoopError
from embedloop.serving.common import error_body

#: Exit status for a user mistake (bad input, bad configuration, unknown id).
EXIT_USER_ERROR = 2
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130

_LEVELS = {0: logging.WARNING, 1: logging.INFO}


def _fail(
    message: str,
    hint: str | None = None,
    code: int = EXIT_USER_ERROR,
    *,
    as_json: bool = False,
    kind: str = "UsageError",
    field: str | None = None,
) -> int:
    if as_json:  # under --json, the error is JSON too (on stderr, like the text form)
        click.echo(to_json(error_body(kind, message, field, hint=hint, exit_code=code)), err=True)
        return code
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(hint, err=True)
    return code


class EmbedLoopGroup(click.Group):
    """A click group whose errors become ``error: ...`` on stderr and exit code 2.

    Under ``--json`` an error is ``{"error": {"type", "message", "field", "hint", "exit_code"}}``
    on stderr instead (the HTTP API's error body).
    """

    json_errors: bool = False

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; in standalone mode translate errors and exit with their code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        self.json_errors = "--json" in (sys.argv[1:] if args is None else list(args))  # the callback refines it
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except EmbedLoopError as exc:
            code = _fail(str(exc), as_json=self.json_errors, kind=type(exc).__name__, field=getattr(exc, "field", None))
        except click.UsageError as exc:
            hint = f"Try '{exc.ctx.command_path} --help' for help." if exc.ctx is not None else None
            code = _fail(exc.format_message(), hint, as_json=self.json_errors)
        except click.ClickException as exc:
            code = _fail(exc.format_message(), as_json=self.json_errors, kind="ClickException")
        except click.Abort:
            code = _fail("interrupted", code=EXIT_INTERRUPTED, as_json=self.json_errors, kind="Interrupted")
        else:
            code = result if isinstance(result, int) else 0
        sys.exit(code)


def _configure_logging(ctx: click.Context, verbose: int) -> None:
    """Send embedloop's log records to stderr for this invocation; undo it when the command ends."""
    package_logger = logging.getLogger("embedloop")
    root = logging.getLogger()
    saved = (package_logger.level, root.level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    package_logger.addHandler(handler)
    package_logger.setLevel(_LEVELS.get(verbose, logging.DEBUG))
    if verbose >= 2:
        root.setLevel(logging.DEBUG)

    def restore() -> None:
        package_logger.removeHandler(handler)
        package_logger.setLevel(saved[0])
        root.setLevel(saved[1])

    ctx.call_on_close(restore)


@click.group(cls=EmbedLoopGroup, name="embedloop", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--storage",
    type=click.Path(file_okay=False, path_type=Path),
    help="Storage folder for the catalog, feedback, indexes and model versions (overrides LEARNING_STORAGE_PATH).",
)
@click.option(
    "--model", metavar="NAME", help="Base embedding model: a name, hub id or folder (overrides EMBEDDING_MODEL)."
)
@click.option(
    "--db",
    metavar="URL",
    help="Feedback database: a SQLite file path or a SQLAlchemy URL (overrides ADAPTIVE_LEARNING_DB).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout instead of text.")
@click.option("-v", "--verbose", count=True, help="Log progress to stderr: -v for info, -vv for debug.")
@click.version_option(__version__, "--version", prog_name="embedloop", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context, storage: Path | None, model: str | None, db: str | None, as_json: bool, verbose: int
) -> None:
    """Semantic search that fine-tunes itself from what its users select.

    Load a catalog, search it, record which results users pick, and run
    `finetune` once enough feedback has accumulated: the candidate model is
    promoted only if it beats the active one on held-out feedback.
    """
    _configure_logging(ctx, verbose)
    root = ctx.find_root().command
    if isinstance(root, EmbedLoopGroup):
        root.json_errors = as_json
    state = CliState(storage=storage, model=model, db=db, as_json=as_json)
    ctx.obj = state
    ctx.call_on_close(state.close)


cli.add_command(catalog.catalog)
cli.add_command(feedback.feedback)
cli.add_command(models.models)
cli.add_command(serve.serve)
cli.add_command(serve.mcp)
cli.add_command(bench.bench)
cli.add_command(review.review)
cli.add_command(lock.lock)
for command in core.COMMANDS:
    cli.add_command(command)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``embedloop`` script."""
    cli.main(args=args, prog_name="embedloop")
