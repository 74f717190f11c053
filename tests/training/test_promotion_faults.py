"""A failure at any step of promotion leaves the previous version active and searchable."""

from __future__ import annotations

import pytest
from feedback_sim import CATALOG, simulate

from embedloop import EmbedLoop
from embedloop.index.faiss_index import VectorIndex
from embedloop.registry.registry import ModelRegistry
from embedloop.search.searcher import Searcher
from embedloop.training import cycle

pytestmark = pytest.mark.slow

STEPS = [
    (cycle.EmbeddingFineTuner, "train"),  # training itself
    (ModelRegistry, "write_manifest"),  # recording the candidate
    (VectorIndex, "upsert"),  # building the new index
    (Searcher, "sync"),  # catching up with catalog changes
    (VectorIndex, "save"),  # persisting the new index
    (cycle, "atomic_write_json_active"),  # the pointer switch itself (see below)
]


def _boom(*_args, **_kwargs):
    raise RuntimeError("injected failure")


def test_failure_at_each_promotion_step_keeps_previous_version(loop_settings, monkeypatch):
    with EmbedLoop(loop_settings.replace(epochs=1)) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
        before = [h.item_id for h in loop.search("apple 2x leveraged etf", k=5).hits]
        for owner, name in STEPS:
            with monkeypatch.context() as patch:
                if name == "atomic_write_json_active":
                    import embedloop.registry.registry as registry_module

                    real = registry_module.atomic_write_json

                    def failing(path, payload, _real=real):
                        if path.name == "ACTIVE":
                            raise OSError("injected failure")
                        return _real(path, payload)

                    patch.setattr(registry_module, "atomic_write_json", failing)
                else:
                    patch.setattr(owner, name, _boom)
                result = loop.fine_tune()
            assert result["status"] == "failed", (name, result)
            assert "injected failure" in result["reasons"][0]
            assert loop.active_version == 0
            assert loop.registry.active_version() == 0
            assert [h.item_id for h in loop.search("apple 2x leveraged etf", k=5).hits] == before
            assert loop.status()["last_run"]["status"] == "failed"
        # A fresh process sees version 0 too, and the next cycle succeeds.
        with EmbedLoop(loop_settings) as fresh:
            assert fresh.active_version == 0
        result = loop.fine_tune()
        assert result["status"] == "promoted", result
        assert not any(v["status"] == "active" and v["version"] != result["version"] for v in loop.versions())


def test_prune_keeps_active_and_base(loop_settings):
    # Pruning needs two promoted versions, not a better model: one short training draw per cycle is enough
    # (with the default soup of three, the second cycle's candidate can fall below the first on held-out data).
    with EmbedLoop(loop_settings.replace(epochs=1, fine_tune_threshold=5, train_draws=1)) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        promoted = []
        for seed in range(2):
            simulate(loop, rounds=1, seed=seed)
            result = loop.fine_tune(force=True)
            assert result["status"] == "promoted", result
            promoted.append(result["version"])
        loop.rollback(version=promoted[0])
        out = loop.prune(keep=1)
        assert promoted[1] in out["removed"]
        assert promoted[0] in out["kept"] and 0 in out["kept"]
        assert loop.active_version == promoted[0]
        loop.rollback()
        assert loop.active_version == 0
        with pytest.raises(Exception, match="Unknown model version"):
            loop.rollback(version=promoted[1])
