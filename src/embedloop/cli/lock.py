"""``embedloop lock``: see who holds the training lock, and break it (an operator's last resort)."""

from __future__ import annotations

import click

from embedloop.cli.context import CliState, LoopGroup, pass_state
from embedloop.cli.output import key_values
from embedloop.store import FeedbackStore
from embedloop.store.locks import TRAINING_LOCK, break_lock, holder


@click.group(cls=LoopGroup, short_help="Show or break the training lock.")
def lock() -> None:
    """Show who holds the training lock, or break it.

    A trainer renews its lease every third of EMBEDLOOP_LOCK_TTL_SECONDS (30 s);
    a trainer that died on this host loses the lock at once, one on another
    host when its lease ends. Breaking the lock is for a holder that is stuck,
    not dead: the cycle it runs stops before its next irreversible step.
    """


@lock.command(short_help="Who holds the training lock, and until when.")
@pass_state
def show(state: CliState) -> None:
    """Show the training lock's holder and lease (none when free)."""
    store = FeedbackStore(state.settings().sqlalchemy_url)
    try:
        info = holder(store, TRAINING_LOCK)
    finally:
        store.close()
    state.emit({"lock": info}, key_values(info) if info else "The training lock is free.")


@lock.command(short_help="Break the training lock (asks first).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def release(state: CliState, yes: bool) -> None:
    """Remove the training lock whoever holds it; its cycle stops before changing anything."""
    store = FeedbackStore(state.settings().sqlalchemy_url)
    try:
        info = holder(store, TRAINING_LOCK)
        if info is None:
            state.emit({"released": None}, "The training lock is free; nothing to release.")
            return
        if not yes:
            click.confirm(f"Break the training lock held by {info['owner']}?", abort=True)
        broken = break_lock(store, TRAINING_LOCK)
    finally:
        store.close()
    state.emit({"released": broken}, f"Released the training lock held by {info['owner']}.")
