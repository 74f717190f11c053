"""Commands that do not encode do not load the model; a storage remembers its base model (issue 12, item 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from embedloop import EmbedLoop, Settings
from embedloop.cli import cli
from embedloop.settings import with_stored_model

MINILM = "all-MiniLM-L6-v2"
REPO = Path(__file__).resolve().parents[2]


def _storage_with_items(path: Path) -> None:
    with EmbedLoop(Settings(storage_path=path, embedding_model=MINILM, show_progress=False)) as loop:
        loop.add_items([{"id": "AAPL", "text": "AAPL - Apple Inc."}, {"id": "MSFT", "text": "MSFT - Microsoft"}])


def test_reading_commands_do_not_load_the_model(tmp_path: Path):
    storage = tmp_path / "s"
    _storage_with_items(storage)
    with EmbedLoop(Settings(storage_path=storage, embedding_model=MINILM, show_progress=False)) as loop:
        assert loop.status()["active_version"] == 0 and loop.status()["items"] == 2
        assert loop.feedback_stats()["items"] == 2
        assert [v["version"] for v in loop.versions()] == [0]
        assert loop.active_version == 0
        assert loop.searcher.loaded_state is None and loop._encoders == {}  # nothing loaded yet
        with EmbedLoop(Settings(storage_path=storage, embedding_model=MINILM, show_progress=False)) as served:
            assert served.warm_up() == 0 and served.searcher.loaded_state is not None  # servers load up front
        resp = loop.search("Apple", k=1)  # the first search loads the model
        assert resp.hits[0].item_id == "AAPL"
        assert loop.searcher.loaded_state is not None


def test_status_in_a_fresh_process_imports_no_model_library(tmp_path: Path):
    storage = tmp_path / "s"
    _storage_with_items(storage)
    code = (
        "import sys; from embedloop.cli import main\n"
        "try:\n    main(['--storage', sys.argv[1], '--json', 'status'])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("EMBEDDING_MODEL", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(storage)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    *status_lines, loaded = out.stdout.strip().splitlines()
    assert loaded == "[]", out.stdout
    # no --model: the storage's own base model is used instead of the default mpnet
    assert json.loads("\n".join(status_lines))["base_model"] == MINILM


def test_storage_remembers_its_base_model(tmp_path: Path, monkeypatch):
    storage = tmp_path / "s"
    _storage_with_items(storage)
    result = CliRunner().invoke(cli, ["--storage", str(storage), "--json", "models", "list"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["base_model"] == MINILM
    # an explicit model or EMBEDDING_MODEL still wins (and is checked against the storage)
    assert with_stored_model(Settings(storage_path=storage), explicit=True).embedding_model != MINILM
    monkeypatch.setenv("EMBEDDING_MODEL", "all-mpnet-base-v2")
    result = CliRunner().invoke(cli, ["--storage", str(storage), "status"])
    assert result.exit_code == 2 and "was built with 'all-MiniLM-L6-v2'" in result.stderr
