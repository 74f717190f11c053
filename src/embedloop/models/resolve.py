"""Turn a model name into a local folder that ``SentenceTransformer(path)`` loads.

Resolution order (see DESIGN.md, "Models, offline"):

1. an existing local folder (``~`` expanded) holding ``modules.json`` or ``config.json``;
2. a packaged model (``known_models()``), matched case-insensitively with any
   leading ``sentence-transformers/`` removed; weights verified, the split
   mpnet zip assembled once into ``cache_dir`` (see ``embedloop.models.packaged``);
3. a Hugging Face hub id: downloaded unless ``HF_HUB_OFFLINE=1``, else (or on
   failure) taken from the local HF cache.

Example::

    from pathlib import Path
    from sentence_transformers import SentenceTransformer
    from embedloop.models import resolve_model

    path = resolve_model("all-MiniLM-L6-v2", Path("~/.embedloop/models").expanduser())
    model = SentenceTransformer(str(path))
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from embedloop.errors import InvalidInputError, ModelNotFoundError
from embedloop.models.packaged import (
    MINILM,
    MPNET,
    PACKAGES,
    resolve_minilm,
    resolve_mpnet,
)

logger = logging.getLogger(__name__)

__all__ = ["known_models", "resolve_model"]

ST_PREFIX = "sentence-transformers/"


def known_models() -> dict[str, str]:
    """Packaged model names mapped to the argument(s) to give ``pip install``."""
    return dict(PACKAGES)


def resolve_model(name: str, cache_dir: Path, *, offline: bool | None = None) -> Path:
    """Return a local folder loadable by ``sentence_transformers.SentenceTransformer(path)``.

    Args:
        name: a local folder, a packaged model name (``known_models()``) or a hub id.
        cache_dir: writable folder for verification results and assembled models.
        offline: skip hub downloads; default: ``HF_HUB_OFFLINE`` is set to a true value.

    Raises:
        ModelNotFoundError: nothing matches ``name``; the message says what to install or pass.
        ModelIntegrityError: packaged weights do not match the upstream checksum.
        StorageError: ``cache_dir`` cannot be created or written when it must be.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(
            f"model name must be a non-empty string, got {name!r}; give a packaged name "
            f"({', '.join(PACKAGES)}), a local folder path or a hub id",
            field="model",
        )
    name = name.strip()
    cache_dir = Path(cache_dir).expanduser()

    local = Path(name).expanduser()
    if local.exists():
        return _check_local_folder(local)

    canonical = _canonical_name(name)
    if canonical == MINILM:
        return resolve_minilm(cache_dir)
    if canonical == MPNET:
        return resolve_mpnet(cache_dir)

    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    found = _resolve_hub(name, offline=offline)
    if found is not None:
        return found
    raise ModelNotFoundError(_not_found_message(name, local, offline))


def _canonical_name(name: str) -> str | None:
    """The packaged model ``name`` refers to, or ``None``."""
    bare = name[len(ST_PREFIX) :] if name.lower().startswith(ST_PREFIX) else name
    for known in PACKAGES:
        if bare.lower() == known.lower():
            return known
    return None


def _check_local_folder(folder: Path) -> Path:
    """``folder`` if it looks like a model folder; else say what is missing."""
    if not folder.is_dir():
        raise ModelNotFoundError(f"model path {str(folder)!r} is a file, not a folder; pass the model's folder")
    if not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
        raise ModelNotFoundError(
            f"model folder {str(folder)!r} has neither modules.json (a sentence-transformers model) nor "
            "config.json (a transformers model); pass the folder that holds them"
        )
    return folder


#: Weight formats sentence-transformers never loads on torch; not worth downloading.
_HUB_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]


def _resolve_hub(name: str, *, offline: bool) -> Path | None:
    """A snapshot folder for hub id ``name`` (also tried as ``sentence-transformers/<name>``), or ``None``."""
    try:
        import huggingface_hub
    except ImportError:  # pragma: no cover - a sentence-transformers dependency
        logger.debug("huggingface_hub is not installed; hub id %r not tried", name)
        return None
    candidates = [name] if "/" in name else [name, ST_PREFIX + name]
    attempts = [True] if offline else [False, True]  # local_files_only: hub first, then the cache
    for local_only in attempts:
        for repo_id in candidates:
            try:
                folder = huggingface_hub.snapshot_download(
                    repo_id, local_files_only=local_only, ignore_patterns=_HUB_IGNORE
                )
            except Exception as exc:  # noqa: BLE001 - any hub/cache failure means "try the next source"
                logger.debug("hub id %r (local_files_only=%s) not usable: %s", repo_id, local_only, exc)
                continue
            path = Path(str(folder))
            if (path / "modules.json").is_file() or (path / "config.json").is_file():
                logger.info("resolved %r to %s (%s)", name, path, "HF cache" if local_only else "hub")
                return path
            logger.debug("snapshot %s of %r has no modules.json or config.json", path, repo_id)
    return None


def _not_found_message(name: str, local: Path, offline: bool) -> str:
    """Everything tried for ``name`` and every way to fix it."""
    packaged = "; ".join(f"{m} (pip install {pkgs})" for m, pkgs in PACKAGES.items())
    hub = (
        "the local HF cache has no such repository (the hub was not tried: HF_HUB_OFFLINE=1)"
        if offline
        else "neither the hub nor the local HF cache has such a repository"
    )
    return (
        f"model {name!r} not found: there is no folder at {str(local)!r}, it is not a packaged model, "
        f"and {hub}. Use one of the packaged models: {packaged}; "
        "or a local folder path (holding modules.json or config.json); "
        f"or a hub id {'already in the HF cache' if offline else 'that exists'}."
    )
