"""embedloop: semantic search that improves itself from its users' feedback.

>>> from embedloop import EmbedLoop, Settings
>>> loop = EmbedLoop(Settings(storage_path="./data", embedding_model="all-MiniLM-L6-v2"))
"""

from __future__ import annotations

from embedloop.errors import (
    CatalogError,
    ConfigError,
    EmbedLoopError,
    InvalidInputError,
    ModelIntegrityError,
    ModelNotFoundError,
    NoHeldOutDataError,
    NotFoundError,
    NotShownError,
    StorageError,
    TrainingInProgressError,
)
from embedloop.loop import EmbedLoop
from embedloop.settings import InferenceBackend, LossName, Settings, TrainingMode
from embedloop.types import FeedbackEvent, Hit, Item, SearchResponse, Selection

__version__ = "0.1.0"

__all__ = [
    "CatalogError",
    "ConfigError",
    "EmbedLoop",
    "EmbedLoopError",
    "FeedbackEvent",
    "Hit",
    "InferenceBackend",
    "InvalidInputError",
    "Item",
    "LossName",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "NoHeldOutDataError",
    "NotFoundError",
    "NotShownError",
    "SearchResponse",
    "Selection",
    "Settings",
    "StorageError",
    "TrainingInProgressError",
    "TrainingMode",
    "__version__",
]
