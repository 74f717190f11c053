"""Model versions: manifests, the active pointer, promotion and rollback."""

from embedloop.registry.registry import ModelRegistry, folder_checksum

__all__ = ["ModelRegistry", "folder_checksum"]
