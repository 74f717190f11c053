"""Automatic fine-tuning: check every ``check_interval_seconds``, train when enough feedback arrived.

The spec: "The agent automatically checks every hour if enough feedback has
accumulated (default: 100 events)." One :class:`FineTuneScheduler` per
process; any number of processes may share one database, because a cycle
runs only while holding the training lock in the feedback store
(:func:`embedloop.store.locks.training_lock`). A failed cycle is logged and
retried at the next check (its feedback is not marked as used).

>>> scheduler = FineTuneScheduler(loop)   # every loop.settings.check_interval_seconds
>>> scheduler.start()                     # background thread; or run_forever() in the foreground
>>> scheduler.stop()
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Protocol

from embedloop.errors import InvalidInputError, TrainingInProgressError
from embedloop.store import FeedbackStore
from embedloop.store.locks import DEFAULT_TTL_SECONDS, default_owner, training_lock

logger = logging.getLogger(__name__)


class LoopLike(Protocol):
    """What the scheduler needs of an :class:`~embedloop.EmbedLoop`."""

    store: FeedbackStore

    def status(self) -> dict[str, Any]: ...  # noqa: D102

    def fine_tune(self, force: bool = False) -> dict[str, Any]: ...  # noqa: D102


def _lock_ttl(loop: LoopLike, ttl_seconds: float | None) -> float:
    """``ttl_seconds``, else ``loop.settings.lock_ttl_seconds``, else the default lease length."""
    if ttl_seconds is not None:
        return ttl_seconds
    return float(getattr(getattr(loop, "settings", None), "lock_ttl_seconds", DEFAULT_TTL_SECONDS))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class FineTuneScheduler:
    """Checks every ``interval`` seconds whether to fine-tune, and runs at most one cycle at a time.

    ``interval`` defaults to ``loop.settings.check_interval_seconds`` (3600).
    The first check happens ``initial_delay`` seconds after start (default 0:
    feedback that accumulated while the process was down is acted on at once).
    """

    def __init__(
        self,
        loop: LoopLike,
        interval: float | None = None,
        *,
        initial_delay: float = 0.0,
        owner: str | None = None,
        lock_ttl_seconds: float | None = None,
    ) -> None:
        if interval is None:
            interval = loop.settings.check_interval_seconds  # type: ignore[attr-defined]
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise InvalidInputError(
                f"interval must be a positive number of seconds, got {interval!r}.", field="interval"
            )
        if isinstance(initial_delay, bool) or not isinstance(initial_delay, int | float) or initial_delay < 0:
            raise InvalidInputError(
                f"initial_delay must be >= 0 seconds, got {initial_delay!r}.", field="initial_delay"
            )
        self.loop = loop
        self.interval = float(interval)
        self.initial_delay = float(initial_delay)
        self.owner = owner or default_owner("scheduler")
        self.lock_ttl_seconds = _lock_ttl(loop, lock_ttl_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_check: datetime | None = None
        self.checks = 0
        self.runs = 0
        self.skipped = 0
        self.failures = 0
        self.last_check_at: str | None = None
        self.last_outcome: dict[str, Any] | None = None
        self.last_error: str | None = None
        if hasattr(loop, "scheduler"):  # the loop's status() reports the schedule
            loop.scheduler = self  # type: ignore[attr-defined]

    # ------------------------------------------------------------ status
    @property
    def next_check_at(self) -> str | None:
        """When the next check is due (ISO 8601, UTC); ``None`` when not running."""
        return _iso(self._next_check)

    @property
    def running(self) -> bool:
        """Whether the background thread (or ``run_forever``) is checking."""
        return self._next_check is not None or (self._thread is not None and self._thread.is_alive())

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary for status reports."""
        return {
            "interval_seconds": self.interval,
            "next_check_at": self.next_check_at,
            "last_check_at": self.last_check_at,
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "checks": self.checks,
            "runs": self.runs,
            "skipped": self.skipped,
            "failures": self.failures,
        }

    # ------------------------------------------------------------- checks
    def check(self) -> dict[str, Any]:
        """One check, now. Returns what happened as ``{"action": ...}``.

        ``idle`` (below the threshold), ``busy`` (another process holds the
        training lock), ``ran`` (with the cycle's ``result``) or ``error``.
        Never raises: a failure is logged and the next check tries again.
        """
        self.checks += 1
        self.last_check_at = datetime.now(UTC).isoformat()
        try:
            outcome = self._check()
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("Fine-tuning check failed; retrying at the next check in %.0f s.", self.interval)
            outcome = {"action": "error", "error": self.last_error}
        self.last_outcome = outcome
        return outcome

    def _check(self) -> dict[str, Any]:
        check_trial = getattr(self.loop, "check_trial", None)
        if check_trial is not None:
            trial = check_trial()  # a trial is decided by selections; the tick catches the search limit too
            if trial is not None:
                logger.info(
                    "Trial %s of v%s: %s after %s searches (%s wins, %s losses).",
                    trial.get("trial_id"),
                    trial.get("candidate_version"),
                    trial.get("decision"),
                    trial.get("searches"),
                    trial.get("wins"),
                    trial.get("losses"),
                )
                if trial.get("decision") == "continue":
                    return {"action": "trial", "trial": trial}
        status = self.loop.status()
        if not status.get("should_fine_tune"):
            logger.debug(
                "%s of %s feedback events; no fine-tuning yet.", status.get("feedback_count"), status.get("threshold")
            )
            return {
                "action": "idle",
                "feedback_count": status.get("feedback_count"),
                "threshold": status.get("threshold"),
            }
        try:
            with training_lock(self.loop.store, owner=self.owner, ttl_seconds=self.lock_ttl_seconds):
                # Another process may have trained between our look and the lock: look again.
                status = self.loop.status()
                if not status.get("should_fine_tune"):
                    return {
                        "action": "idle",
                        "feedback_count": status.get("feedback_count"),
                        "threshold": status.get("threshold"),
                    }
                logger.info(
                    "%s new feedback events (threshold %s): starting a fine-tuning cycle.",
                    status.get("feedback_count"),
                    status.get("threshold"),
                )
                self.runs += 1
                result = self.loop.fine_tune()
        except TrainingInProgressError as exc:
            self.skipped += 1
            logger.info("Skipping this check: %s", exc)
            return {"action": "busy", "reason": str(exc)}
        if result.get("status") == "failed":
            self.failures += 1
            self.last_error = "; ".join(str(r) for r in result.get("reasons") or []) or "the cycle failed"
            logger.warning("Fine-tuning cycle failed (%s); retrying at the next check.", self.last_error)
        else:
            self.last_error = None
            logger.info("Fine-tuning cycle finished: %s (version %s).", result.get("status"), result.get("version"))
        return {"action": "ran", "result": result}

    # ------------------------------------------------------------ running
    def _run(self) -> None:
        delay = self.initial_delay
        try:
            while True:
                self._next_check = datetime.now(UTC) + timedelta(seconds=delay)
                if self._stop.wait(delay):
                    break
                self.check()
                delay = self.interval
        finally:
            self._next_check = None
        logger.info("Fine-tuning scheduler stopped.")

    def start(self) -> FineTuneScheduler:
        """Check in a background (daemon) thread; returns ``self``."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._next_check = datetime.now(UTC) + timedelta(seconds=self.initial_delay)
        self._thread = threading.Thread(target=self._run, name="embedloop-scheduler", daemon=True)
        self._thread.start()
        logger.info("Fine-tuning scheduler started: a check every %.0f s.", self.interval)
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop checking; a cycle in progress finishes first. Returns whether the thread ended in ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def run_forever(self) -> None:
        """Check in the calling thread until SIGINT / SIGTERM or :meth:`stop`.

        The first signal stops after the running check; a second one interrupts
        it (the training lock is released on the way out).
        """
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.Signals.SIGINT, signal.Signals.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        self._stop.clear()
        logger.info("Fine-tuning scheduler running: a check every %.0f s.", self.interval)
        try:
            self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        logger.info("Received %s: stopping after the current check.", signal.Signals(signum).name)
        self._stop.set()
