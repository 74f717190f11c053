"""What a cycle and a trial work with: the store, the registry and the search state.

``EmbedLoop`` builds one :class:`Services` and hands it to the stages in
``training/cycle.py`` and ``training/trial.py``; nothing below the facade
imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedloop.models.encoder import Encoder
from embedloop.registry import ModelRegistry
from embedloop.search.searcher import Searcher, ServingState
from embedloop.settings import Settings
from embedloop.store import FeedbackStore


@dataclass(frozen=True)
class Services:
    """The parts a cycle needs, and the few actions only the facade can take."""

    settings: Settings
    store: FeedbackStore
    registry: ModelRegistry
    searcher: Searcher
    #: The local folder of a version's weights (version 0: the base model).
    model_path: Callable[[int], Path]
    #: Load a version's encoder (checked against its manifest).
    load_encoder: Callable[[int], Encoder]
    #: Make a fully built serving state active (registry pointer, then this process's searches).
    activate_state: Callable[[ServingState], None]
    #: Keep a freshly trained encoder in this process.
    remember_encoder: Callable[[int, Encoder], None]
    #: Serve a candidate state next to the active one (a trial has started in this process).
    serve_candidate: Callable[[ServingState | None], None]
    #: Whether this loop can fine-tune (not with a fixed encoder).
    trainable: bool

    @property
    def state(self) -> ServingState:
        """The active serving state."""
        state = self.searcher.state
        if state is None:  # EmbedLoop publishes a state before anything can run a cycle
            raise RuntimeError("no model version is loaded")
        return state
