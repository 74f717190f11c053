"""Model resolution: names, packaged weights and hub ids to local folders."""

from __future__ import annotations

from embedloop.models.packaged import sha256_file, verify_assembly, verify_file_sha256
from embedloop.models.resolve import known_models, resolve_model

__all__ = ["known_models", "resolve_model", "sha256_file", "verify_assembly", "verify_file_sha256"]
