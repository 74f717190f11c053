"""ONNX / int8 inference backends (issue 15), with the real MiniLM exported once per session."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedloop import ConfigError, EmbedLoop, InferenceBackend, Settings
from embedloop.cli import cli
from embedloop.errors import ExportError
from embedloop.models import resolve_model
from embedloop.models.encoder import SentenceTransformerEncoder
from embedloop.models.onnx_backend import INT8_FILE, ONNX_FILE, OnnxEncoder, export_onnx
from embedloop.registry.exports import _sha256, build_export, export_dir, remove_exports, serving_candidate

MINILM = "all-MiniLM-L6-v2"
ITEMS = [
    {"id": "AAPL", "text": "AAPL - Apple Inc. Common Stock"},
    {"id": "APLE", "text": "APLE - Apple Hospitality REIT, Inc. Common Shares"},
    {"id": "MSFT", "text": "MSFT - Microsoft Corporation Common Stock"},
    {"id": "GOOGL", "text": "GOOGL - Alphabet Inc. Class A Common Stock"},
    {"id": "AMZN", "text": "AMZN - Amazon.com, Inc. Common Stock"},
    {"id": "TSLA", "text": "TSLA - Tesla, Inc. Common Stock"},
    {"id": "SPY", "text": "SPY - SPDR S&P 500 ETF Trust"},
    {"id": "QQQ", "text": "QQQ - Invesco QQQ Trust, Series 1"},
    {"id": "JPM", "text": "JPM - JPMorgan Chase & Co. Common Stock"},
    {"id": "XOM", "text": "XOM - Exxon Mobil Corporation Common Stock"},
]
QUERIES = [
    "Apple stock price",
    "microsoft shares",
    "electric car maker",
    "S&P 500 index fund",
    "online retailer stock",
    "oil company",
    "big bank",
    "google parent company",
]
TEXTS = [
    "Apple stock price",
    "APLE - Apple Hospitality REIT, Inc. Common Shares",
    "Vitamin D supplementation did not change bone mineral density in a two-year randomised trial of elderly women.",
    "nasdaq 100 tracker",
]


@pytest.fixture(scope="session")
def torch_minilm(tmp_path_factory: pytest.TempPathFactory):
    from sentence_transformers import SentenceTransformer

    path = resolve_model(MINILM, tmp_path_factory.mktemp("cache"))
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, torch_minilm) -> dict[str, dict]:
    """MiniLM exported once for each ONNX backend: {backend: {"dir", "record"}}."""
    out = {}
    for backend in ("onnx", "onnx-int8"):
        folder = tmp_path_factory.mktemp(backend) / "export"
        out[backend] = {
            "dir": folder,
            "record": build_export(Path("unused"), folder, backend, torch_model=torch_minilm),
        }
    return out


@pytest.fixture(scope="session")
def int8_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage folder whose base model was exported for onnx-int8 on first use, with a small catalog."""
    root = tmp_path_factory.mktemp("int8-store")
    settings = Settings(storage_path=root, embedding_model=MINILM, inference_backend="onnx-int8", show_progress=False)
    with EmbedLoop(settings) as loop:
        loop.add_items(ITEMS)
    return root


@pytest.fixture
def store(int8_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store-copy"
    shutil.copytree(int8_store, copy)
    return copy


def _settings(root: Path, backend: str) -> Settings:
    return Settings(storage_path=root, embedding_model=MINILM, inference_backend=backend, show_progress=False)


def _torch_vectors(model, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)


# ------------------------------------------------------------------ settings
def test_backend_setting_defaults_to_torch_and_reads_the_environment():
    assert Settings.from_env({}).inference_backend is InferenceBackend.TORCH
    env = Settings.from_env({"EMBEDLOOP_INFERENCE_BACKEND": "ONNX-INT8"})
    assert env.inference_backend is InferenceBackend.ONNX_INT8
    assert Settings(inference_backend="onnx").inference_backend == "onnx"
    assert Settings().public_dict()["inference_backend"] == "torch"


@pytest.mark.parametrize("bad", ["int8", "onnx_int8", "", "gpu"])
def test_bad_backend_values_are_refused_with_the_allowed_ones(bad: str):
    with pytest.raises(ConfigError, match="inference_backend=.*'torch', 'onnx', 'onnx-int8'"):
        Settings(inference_backend=bad)
    if bad:
        with pytest.raises(ConfigError, match="EMBEDLOOP_INFERENCE_BACKEND="):
            Settings.from_env({"EMBEDLOOP_INFERENCE_BACKEND": bad})


# ------------------------------------------------------------------ encoders
def test_fp32_export_gives_the_torch_vectors(exported, torch_minilm):
    encoder = OnnxEncoder.load(exported["onnx"]["dir"], ONNX_FILE)
    vectors = encoder.encode(TEXTS, batch_size=3)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, _torch_vectors(torch_minilm, TEXTS), atol=1e-4)
    np.testing.assert_allclose(encoder.encode(TEXTS[:1]), vectors[:1], atol=1e-5)  # batch composition does not matter
    assert exported["onnx"]["record"]["agreement"] > 0.999


def test_int8_embeddings_are_close_to_torch_and_rank_alike(exported, torch_minilm):
    encoder = OnnxEncoder.load(exported["onnx-int8"]["dir"], INT8_FILE, backend="onnx-int8")
    cosines = np.sum(encoder.encode(TEXTS) * _torch_vectors(torch_minilm, TEXTS), axis=1)
    assert cosines.min() > 0.98, cosines

    docs = [i["text"] for i in ITEMS]
    int8_scores = encoder.encode_query(QUERIES) @ encoder.encode(docs).T
    torch_scores = _torch_vectors(torch_minilm, QUERIES) @ _torch_vectors(torch_minilm, docs).T
    same_top1 = np.mean(int8_scores.argmax(axis=1) == torch_scores.argmax(axis=1))
    top3 = [
        len(set(np.argsort(-a)[:3]) & set(np.argsort(-b)[:3])) / 3
        for a, b in zip(int8_scores, torch_scores, strict=True)
    ]
    assert same_top1 >= 0.875 and np.mean(top3) >= 0.8, (same_top1, top3)
    assert encoder.queries_encoded == len(QUERIES) and encoder.texts_encoded == len(TEXTS) + len(docs)


