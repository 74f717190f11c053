"""Model versions on disk, with manifests and an atomically switched active pointer.

Layout under ``<storage>/models/``::

    ACTIVE                 {"version": N} — replaced atomically (rename)
    v0000/manifest.json    the base model (weights are not copied; resolved by name)
    v0001/manifest.json    a trained version: parent, base, feedback window, loss,
    v0001/model/           training arguments, metrics, checksum, status
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedloop.errors import ModelIntegrityError, NotFoundError, VersionInUseError
from embedloop.index.faiss_index import atomic_write_json, fsync_dir
from embedloop.statuses import VersionStatus

logger = logging.getLogger(__name__)

ACTIVE_FILE = "ACTIVE"
MANIFEST = "manifest.json"


def folder_checksum(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ModelRegistry:
    """Reads and writes model versions under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- reading
    def folder(self, version: int) -> Path:
        """Folder of ``version``."""
        return self.root / f"v{version:04d}"

    def model_dir(self, version: int) -> Path:
        """Where a trained version's weights live."""
        return self.folder(version) / "model"

    def exists(self, version: int) -> bool:
        """Whether ``version`` has a manifest."""
        return (self.folder(version) / MANIFEST).is_file()

    def manifest(self, version: int) -> dict[str, Any]:
        """The manifest of ``version``."""
        path = self.folder(version) / MANIFEST
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            known = [m["version"] for m in self.manifests()]
            raise NotFoundError(f"Unknown model version {version}; kept versions: {known}.") from None
        except ValueError as exc:
            raise ModelIntegrityError(f"Manifest {path} is unreadable: {exc}") from None

    def manifests(self) -> list[dict[str, Any]]:
        """Every readable manifest, newest version first."""
        out = []
        for path in sorted(self.root.glob("v*/" + MANIFEST), reverse=True):
            try:
                out.append(json.loads(path.read_text()))
            except ValueError:
                logger.warning("Skipping unreadable manifest %s", path)
        return out

    def active_version(self) -> int | None:
        """The active version, or ``None`` before the first one is registered."""
        try:
            return int(json.loads((self.root / ACTIVE_FILE).read_text())["version"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise ModelIntegrityError(f"{self.root / ACTIVE_FILE} is unreadable: {exc}") from None

    def active_stamp(self) -> int:
        """Changes whenever the active pointer is replaced (cheap to poll)."""
        try:
            return (self.root / ACTIVE_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def versions(self) -> list[dict[str, Any]]:
        """Manifests newest first, each with ``active`` true or false."""
        active = self.active_version()
        return [{**m, "active": m["version"] == active} for m in self.manifests()]

    # ----------------------------------------------------------------- writing
    def register_base(self, base_model: str) -> int:
        """Create version 0 for ``base_model`` and make it active, unless versions exist."""
        if not self.exists(0):
            self.folder(0).mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                self.folder(0) / MANIFEST,
                {
                    "version": 0,
                    "parent": None,
                    "base_model": base_model,
                    "created": _now(),
                    "status": VersionStatus.ACTIVE,
                    "kind": "base",
                },
            )
        if self.active_version() is None:
            atomic_write_json(self.root / ACTIVE_FILE, {"version": 0})
        return 0

    def next_version(self) -> int:
        """Reserve the next version number by creating its folder exclusively."""
        numbers = [int(p.name[1:]) for p in self.root.glob("v[0-9]*") if p.name[1:].isdigit()]
        version = max(numbers, default=-1) + 1
        while True:
            try:
                self.folder(version).mkdir(parents=True)
                return version
            except FileExistsError:
                version += 1

    def write_manifest(self, version: int, manifest: dict[str, Any]) -> None:
        """Write (replace) the manifest of ``version``."""
        atomic_write_json(self.folder(version) / MANIFEST, {**manifest, "version": version})

    def update(self, version: int, **fields: Any) -> dict[str, Any]:
        """Change fields of a manifest."""
        manifest = {**self.manifest(version), **fields}
        self.write_manifest(version, manifest)
        return manifest

    def activate(self, version: int) -> None:
        """Point ``ACTIVE`` at ``version`` (one rename, the commit point), then retire the previous one."""
        previous = self.active_version()
        before = self.manifest(version)
        self.update(version, status=VersionStatus.ACTIVE, activated=_now())
        try:
            atomic_write_json(self.root / ACTIVE_FILE, {"version": version})
        except BaseException:
            self.write_manifest(version, before)
            raise
        if (
            previous is not None
            and previous != version
            and self.exists(previous)
            and self.manifest(previous).get("status") == "active"
        ):
            try:
                self.update(previous, status=VersionStatus.RETIRED)
            except OSError:  # the switch is done; a stale status is only cosmetic
                logger.exception("Could not mark version %d retired", previous)
        logger.info("Active model version is now %d (was %s)", version, previous)

    def verify(self, version: int) -> None:
        """Check a trained version's weights against its recorded checksum."""
        manifest = self.manifest(version)
        if manifest.get("kind") == "base":
            return
        folder = self.model_dir(version)
        if not folder.is_dir():
            raise ModelIntegrityError(f"Model folder {folder} of version {version} is missing.")
        expected = manifest.get("checksum")
        actual = folder_checksum(folder)
        if expected != actual:
            raise ModelIntegrityError(
                f"Model version {version} in {folder} is corrupted: checksum {actual[:12]}… "
                f"does not match the manifest's {str(expected)[:12]}…."
            )

    def dependencies(self, version: int) -> set[int]:
        """Versions whose files ``version`` needs to load: its document generation and, for an adapter, its parent."""
        needed: set[int] = set()
        stack = [version]
        while stack:
            manifest = self.manifest(stack.pop())
            for key in ("doc_generation", "parent") if manifest.get("mode") == "adapter" else ("doc_generation",):
                other = manifest.get(key)
                if other is not None and other != manifest["version"] and other not in needed:
                    needed.add(int(other))
                    stack.append(int(other))
        return needed

    def remove(self, version: int) -> None:
        """Delete a version's folder (never the active one)."""
        if version == self.active_version():
            raise VersionInUseError(
                f"Version {version} is active and cannot be removed; roll back to another version first."
            )
        shutil.rmtree(self.folder(version), ignore_errors=True)

    def discard_folder(self, version: int) -> None:
        """Remove a reserved version folder that never got a manifest."""
        folder = self.folder(version)
        if folder.exists() and not (folder / MANIFEST).exists():
            shutil.rmtree(folder, ignore_errors=True)

    def discard_interrupted(self, active: int | None) -> list[int]:
        """Clean up after a trainer that died.

        Folders without a manifest are removed; candidates that never became
        active are marked failed and their weights deleted; a version marked
        active that the pointer does not name is marked retired.

        Call only while holding the training lock (no other trainer is mid-cycle).
        """
        cleaned = []
        for folder in self.root.glob("v[0-9]*"):
            if not folder.name[1:].isdigit():
                continue
            version = int(folder.name[1:])
            if not (folder / MANIFEST).exists():
                shutil.rmtree(folder, ignore_errors=True)
                cleaned.append(version)
                continue
            status = self.manifest(version).get("status")
            if status == "candidate":
                shutil.rmtree(self.model_dir(version), ignore_errors=True)
                shutil.rmtree(self.folder(version) / "export", ignore_errors=True)  # [issue 15] its ONNX export
                self.update(version, status=VersionStatus.FAILED, failure="interrupted before promotion finished")
                cleaned.append(version)
            elif status == "active" and version != active:
                # passed the gate (or was active before a switch) but is not the pointer: keep it for rollback
                self.update(version, status=VersionStatus.RETIRED)
                cleaned.append(version)
        if cleaned:
            logger.warning("Cleaned up versions %s left by an interrupted cycle", sorted(cleaned))
        return cleaned

    def recover(self) -> list[str]:
        """Repair what a process killed mid-promotion left: statuses that disagree with the pointer, temp files.

        The ``ACTIVE`` pointer is the commit point of a promotion, so it decides: the version it names is
        marked active, any other version marked active is retired. Temporary files of dead writers are
        removed. Returns what was repaired (empty when nothing was).
        """
        repaired = []
        active = self.active_version()
        for tmp in [*self.root.glob(".*.tmp"), *self.root.glob("v*/.*.tmp")]:
            pid = _pid_of_tmp(tmp.name)
            if pid is not None and pid != os.getpid() and not _pid_alive(pid):
                tmp.unlink(missing_ok=True)
                repaired.append(f"removed {tmp.relative_to(self.root)}")
        for manifest in self.manifests():
            version, status = manifest["version"], manifest.get("status")
            if version == active and status != "active":
                self.update(version, status=VersionStatus.ACTIVE, activated=manifest.get("activated") or _now())
                repaired.append(f"v{version} marked active (the pointer names it)")
            elif version != active and status == "active":
                self.update(version, status=VersionStatus.RETIRED)
                repaired.append(f"v{version} marked retired (the pointer names v{active})")
        if repaired:
            logger.warning("Recovered an interrupted promotion: %s", "; ".join(repaired))
        return repaired

    @staticmethod
    def fsync_dir(folder: Path) -> None:
        """Flush a directory entry so a rename survives a crash."""
        fsync_dir(folder)


def _pid_of_tmp(name: str) -> int | None:
    """The writer's pid in a temp file name ``.<file>.<pid>.<thread>.tmp``."""
    parts = name.split(".")
    try:
        return int(parts[-3])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
