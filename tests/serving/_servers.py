"""Real-server helpers: a free loopback port, a child environment, a server child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDLOOP_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def embedloop_script() -> Path:
    """The ``embedloop`` console script installed next to this interpreter."""
    script = Path(sys.executable).with_name("embedloop")
    assert script.is_file(), f"no embedloop console script at {script}; install the package (pip install -e .)"
    return script


def default_sigint() -> None:
    """In the child before exec: SIGINT as in a terminal (a background shell may have set it to ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServerProcess:
    """A server started with ``command`` (e.g. ``python -m <module> ...``); its stderr goes to a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self._fh, preexec_fn=default_sigint
        )

    def wait_http(self, url: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited early:\n{self.log.read_text()}"
            try:
                httpx.get(url, timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"server did not answer at {url}:\n{self.log.read_text()}")

    def terminate(self, timeout: float = 60.0, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` (if still running) and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._fh.close()
