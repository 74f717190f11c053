"""The statuses a model version, a fine-tuning cycle and a trial go through.

They are ``StrEnum`` members: each compares equal to its string value and
serialises as it (in manifests, the database and JSON), so the wire format is
the plain word (``"active"``, ``"promoted"``, ...).
"""

from __future__ import annotations

from enum import StrEnum


class VersionStatus(StrEnum):
    """A model version's status in its manifest (``loop.versions()[i]["status"]``)."""

    ACTIVE = "active"  #: serving now (exactly one version)
    CANDIDATE = "candidate"  #: trained and scored, not decided yet
    TRIAL = "trial"  #: served to a share of searches next to the active one
    REJECTED = "rejected"  #: the pre-check, the gate or a trial said no
    RETIRED = "retired"  #: was active; kept for rollback
    FAILED = "failed"  #: training, export or an integrity check failed


class CycleStatus(StrEnum):
    """A fine-tuning cycle's outcome (``fine_tune()["status"]``) and its run row's status."""

    RUNNING = "running"  #: a run row only: the cycle has not finished
    PROMOTED = "promoted"
    TRIAL = "trial"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    FAILED = "failed"


class TrialStatus(StrEnum):
    """A trial's status in the ``trials`` table."""

    RUNNING = "running"  #: interleaved searches are collecting evidence
    PROMOTING = "promoting"  #: won, claimed by one process, switching now
    PROMOTED = "promoted"
    REJECTED = "rejected"
    STOPPED = "stopped"  #: ended by an operator (the candidate is rejected)
