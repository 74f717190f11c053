"""Crash consistency and the training lock: recovery on open, dead holders, fencing, the switch lock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from embedloop import EmbedLoop
from embedloop.cli import cli
from embedloop.errors import TrainingInProgressError
from embedloop.models.encoder import HashingEncoder
from embedloop.store.locks import (
    SWITCH_LOCK,
    TRAINING_LOCK,
    Lease,
    LockLostError,
    acquire,
    fence,
    holder,
    holder_is_dead,
    switch_lock,
)
from embedloop.store.runs import start_run
from embedloop.store.schema import training_runs


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_local_holder_loses_the_lock_at_once(fake_loop: EmbedLoop):
    dead = f"trainer@{socket.gethostname()}:{dead_pid()}:abcd1234"
    assert acquire(fake_loop.store, TRAINING_LOCK, dead, ttl_seconds=300)
    assert holder_is_dead(dead)
    assert not holder_is_dead(f"trainer@{socket.gethostname()}:{os.getpid()}:x")
    assert not holder_is_dead(f"trainer@another-host:{dead_pid()}:x")  # cannot be checked from here
    assert acquire(fake_loop.store, TRAINING_LOCK, "me@here:1:x", ttl_seconds=30)
    assert holder(fake_loop.store)["owner"] == "me@here:1:x"
    # a live holder on another host keeps it until its lease ends
    assert not acquire(fake_loop.store, TRAINING_LOCK, "other@there:2:y", ttl_seconds=30)


def test_fence_refuses_a_lease_that_was_taken_over(fake_loop: EmbedLoop):
    store = fake_loop.store
    assert acquire(store, TRAINING_LOCK, "a@h:1:x", ttl_seconds=30)
    lease = Lease(store, TRAINING_LOCK, "a@h:1:x", 30)
    fence(lease)  # still ours
    with store.engine.begin() as conn:  # the lease expired and someone else took it
        conn.exec_driver_sql("UPDATE locks SET owner = 'b@h:2:y' WHERE name = 'training'")
    with pytest.raises(LockLostError):
        fence(lease)
    assert lease.lost.is_set()


def test_a_second_switch_waits_for_the_first_then_gives_up(fake_loop: EmbedLoop):
    with switch_lock(fake_loop.store):
        assert holder(fake_loop.store, SWITCH_LOCK) is not None
        with pytest.raises(TrainingInProgressError, match="switch"), switch_lock(fake_loop.store, wait_seconds=0.2):
            pass
    assert holder(fake_loop.store, SWITCH_LOCK) is None


def test_open_recovers_an_interrupted_promotion(settings, finance_items):
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        loop.add_items(finance_items)
        reg = loop.registry
        # what a trainer killed right after the ACTIVE switch leaves behind:
        run_id = start_run(loop.store, parent_version=0, from_seq=0, to_seq=5)
        version = reg.next_version()
        reg.write_manifest(version, {"kind": "trained", "mode": "full", "status": "candidate", "run_id": run_id})
        (reg.root / "ACTIVE").write_text(f'{{"version": {version}}}')  # the switch happened
        stray = reg.folder(0) / f".manifest.json.{dead_pid()}.1.tmp"
        stray.write_text("{")
        orphan = start_run(loop.store, parent_version=0, from_seq=5, to_seq=9)  # another trainer that died
        assert [v["status"] for v in reg.versions()].count("active") == 1  # v0 still says active
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        statuses = {m["version"]: m["status"] for m in loop.registry.manifests()}
        assert statuses == {version: "active", 0: "retired"}
        assert not stray.exists()
        with loop.store.engine.connect() as conn:
            rows = dict(conn.execute(select(training_runs.c.id, training_runs.c.status)).all())
        assert rows == {run_id: "promoted", orphan: "failed"}  # the promoted run's window is consumed
        assert loop.status()["last_run"]["status"] == "failed"


def test_running_runs_of_a_live_trainer_are_left_alone(settings):
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        assert acquire(loop.store, TRAINING_LOCK, f"t@{socket.gethostname()}:{os.getpid()}:z", ttl_seconds=60)
        run_id = start_run(loop.store, parent_version=0, from_seq=0, to_seq=1)
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        assert loop.status()["last_run"]["status"] == "running" and loop.status()["last_run"]["id"] == run_id
        assert loop.status()["training_lock"]["owner"].startswith("t@")


def test_cli_lock_show_and_release(settings):
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        assert acquire(loop.store, TRAINING_LOCK, "stuck@elsewhere:7:q", ttl_seconds=300)
    runner = CliRunner()
    base = ["--storage", str(settings.storage_path), "--model", settings.embedding_model]
    shown = runner.invoke(cli, [*base, "lock", "show"])
    assert shown.exit_code == 0 and "stuck@elsewhere" in shown.stdout
    refused = runner.invoke(cli, [*base, "lock", "release"], input="n\n")
    assert refused.exit_code != 0
    done = runner.invoke(cli, [*base, "lock", "release", "--yes"])
    assert done.exit_code == 0 and "stuck@elsewhere" in done.stdout
    assert "free" in runner.invoke(cli, [*base, "lock", "show"]).stdout
