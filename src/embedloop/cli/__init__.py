"""The ``embedloop`` command line: a thin translation of :class:`embedloop.EmbedLoop`, name for name."""

from __future__ import annotations

from embedloop.cli.main import cli, main

__all__ = ["cli", "main"]
