"""What an existing storage folder remembers, read without opening it (no model, no database)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def stored_base_model(storage_path: Path) -> str | None:
    """The base model a storage was built with (its version-0 manifest), or ``None`` for a new storage."""
    manifest = Path(storage_path).expanduser() / "models" / "v0000" / "manifest.json"
    try:
        value = json.loads(manifest.read_text(encoding="utf-8")).get("base_model")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        logger.warning("Cannot read the base model from %s: %s", manifest, exc)
        return None
    return value if isinstance(value, str) and value.strip() else None
