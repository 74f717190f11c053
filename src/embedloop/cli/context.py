"""What every command shares: the settings overrides, the lazily built loop, the output mode."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from embedloop.cli.output import emit
from embedloop.loop import EmbedLoop
from embedloop.settings import Settings, with_stored_model

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """Global options of one invocation; the loop is only built when a command asks for it."""

    storage: Path | None = None
    model: str | None = None
    db: str | None = None
    as_json: bool = False
    #: Where results go; captured before a command runs, when stray prints are sent to stderr.
    stdout: TextIO = field(default_factory=lambda: sys.stdout, repr=False)
    _loop: EmbedLoop | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """``Settings.from_env`` with the global options as overrides."""
        overrides: dict[str, Any] = {}
        if self.storage is not None:
            overrides["storage_path"] = self.storage
        if self.model is not None:
            overrides["embedding_model"] = self.model
        if self.db is not None:
            overrides["database_url"] = self.db
        return with_stored_model(Settings.from_env(**overrides), explicit=self.model is not None)

    @property
    def loop(self) -> EmbedLoop:
        """The :class:`EmbedLoop`, opened on first use and closed when the command ends."""
        if self._loop is None:
            settings = self.settings()
            logger.info("Opening storage %s with model %s", settings.storage_path, settings.embedding_model)
            self._loop = EmbedLoop(settings)
        return self._loop

    def close(self) -> None:
        """Close the loop if one was opened."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def emit(self, data: Any, text: str) -> None:
        """Write a result to stdout: ``data`` as JSON under ``--json``, else ``text``."""
        emit(data, text, as_json=self.as_json, file=self.stdout)


class LoopCommand(click.Command):
    """A command whose stdout carries only its result.

    While the callback runs, anything the libraries underneath print (the
    transformers trainer prints its loss logs) goes to stderr, so ``--json``
    output stays parseable; results are written to :attr:`CliState.stdout`.
    Help and usage errors happen before, and still reach stdout / stderr as usual.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the callback with ``sys.stdout`` pointing at stderr."""
        with contextlib.redirect_stdout(sys.stderr):
            return super().invoke(ctx)


class LoopGroup(click.Group):
    """A command group whose commands are :class:`LoopCommand` s."""

    command_class = LoopCommand


pass_state = click.make_pass_decorator(CliState)