def test_int8_export_is_a_quarter_of_the_size(exported):
    fp32, int8 = exported["onnx"]["record"], exported["onnx-int8"]["record"]
    assert int8["bytes"] < 0.3 * fp32["bytes"]
    assert int8["quantization"]["weight_type"] == "qint8" and int8["quantization"]["per_channel"] is True
    assert not (exported["onnx-int8"]["dir"] / ONNX_FILE).exists()  # the fp32 intermediate is not kept


def test_down_projections_are_found_by_weight_shape(exported):
    from embedloop.models.onnx_backend import down_projections

    names = down_projections(exported["onnx"]["dir"] / ONNX_FILE)
    assert len(names) == 6  # MiniLM-L6: one feed-forward output per layer
    assert exported["onnx-int8"]["record"]["quantization"]["fp32_nodes"] == 0  # MiniLM needs none kept in fp32


def test_unsupported_module_stacks_are_refused(torch_minilm, tmp_path: Path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    with_dense = SentenceTransformer(modules=[torch_minilm[0], torch_minilm[1], Dense(384, 128)], device="cpu")
    with pytest.raises(ExportError, match="only Transformer, Pooling"):
        export_onnx(with_dense, tmp_path / "x")


# ------------------------------------------------------------------ the loop
def test_loop_serves_the_chosen_backend_and_records_the_export(store: Path):
    with EmbedLoop(_settings(store, "onnx-int8")) as loop:
        encoder = loop.load_encoder(0)
        assert isinstance(encoder, OnnxEncoder) and encoder.backend == "onnx-int8"
        record = loop.registry.manifest(0)["exports"]["onnx-int8"]
        path = loop.registry.folder(0) / record["file"]
        assert record["sha256"] == _sha256(path) and record["bytes"] == path.stat().st_size
        assert record["agreement"] >= 0.97 and record["export_seconds"] > 0
        assert loop.search("Apple stock price", k=3).hits[0].item_id == "AAPL"
    with EmbedLoop(_settings(store, "torch")) as loop:
        assert isinstance(loop.load_encoder(0), SentenceTransformerEncoder)
        assert loop.search("Apple stock price", k=3).hits[0].item_id == "AAPL"


def test_corrupted_export_is_rebuilt_and_search_still_works(store: Path, caplog: pytest.LogCaptureFixture):
    folder = store / "models" / "v0000" / "export"
    with (folder / INT8_FILE).open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\x00" * 64)
    with caplog.at_level(logging.WARNING), EmbedLoop(_settings(store, "onnx-int8")) as loop:
        assert isinstance(loop.load_encoder(0), OnnxEncoder)
        assert "unusable" in caplog.text and "rebuilding" in caplog.text
        assert loop.registry.manifest(0)["exports"]["onnx-int8"]["sha256"] == _sha256(folder / INT8_FILE)
        assert loop.search("Apple stock price", k=3).hits[0].item_id == "AAPL"


def test_export_that_cannot_be_rebuilt_falls_back_to_torch(
    store: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    (store / "models" / "v0000" / "export" / INT8_FILE).unlink()

    def broken(*args, **kwargs):
        raise ExportError("simulated exporter failure")

    monkeypatch.setattr("embedloop.registry.exports.export_onnx", broken)
    with caplog.at_level(logging.WARNING), EmbedLoop(_settings(store, "onnx-int8")) as loop:
        assert isinstance(loop.load_encoder(0), SentenceTransformerEncoder)
        assert "serving it with torch" in caplog.text and "simulated exporter failure" in caplog.text
        assert loop.search("Apple stock price", k=3).hits[0].item_id == "AAPL"


def test_candidate_is_evaluated_on_its_serving_backend(store: Path, torch_minilm):
    with EmbedLoop(_settings(store, "onnx-int8")) as loop:
        version = loop.registry.next_version()
        trained = SentenceTransformerEncoder(torch_minilm)
        encoder, exports = serving_candidate(loop.registry, version, loop.settings, trained)
        assert isinstance(encoder, OnnxEncoder) and encoder.backend == "onnx-int8"
        assert exports["onnx-int8"]["sha256"] == _sha256(export_dir(loop.registry, version) / INT8_FILE)
        remove_exports(loop.registry, version)
        assert not export_dir(loop.registry, version).exists()
        same, none = serving_candidate(
            loop.registry, version, loop.settings.replace(inference_backend="torch"), trained
        )
        assert same is trained and none == {}


def test_cli_models_export(store: Path):
    runner = CliRunner()
    base = ["--model", MINILM, "--storage", str(store)]
    ok = runner.invoke(cli, [*base, "models", "export", "--backend", "onnx-int8"])
    assert ok.exit_code == 0, ok.output
    assert "v0 onnx-int8: ok" in ok.output
    refused = runner.invoke(cli, [*base, "models", "export", "--backend", "torch"])
    assert refused.exit_code == 2 and "choose 'onnx' or 'onnx-int8'" in refused.output
    unknown = runner.invoke(cli, [*base, "models", "export", "--version", "7", "--backend", "onnx"])
    assert unknown.exit_code == 2 and "Unknown model version 7" in unknown.output
