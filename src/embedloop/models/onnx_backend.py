"""ONNX Runtime encoders: a model version's exported copy, fp32 or int8.

A sentence-transformers model made of a ``Transformer``, a ``Pooling`` and
optionally a ``Normalize`` module (MiniLM, mpnet and most sentence models) is
exported in three steps:

1. :func:`export_onnx` traces the transformer with ``torch.onnx.export`` into
   ``model.onnx`` (token embeddings out), next to the tokenizer files and
   ``embedloop_onnx.json`` (pooling mode, dimension, maximum length);
2. :func:`quantize_int8` quantises its weights dynamically to int8, one scale
   per output channel (ONNX Runtime's ``quantize_dynamic``), into
   ``model_int8.onnx``;
3. :class:`OnnxEncoder` tokenises, runs the graph on ONNX Runtime, pools and
   normalises: the same vectors as the torch model (fp32) or close to them (int8).

Why not ``SentenceTransformer(path, backend="onnx")``: sentence-transformers
loads ONNX models through ``optimum-onnx``, whose only release on the package
index (0.1.0) requires ``transformers<4.58`` and fails to import with the
transformers 5 this project pins (``get_parameter_dtype``,
``_CAN_RECORD_REGISTRY`` are gone). The export and the quantisation here use
the libraries those helpers wrap (``torch.onnx``, ``onnxruntime.quantization``);
switch to sentence-transformers' ``export_dynamic_quantized_onnx_model`` once an
optimum-onnx release supports transformers 5.

Example::

    from sentence_transformers import SentenceTransformer
    from embedloop.models.onnx_backend import OnnxEncoder, export_onnx, quantize_int8

    model = SentenceTransformer("path/to/all-MiniLM-L6-v2")
    fp32 = export_onnx(model, out)
    quantize_int8(fp32, out / "model_int8.onnx")
    encoder = OnnxEncoder.load(out, "model_int8.onnx")
    vectors = encoder.encode(["Apple stock price"])
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedloop.errors import ExportError
from embedloop.models.encoder import _normalise

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
META_FILE = "embedloop_onnx.json"
OPSET = 17
#: Pooling modes the ONNX encoder reproduces.
POOLING_MODES = ("mean", "cls", "max")
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


def _describe_modules(model: SentenceTransformer) -> list[str]:
    return [type(module).__name__ for module in model]


def _pooling_mode(model: SentenceTransformer) -> str:
    """The single pooling mode of ``model``; refuses module stacks the ONNX encoder cannot reproduce."""
    names = _describe_modules(model)
    if (
        len(names) < 2
        or names[0] != "Transformer"
        or names[1] != "Pooling"
        or any(n not in _SUPPORTED_MODULES for n in names)
    ):
        raise ExportError(
            f"cannot export a model made of {names} to ONNX: only Transformer, Pooling and an optional "
            "Normalize module are supported; keep EMBEDLOOP_INFERENCE_BACKEND=torch for this model"
        )
    mode = getattr(model[1], "pooling_mode", "mean")
    if not isinstance(mode, str) or mode not in POOLING_MODES:
        raise ExportError(
            f"cannot export pooling mode {mode!r} to ONNX (supported: {', '.join(POOLING_MODES)}); "
            "keep EMBEDLOOP_INFERENCE_BACKEND=torch for this model"
        )
    return mode


def export_onnx(model: SentenceTransformer, out_dir: Path) -> Path:
    """Trace ``model``'s transformer into ``out_dir/model.onnx`` with its tokenizer and pooling metadata.

    Raises:
        ExportError: the model has modules the ONNX encoder cannot reproduce.
    """
    import torch

    mode = _pooling_mode(model)
    transformer = model[0]
    hf_model: torch.nn.Module = transformer.auto_model  # type: ignore[assignment]
    tokenizer = model.tokenizer
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))

    sample = tokenizer(
        ["embedloop export", "a second, somewhat longer sentence traced for the export"],
        padding=True,
        return_tensors="pt",
    )
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    device = next(hf_model.parameters()).device

    class _TokenEmbeddings(torch.nn.Module):
        """The transformer with positional inputs and the token embeddings as its one output."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(input_names, inputs, strict=True))).last_hidden_state

    wrapper = _TokenEmbeddings(hf_model).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "token_embeddings"]}
    path = out_dir / ONNX_FILE
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing notes that shape checks become constants: safe here (no key/value cache, the attention
        # mask is always given); fp32 exports are checked against the torch vectors before use.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        torch.onnx.export(
            wrapper,
            tuple(sample[name].to(device) for name in input_names),
            str(path),
            input_names=input_names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes as named
        )
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = getter()
    if dimension is None:
        raise ExportError("cannot export a model that does not report its embedding dimension")
    meta = {
        "pooling": mode,
        "dimension": int(dimension),
        "max_seq_length": int(model.max_seq_length) if model.max_seq_length else 512,
        "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
        "inputs": input_names,
        "opset": OPSET,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


class _QuantizerChatter(logging.Filter):
    """Drops what ONNX Runtime's quantiser logs straight on the root logger (per-tensor notes, a pre-processing tip)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def down_projections(path: Path) -> list[str]:
    """Names of the MatMul nodes that project a wider input down (the feed-forward outputs, ``[4h, h]`` weights).

    Found by the shapes of their weights, not by node names. Their inputs
    carry the largest activation outliers of a transformer; int8 with one
    dynamic scale per tensor loses most there (mpnet's vectors fall to a
    cosine of ~0.85 to torch when they are quantised, ~0.99 when they stay fp32).
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2:
            continue
        dims = shapes.get(node.input[1])
        if dims is not None and len(dims) == 2 and dims[0] > dims[1]:
            out.append(node.name)
    return out


def quantize_int8(source: Path, destination: Path, *, keep_down_projections: bool = False) -> dict[str, Any]:
    """Quantise ``source``'s weights to int8 (dynamic, per channel) into ``destination``; returns the settings used.

    ``keep_down_projections`` leaves :func:`down_projections` in fp32 (a larger,
    slightly slower file for models that lose too much otherwise).
    """
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = down_projections(source) if keep_down_projections else []
    quiet = _QuantizerChatter()
    root = logging.getLogger()
    root.addFilter(quiet)  # the quantiser logs one line per tensor on the root logger
    try:
        quantize_dynamic(
            str(source), str(destination), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=excluded
        )
    finally:
        root.removeFilter(quiet)
    return {
        "method": "dynamic",
        "weight_type": "qint8",
        "per_channel": True,
        "fp32_nodes": len(excluded),
        "onnxruntime": onnxruntime.__version__,
    }


class OnnxEncoder:
    """An exported model on ONNX Runtime (CPU): tokenise, run, pool, normalise."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        meta: dict[str, Any],
        *,
        max_seq_length: int | None = None,
        backend: str = "onnx",
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.meta = meta
        self.backend = backend
        limit = int(meta["max_seq_length"])
        self.max_seq_length = min(limit, max_seq_length) if max_seq_length else limit
        #: Document-side texts embedded; queries are counted apart (as ``SentenceTransformerEncoder`` does).
        self.texts_encoded = 0
        self.queries_encoded = 0

    @classmethod
    def load(
        cls,
        folder: Path,
        file_name: str = ONNX_FILE,
        *,
        threads: int | None = None,
        max_seq_length: int | None = None,
        backend: str = "onnx",
    ) -> OnnxEncoder:
        """Open ``folder/file_name`` (written by :func:`export_onnx` / :func:`quantize_int8`).

        Args:
            folder: the export folder (ONNX file, tokenizer files, ``embedloop_onnx.json``).
            file_name: which ONNX file: ``model.onnx`` (fp32) or ``model_int8.onnx``.
            threads: ONNX Runtime's intra-op threads (``None``: one per core).
            max_seq_length: cap on tokens per text (the model's own limit applies too).
            backend: the backend name reported by :attr:`backend`.

        Raises:
            ExportError: a file is missing or unreadable; the message names it.
        """
        import onnxruntime as ort
        from transformers import AutoTokenizer

        path = folder / file_name
        try:
            meta = json.loads((folder / META_FILE).read_text())
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads is not None:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file means "this export cannot serve"
            raise ExportError(f"cannot load the ONNX export {path}: {type(exc).__name__}: {exc}") from exc
        return cls(session, tokenizer, meta, max_seq_length=max_seq_length, backend=backend)

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        return int(self.meta["dimension"])

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Embed document texts in batches."""
        self.texts_encoded += len(texts)
        return self._embed(texts, batch_size, show_progress)

    def encode_query(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed queries (the same model; counted apart from documents)."""
        self.queries_encoded += len(texts)
        return self._embed(texts, batch_size, False)

    def _embed(self, texts: Sequence[str], batch_size: int, show_progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        # Longest first, as sentence-transformers batches: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batches = range(0, len(order), max(1, batch_size))
        if show_progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Batches")  # type: ignore[assignment]
        for start in batches:
            rows = order[start : start + batch_size]
            out[rows] = self._forward([texts[i] for i in rows])
        return _normalise(out)

    def _forward(self, batch: list[str]) -> np.ndarray:
        if self.meta.get("do_lower_case"):
            batch = [t.lower() for t in batch]
        features = self.tokenizer(
            batch, padding=True, truncation="longest_first", max_length=self.max_seq_length, return_tensors="np"
        )
        feeds = {name: np.asarray(features[name], dtype=np.int64) for name in self.meta["inputs"]}
        tokens = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        mode = self.meta["pooling"]
        if mode == "cls":
            return np.asarray(tokens[:, 0], dtype=np.float32)
        if mode == "max":
            return np.asarray(np.where(mask > 0, tokens, -1e9).max(axis=1), dtype=np.float32)
        return np.asarray((tokens * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None), dtype=np.float32)
