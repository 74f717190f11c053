"""Progress bars only where someone watches: when stderr is a terminal.

Logs, CI output and files captured from stderr stay free of carriage-return
bar redraws; ``show_progress=False`` turns the bars off everywhere.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def stderr_is_tty() -> bool:
    """Whether stderr is an interactive terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_enabled(requested: bool = True) -> bool:
    """Draw progress bars: only if asked for and stderr is a terminal."""
    return requested and stderr_is_tty()


@contextlib.contextmanager
def library_progress(requested: bool = True) -> Iterator[None]:
    """Silence transformers' and huggingface_hub's own bars (model loading) unless :func:`progress_enabled`."""
    if progress_enabled(requested):
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    hub_was_disabled = are_progress_bars_disabled()
    transformers_was_enabled = hf_logging.is_progress_bar_enabled()
    disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not hub_was_disabled:
            enable_progress_bars()
        if transformers_was_enabled:
            hf_logging.enable_progress_bar()
