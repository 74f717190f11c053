"""``embedloop models``: list, roll back, prune and export model versions, show or stop a trial."""

from __future__ import annotations

from typing import Any

import click

from embedloop.cli.context import CliState, LoopGroup, pass_state
from embedloop.cli.output import table
from embedloop.settings import InferenceBackend


def _primary_metric(manifest: dict[str, Any]) -> Any:
    """The version's own value of its primary metric, if its manifest records one."""
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        return None
    name = manifest.get("primary_metric") or metrics.get("primary_metric")
    if not isinstance(name, str):
        return None
    own = metrics.get("candidate")
    return own.get(name) if isinstance(own, dict) else metrics.get(name)


@click.group(cls=LoopGroup, short_help="List, roll back and prune model versions.")
def models() -> None:
    """List model versions, roll back to an earlier one, prune old ones."""


@models.command(name="list", short_help="List model versions; * marks the active one, T a candidate on trial.")
@pass_state
def list_(state: CliState) -> None:
    """List kept model versions, newest first; * marks the active one, T a candidate on trial (versions)."""
    versions = state.loop.versions()
    rows = [
        [
            "*" if m.get("active") else ("T" if m.get("on_trial") else ""),
            m.get("version"),
            m.get("status"),
            m.get("parent"),
            m.get("base_model"),
            _primary_metric(m),
            m.get("created"),
        ]
        for m in versions
    ]
    state.emit(versions, table(["", "version", "status", "parent", "base model", "metric", "created"], rows))


@models.command(short_help="Switch back to an earlier model version.")
@click.option(
    "--version",
    type=click.IntRange(min=0),
    metavar="N",
    help="Version to activate; default: the newest promoted version older than the active one.",
)
@pass_state
def rollback(state: CliState, version: int | None) -> None:
    """Switch searches back to an earlier model version (rollback)."""
    previous = state.loop.active_version
    manifest = state.loop.rollback(version=version)
    state.emit(manifest, f"Active model version is now {manifest['version']} (was {previous}).")


@models.command(short_help="Delete old trained model versions.")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    metavar="N",
    help="How many of the newest trained versions to keep (the active one and the base are always kept).",
)
@pass_state
def prune(state: CliState, keep: int) -> None:
    """Delete old trained model versions and their indexes (prune)."""
    result = state.loop.prune(keep=keep)
    removed = ", ".join(str(v) for v in result["removed"]) or "none"
    kept = ", ".join(str(v) for v in result["kept"])
    state.emit(result, f"Removed versions: {removed}. Kept: {kept}.")


@models.command(short_help="Show the running trial (or the last ones); --stop ends it.")
@click.option(
    "--stop", is_flag=True, help="End the running trial now: the candidate is rejected, the active model stays."
)
@click.option("--reason", default="stopped by an operator", show_default=True, help="Why the trial is stopped.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation with --stop.")
@click.option("--history", type=click.IntRange(min=1), metavar="N", help="Also list the last N trials.")
@pass_state
def trial(state: CliState, stop: bool, reason: str, yes: bool, history: int | None) -> None:
    """Show the trial of a candidate against the active model: searches, wins, losses, ties, the test.

    A candidate that passes the pre-check is served to a share of searches,
    interleaved with the active model's results; the users' selections
    decide it without another command. With --stop an admin ends it (the
    candidate is rejected).
    """
    loop = state.loop
    if stop:
        running = loop.trial_status()
        if running is not None and not yes:
            click.confirm(
                f"Stop trial {running['trial_id']} and reject candidate v{running['candidate_version']}?", abort=True
            )
        result = loop.stop_trial(reason)
        state.emit(result, f"Trial {result['trial_id']} stopped; candidate v{result['candidate_version']} rejected.")
        return
    current = loop.trial_status()
    if current is None:
        text = "No trial is running."
    else:
        text = (
            f"Trial {current['trial_id']}: candidate v{current['candidate_version']} vs active v{current['active_version']}\n"
            f"  searches {current['searches']} (share {current['share']:.0%}, limit {current['max_searches']})\n"
            f"  wins {current['wins']}  losses {current['losses']}  ties {current['ties']}  "
            f"win rate {current['win_rate']}  z {current['z']}\n"
            f"  log likelihood ratio {current['statistic']} (promote at {current['promote_at']}, "
            f"reject at {current['reject_at']}): {current['decision']}"
        )
    payload: dict[str, Any] = {"trial": current}
    if history:
        past = loop.trials(limit=history)
        payload["history"] = past
        rows = [
            [
                t["id"],
                t["candidate_version"],
                t["active_version"],
                t["status"],
                (t.get("outcome") or {}).get("searches"),
                t.get("reason"),
            ]
            for t in past
        ]
        text += "\n" + table(["trial", "candidate", "active", "status", "searches", "reason"], rows)
    state.emit(payload, text)


@models.command(short_help="Export a model version for the ONNX inference backends.")
@click.option(
    "--version",
    type=click.IntRange(min=0),
    metavar="N",
    help="Version to export (and the versions it loads from); default: the active one.",
)
@click.option(
    "--backend",
    type=click.Choice([b.value for b in InferenceBackend], case_sensitive=False),
    help="onnx (fp32) or onnx-int8; default: EMBEDLOOP_INFERENCE_BACKEND.",
)
@click.option("--force", is_flag=True, help="Rebuild the export even when the recorded one is intact.")
@pass_state
def export(state: CliState, version: int | None, backend: str | None, force: bool) -> None:
    """Export a version for ONNX Runtime and record it in its manifest (export_model)."""
    results = state.loop.export_model(version=version, backend=backend, force=force)
    lines = []
    for r in results:
        record = r.get("export") or {}
        size = f", {record['bytes'] / 1e6:.1f} MB" if record.get("bytes") else ""
        agreement = f", agreement {record['agreement']:.4f}" if record.get("agreement") is not None else ""
        lines.append(f"v{r['version']} {r['backend']}: {r['status']}{size}{agreement}")
    state.emit(results, "\n".join(lines))
