"""A learning cycle served by onnx-int8: the candidate is exported, evaluated and served like it will be (issue 15)."""

from __future__ import annotations

import pytest
from feedback_sim import CATALOG, simulate

from embedloop import EmbedLoop, Settings
from embedloop.models.onnx_backend import OnnxEncoder
from embedloop.registry.exports import _sha256

pytestmark = pytest.mark.slow


def test_int8_cycle_exports_the_candidate_and_rollback_uses_each_versions_export(loop_settings: Settings):
    with EmbedLoop(loop_settings.replace(inference_backend="onnx-int8")) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        base_encoder = loop.searcher.state.encoder
        assert isinstance(base_encoder, OnnxEncoder)
        simulate(loop)
        result = loop.fine_tune()
        assert result["status"] == "promoted", result
        version = result["version"]
        manifest = loop.registry.manifest(version)
        record = manifest["exports"]["onnx-int8"]
        assert record["sha256"] == _sha256(loop.registry.folder(version) / record["file"])
        served = loop.searcher.state.encoder
        assert isinstance(served, OnnxEncoder) and served.backend == "onnx-int8"
        assert served is not base_encoder
        assert served.texts_encoded >= len(CATALOG)  # the candidate re-embedded the catalog on int8

        # an outside model folder is evaluated through the backend it would be served with, the folder untouched
        folder = loop.registry.model_dir(version)
        before = sorted(p.name for p in folder.rglob("*"))
        simulate(loop)  # held-out feedback to score on
        evaluated = loop.evaluate(candidate=folder)
        assert evaluated["candidate_backend"] == "onnx-int8"
        assert evaluated["candidate_metrics"]["retrieval_ndcg@10"] >= 0.0
        assert sorted(p.name for p in folder.rglob("*")) == before

        loop.rollback()
        assert loop.active_version == 0 and loop.searcher.state.encoder is base_encoder
        assert loop.search("Apple stock price", k=3).hits

    # a fresh process loads the promoted version from its recorded export, without re-exporting it
    with EmbedLoop(loop_settings.replace(inference_backend="onnx-int8")) as again:
        again.rollback(version=version)
        assert isinstance(again.searcher.state.encoder, OnnxEncoder)
        assert again.registry.manifest(version)["exports"]["onnx-int8"]["created"] == record["created"]
