"""``embedloop bench quality``: does feedback make search better, on BEIR-format data?"""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks that ship with embedloop (the performance one is bench/performance.py)."""


@bench.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def quality(args: tuple[str, ...]) -> int:
    """Simulated users on a BEIR dataset, one fine-tuning cycle per round, dev metrics vs base and oracle.

    Every option is the benchmark's own: `embedloop bench quality --help` lists them.
    The global --storage/--model options do not apply (the benchmark uses a fresh temporary storage).
    """
    from embedloop.benchmarks.quality import main

    return main(list(args), prog="embedloop bench quality")
