"""Query-side training modes: documents keep their embeddings; only queries change."""

from __future__ import annotations

import pytest
from feedback_sim import CATALOG, HELD_OUT, simulate

from embedloop import EmbedLoop, TrainingMode

pytestmark = pytest.mark.slow


def _ranking(loop: EmbedLoop, query: str) -> list[str]:
    return [h.item_id for h in loop.search(query, k=len(CATALOG) + 1).hits]


@pytest.mark.parametrize("mode", [TrainingMode.ADAPTER, TrainingMode.QUERY_ENCODER])
def test_query_side_mode_learns_without_reembedding(loop_settings, mode):
    settings = loop_settings.replace(training_mode=mode)
    if mode is TrainingMode.QUERY_ENCODER:
        # Queries move against frozen documents: a gentler step, and the small tolerance the gate allows
        # for a 4-query held-out set (one query moving one rank costs ~0.02 NDCG@10).
        settings = settings.replace(learning_rate=3e-5, metric_tolerance=0.02)
    with EmbedLoop(settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        before = {q: _ranking(loop, q) for q in HELD_OUT}
        simulate(loop)
        docs = loop.load_encoder(0)
        encoded_before = docs.texts_encoded
        result = loop.fine_tune()
        assert result["status"] == "promoted", result
        # Nothing in the catalog was re-embedded: only queries went through an encoder.
        assert docs.texts_encoded == encoded_before
        manifest = loop.versions()[0]
        assert manifest["mode"] == mode.value and manifest["doc_generation"] == 0
        assert not (settings.storage_path / "indexes" / f"v{result['version']:04d}").exists()
        after = {q: _ranking(loop, q) for q in HELD_OUT}
        for query, target in HELD_OUT.items():
            assert after[query].index(target) <= before[query].index(target), (
                query,
                before[query][:3],
                after[query][:3],
            )
        assert any(after[q][0] == t and before[q][0] != t for q, t in HELD_OUT.items()), after

        # Catalog changes after promotion are embedded by the document generation's encoder, once.
        loop.add_items([{"id": "NEWCO", "text": "NEWCO - Newco Apple Orchards Inc. Common Stock"}])
        assert docs.texts_encoded == encoded_before + 1

        loop.rollback()
        assert loop.active_version == 0
        restored = {q: [i for i in _ranking(loop, q) if i != "NEWCO"] for q in HELD_OUT}
        assert restored == before
        assert docs.texts_encoded == encoded_before + 1  # rollback re-embeds nothing

    with EmbedLoop(settings) as fresh:  # a new process loads the chain from disk
        fresh.rollback(version=result["version"])
        assert _ranking(fresh, "apple 2x leveraged etf")[0] == after["apple 2x leveraged etf"][0]


def test_adapter_gate_rejects_wrong_selections(loop_settings):
    with EmbedLoop(loop_settings.replace(training_mode=TrainingMode.ADAPTER)) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, wrong=True, seed=3)
        result = loop.fine_tune()
        assert result["status"] == "rejected", result
        assert loop.active_version == 0


def test_full_then_adapter_then_prune_keeps_dependencies(loop_settings):
    with EmbedLoop(loop_settings.replace(epochs=1)) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop, rounds=1)
        full = loop.fine_tune()
        assert full["status"] == "promoted", full
    with EmbedLoop(loop_settings.replace(training_mode=TrainingMode.ADAPTER, fine_tune_threshold=5)) as loop:
        simulate(loop, rounds=1, seed=5)
        adapter = loop.fine_tune(force=True)
        assert adapter["status"] in ("promoted", "rejected"), adapter
        if adapter["status"] == "promoted":
            manifest = loop.versions()[0]
            assert manifest["doc_generation"] == full["version"]
            out = loop.prune(keep=1)
            assert full["version"] not in out["removed"]  # the adapter needs its document generation
            loop.rollback()
            assert loop.active_version == full["version"]
