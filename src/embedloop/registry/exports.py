"""Each model version's ONNX export: build, checksum, verify, record, rebuild, fall back.

Layout (next to a version's weights, so rollback and prune carry it along)::

    v0003/model/                   torch weights (training reads these)
    v0003/export/model.onnx        backend "onnx"       (fp32)
    v0003/export/model_int8.onnx   backend "onnx-int8"  (dynamic int8)
    v0003/export/tokenizer*, embedloop_onnx.json

The base model (version 0) has no weights folder of its own (it may live
read-only in site-packages); its export goes to ``v0000/export/`` on first use.

The manifest records each export under ``exports``::

    "exports": {"onnx-int8": {"file": "export/model_int8.onnx", "sha256": ..., "bytes": ...,
                              "support_sha256": ..., "agreement": 0.993, "export_seconds": 4.1, ...}}

``agreement`` is the smallest cosine between the export's and the torch
model's vectors of :data:`PROBE_TEXTS`; an export below :data:`MIN_AGREEMENT`
is refused. A missing or corrupted export is rebuilt from the torch weights;
if that fails the version is served by torch and a warning is logged —
searches never fail for an export.

Hooks: ``EmbedLoop.load_encoder`` calls :func:`load_version_encoder`; the
fine-tuning cycle calls :func:`serving_candidate` right after training (so
the gate and trials evaluate the candidate on the backend it will be served
with, and the manifest gets its ``exports``) and :func:`remove_exports` when
a candidate is rejected or fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedloop.errors import ExportError, InvalidInputError
from embedloop.models.encoder import Encoder, SentenceTransformerEncoder
from embedloop.models.onnx_backend import INT8_FILE, ONNX_FILE, OnnxEncoder, export_onnx, quantize_int8
from embedloop.settings import InferenceBackend

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embedloop.registry.registry import ModelRegistry
    from embedloop.settings import Settings

logger = logging.getLogger(__name__)

EXPORT_SUBDIR = "export"
#: The ONNX file each backend serves.
FILES = {InferenceBackend.ONNX: ONNX_FILE, InferenceBackend.ONNX_INT8: INT8_FILE}
#: Smallest cosine allowed between an export's and the torch model's vectors of the probe texts.
MIN_AGREEMENT = {InferenceBackend.ONNX: 0.999, InferenceBackend.ONNX_INT8: 0.97}
#: Short and long, catalog-like and prose-like: what the export is checked on before it is recorded.
PROBE_TEXTS = (
    "Apple stock price",
    "AAPL - Apple Inc. Common Stock",
    "APLE - Apple Hospitality REIT, Inc. Common Shares",
    "vitamin D supplementation and bone mineral density in elderly women",
    "Mutations in the BRCA1 gene increase the lifetime risk of breast and ovarian cancer; carriers are offered "
    "enhanced screening, and prophylactic surgery reduces the risk substantially in randomised cohorts.",
    "x",
)


def backend_of(value: str | InferenceBackend) -> InferenceBackend:
    """``value`` as an :class:`InferenceBackend`; a bad value names the allowed ones."""
    try:
        return InferenceBackend(value.lower() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(repr(b.value) for b in InferenceBackend)
        raise InvalidInputError(f"backend={value!r} is not valid: one of {allowed}.", field="backend") from None


def export_dir(registry: ModelRegistry, version: int) -> Path:
    """Where ``version``'s exports live."""
    return registry.folder(version) / EXPORT_SUBDIR


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _support_files(folder: Path) -> list[str]:
    """The tokenizer and metadata files every backend of ``folder`` needs (everything but ONNX files)."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".onnx")


def _support_sha256(folder: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(_sha256(folder / name).encode())
    return digest.hexdigest()


def _agreement(export: Encoder, model: SentenceTransformer) -> float:
    """Smallest cosine between the export's and the torch model's vectors of :data:`PROBE_TEXTS`."""
    texts = list(PROBE_TEXTS)
    reference = np.asarray(
        model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False), dtype=np.float32
    )
    got = export.encode(texts)
    return float(np.min(np.sum(reference * got, axis=1)))


def build_export(
    model_dir: Path,
    out_dir: Path,
    backend: str | InferenceBackend,
    *,
    torch_model: SentenceTransformer | None = None,
) -> dict[str, Any]:
    """Export ``model_dir``'s weights for ``backend`` into ``out_dir``; return the manifest record.

    The export is built in a temporary folder beside ``out_dir``, checked
    against the torch model on :data:`PROBE_TEXTS`, then moved in. An int8
    export does not keep its intermediate fp32 file.

    Args:
        model_dir: the sentence-transformers folder to export (ignored when ``torch_model`` is given).
        out_dir: the version's export folder.
        backend: ``onnx`` or ``onnx-int8``.
        torch_model: the model already in memory (a freshly trained candidate), to skip loading it again.

    Raises:
        ExportError: the model cannot be exported, or the export disagrees with the torch model.
    """
    backend = backend_of(backend)
    if backend is InferenceBackend.TORCH:
        raise InvalidInputError("backend 'torch' serves the weights themselves; there is nothing to export.")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"the {backend.value} backend needs ONNX Runtime and onnx ({exc}); "
            "install them with: pip install 'embedloop[onnx]'"
        ) from None
    tick = time.perf_counter()
    if torch_model is None:
        from sentence_transformers import SentenceTransformer

        torch_model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    try:
        onnx_path = export_onnx(torch_model, scratch)
        quantization = None
        file_name = FILES[backend]
        if backend is InferenceBackend.ONNX_INT8:
            quantization = quantize_int8(onnx_path, scratch / INT8_FILE)
            agreement = _agreement(OnnxEncoder.load(scratch, file_name, backend=backend.value), torch_model)
            if not agreement >= MIN_AGREEMENT[backend]:
                logger.info(
                    "int8 export of %s agrees with torch only to %.4f; keeping its down projections in fp32",
                    model_dir,
                    agreement,
                )
                quantization = quantize_int8(onnx_path, scratch / INT8_FILE, keep_down_projections=True)
                agreement = _agreement(OnnxEncoder.load(scratch, file_name, backend=backend.value), torch_model)
            onnx_path.unlink()
        else:
            agreement = _agreement(OnnxEncoder.load(scratch, file_name, backend=backend.value), torch_model)
        if not agreement >= MIN_AGREEMENT[backend]:
            raise ExportError(
                f"the {backend.value} export of {model_dir} disagrees with the torch model: smallest cosine "
                f"{agreement:.4f} on the probe texts (needs >= {MIN_AGREEMENT[backend]}); serve this model with torch"
            )
        support = _support_files(scratch)
        record: dict[str, Any] = {
            "backend": backend.value,
            "file": f"{EXPORT_SUBDIR}/{file_name}",
            "sha256": _sha256(scratch / file_name),
            "bytes": (scratch / file_name).stat().st_size,
            "support_files": support,
            "support_sha256": _support_sha256(scratch, support),
            "agreement": round(agreement, 5),
            "quantization": quantization,
            "export_seconds": round(time.perf_counter() - tick, 2),
            "created": datetime.now(UTC).isoformat(),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in scratch.iterdir():
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info(
        "Exported %s for %s: %.1f MB in %.1fs (agreement %.4f)",
        model_dir,
        backend.value,
        record["bytes"] / 1e6,
        record["export_seconds"],
        agreement,
    )
    return record


def check_export(folder: Path, record: dict[str, Any] | None) -> str | None:
    """What is wrong with the export ``record`` describes in ``folder``, or ``None`` if it is intact."""
    if not isinstance(record, dict) or "sha256" not in record:
        return "no export is recorded in the manifest"
    path = folder / Path(str(record.get("file", ""))).name
    if not path.is_file():
        return f"{path} is missing"
    if _sha256(path) != record["sha256"]:
        return f"{path} does not match its recorded checksum"
    names = list(record.get("support_files") or [])
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        return f"{', '.join(missing)} missing from {folder}"
    if _support_sha256(folder, names) != record.get("support_sha256"):
        return f"the tokenizer or metadata files in {folder} do not match their recorded checksum"
    return None


def _record(registry: ModelRegistry, version: int, backend: InferenceBackend) -> dict[str, Any] | None:
    if not registry.exists(version):
        return None
    exports = registry.manifest(version).get("exports") or {}
    found = exports.get(backend.value)
    return found if isinstance(found, dict) else None


def _save_record(registry: ModelRegistry, version: int, record: dict[str, Any]) -> None:
    if registry.exists(version):
        exports = dict(registry.manifest(version).get("exports") or {})
        exports[record["backend"]] = record
        registry.update(version, exports=exports)


def ensure_export(
    registry: ModelRegistry,
    version: int,
    model_dir: Path,
    backend: str | InferenceBackend,
    *,
    force: bool = False,
) -> Path | None:
    """The verified export folder of ``version`` for ``backend``, built or rebuilt when needed.

    Returns ``None`` for ``torch``, and when the export cannot be built (the
    reason is logged as a warning; the caller serves torch).
    """
    backend = backend_of(backend)
    if backend is InferenceBackend.TORCH:
        return None
    folder = export_dir(registry, version)
    recorded = _record(registry, version, backend)
    problem = None if force else check_export(folder, recorded)
    if problem is None and not force:
        return folder
    if force:
        logger.info("Rebuilding the %s export of model version %d.", backend, version)
    elif recorded is not None:
        logger.warning("The %s export of model version %d is unusable (%s); rebuilding it.", backend, version, problem)
    else:
        logger.info("Exporting model version %d for the %s backend (first use).", version, backend)
    try:
        record = build_export(model_dir, folder, backend)
    except Exception as exc:  # noqa: BLE001 - an export must never break searches
        logger.warning(
            "Could not export model version %d for %s (%s: %s); serving it with torch.",
            version,
            backend,
            type(exc).__name__,
            exc,
        )
        return None
    _save_record(registry, version, record)
    return folder


def _onnx_encoder(folder: Path, backend: InferenceBackend, settings: Settings) -> OnnxEncoder:
    return OnnxEncoder.load(
        folder,
        FILES[backend],
        threads=settings.torch_threads,
        max_seq_length=settings.max_seq_length,
        backend=backend.value,
    )


def _torch_encoder(model_dir: Path, settings: Settings) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder.load(model_dir, device=settings.device, max_seq_length=settings.max_seq_length)


def load_version_encoder(registry: ModelRegistry, version: int, model_dir: Path, settings: Settings) -> Encoder:
    """``version``'s encoder on ``settings.inference_backend``: its export, else (with a warning) torch.

    Called by ``EmbedLoop.load_encoder`` for versions with weights of their
    own (full mode, the base model, query encoders); the torch weights were
    verified against the manifest before.
    """
    backend = settings.inference_backend
    if backend is not InferenceBackend.TORCH:
        folder = ensure_export(registry, version, model_dir, backend)
        if folder is not None:
            try:
                return _onnx_encoder(folder, backend, settings)
            except ExportError as exc:
                logger.warning("%s; serving model version %d with torch.", exc, version)
    return _torch_encoder(model_dir, settings)


def serving_candidate(
    registry: ModelRegistry, version: int, settings: Settings, trained: SentenceTransformerEncoder
) -> tuple[Encoder, dict[str, Any]]:
    """The encoder a freshly trained candidate will be served with, and its manifest ``exports``.

    Call right after training, before the candidate is evaluated, with the
    torch encoder of the weights saved in ``registry.model_dir(version)``.
    With the torch backend this returns ``trained`` and ``{}``; otherwise the
    candidate is exported into its folder and evaluated through the export,
    like with like. An export that fails leaves the candidate on torch (a
    warning is logged): then the gate compares what will actually be served.
    """
    backend = settings.inference_backend
    if backend is InferenceBackend.TORCH:
        return trained, {}
    tick = time.perf_counter()
    try:
        record = build_export(
            registry.model_dir(version), export_dir(registry, version), backend, torch_model=trained.model
        )
        encoder = _onnx_encoder(export_dir(registry, version), backend, settings)
    except Exception as exc:  # noqa: BLE001 - a failed export leaves the candidate on torch
        logger.warning(
            "Could not export candidate version %d for %s (%s: %s); it is evaluated and served with torch.",
            version,
            backend,
            type(exc).__name__,
            exc,
        )
        return trained, {}
    logger.info("Candidate version %d exported for %s in %.1fs", version, backend, time.perf_counter() - tick)
    return encoder, {backend.value: record}


@contextmanager
def served_like(folder: Path, settings: Settings, trained: SentenceTransformerEncoder) -> Iterator[Encoder]:
    """The encoder an outside model ``folder`` would be served with under ``settings.inference_backend``.

    For ``evaluate(candidate=...)``: like with like, as for a cycle's own candidate. The export goes
    to a temporary folder (the caller's model folder is left as it is) and is deleted afterwards; an
    export that fails leaves the evaluation on torch, with a warning.
    """
    backend = settings.inference_backend
    if backend is InferenceBackend.TORCH:
        yield trained
        return
    with tempfile.TemporaryDirectory(prefix="embedloop-evaluate-export-") as tmp:
        encoder: Encoder = trained
        try:
            build_export(folder, Path(tmp), backend, torch_model=trained.model)
            encoder = _onnx_encoder(Path(tmp), backend, settings)
        except Exception as exc:  # noqa: BLE001 - evaluated with torch instead
            logger.warning(
                "Could not export %s for %s (%s: %s); evaluating it with torch.",
                folder,
                backend,
                type(exc).__name__,
                exc,
            )
        yield encoder


def remove_exports(registry: ModelRegistry, version: int) -> None:
    """Delete ``version``'s exports (a rejected or failed candidate's)."""
    shutil.rmtree(export_dir(registry, version), ignore_errors=True)


def export_versions(
    registry: ModelRegistry,
    versions: list[tuple[int, Path]],
    backend: str | InferenceBackend,
    *,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Export each ``(version, weights folder)`` for ``backend``; an intact export is kept unless ``force``.

    Returns one dict per version: ``version``, ``backend``, ``status``
    ("ok": the recorded export is intact | "built") and the manifest record.

    Raises:
        InvalidInputError: ``backend`` is not an ONNX backend.
        ExportError: a version cannot be exported; the message says why.
    """
    chosen = backend_of(backend)
    if chosen is InferenceBackend.TORCH:
        raise InvalidInputError(
            "backend 'torch' serves the weights themselves; choose 'onnx' or 'onnx-int8' to export.", field="backend"
        )
    out = []
    for version, model_dir in versions:
        folder = export_dir(registry, version)
        if not force and check_export(folder, _record(registry, version, chosen)) is None:
            out.append(
                {
                    "version": version,
                    "backend": chosen.value,
                    "status": "ok",
                    "export": _record(registry, version, chosen),
                }
            )
            continue
        try:
            record = build_export(model_dir, folder, chosen)
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the version and the cause at the boundary
            raise ExportError(
                f"cannot export model version {version} for {chosen.value}: {type(exc).__name__}: {exc}"
            ) from exc
        _save_record(registry, version, record)
        out.append({"version": version, "backend": chosen.value, "status": "built", "export": record})
    return out
