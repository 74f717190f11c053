"""Domain errors. Interfaces translate these at the boundary.

Every message names the parameter, the value seen and what to do instead.
CLI: exit code 2 and the message; HTTP: 4xx with a JSON body; MCP: a tool error.
"""

from __future__ import annotations


class EmbedLoopError(Exception):
    """Base class of every error embedloop raises on purpose."""

    #: HTTP status an interface should answer with.
    http_status: int = 400


class ConfigError(EmbedLoopError):
    """A setting or environment variable has a value that is not allowed."""


class InvalidInputError(EmbedLoopError, ValueError):
    """An argument to a public call is malformed (empty query, bad k, ...)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CatalogError(InvalidInputError):
    """A catalog row or file cannot be loaded; nothing was stored."""


class NotFoundError(EmbedLoopError, LookupError):
    """An id (search, item, model version) is unknown."""

    http_status = 404


class NotShownError(InvalidInputError):
    """A selection names an item that was not shown for that search."""

    http_status = 409


class ModelNotFoundError(EmbedLoopError):
    """A model name cannot be resolved to a loadable local model."""


class ModelIntegrityError(EmbedLoopError):
    """Model or index files on disk do not match their recorded checksums."""

    http_status = 500


class StorageError(EmbedLoopError):
    """The storage path or the database cannot be used."""

    http_status = 500


class TrainingInProgressError(EmbedLoopError):
    """Another process holds the training lock."""

    http_status = 409


class TrainingError(EmbedLoopError):
    """A fine-tuning cycle cannot go on with the data it was given."""

    http_status = 422


class TrialError(EmbedLoopError):
    """A trial action is not possible now (e.g. no trial is running)."""

    http_status = 409


class NoHeldOutDataError(InvalidInputError):
    """There is not enough held-out feedback to compute a metric."""

    http_status = 409


class TrainingDataError(EmbedLoopError):
    """The feedback cannot be turned into training rows (e.g. every example lacks a negative)."""

    http_status = 409


class VersionInUseError(EmbedLoopError):
    """A model version cannot be removed or changed because searches use it."""

    http_status = 409


class ExportError(EmbedLoopError):
    """A model version cannot be exported to (or loaded from) an ONNX backend; searches fall back to torch."""

    http_status = 500
