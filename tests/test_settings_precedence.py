"""Settings: explicit values first, then the environment, then defaults (issue 12, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedloop import ConfigError, Settings, TrainingMode


def test_environment_fills_the_fields_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMBEDLOOP_TORCH_THREADS", "1")
    monkeypatch.setenv("EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    monkeypatch.setenv("EMBEDLOOP_TRAINING_MODE", "ADAPTER")
    s = Settings(storage_path=tmp_path)  # the README's quickstart form
    assert s.torch_threads == 1  # ignored before: search was 46x slower in one run
    assert s.embedding_model == "all-MiniLM-L6-v2"
    assert s.training_mode is TrainingMode.ADAPTER
    assert s.storage_path == tmp_path


def test_explicit_values_win_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMBEDLOOP_TORCH_THREADS", "1")
    monkeypatch.setenv("LEARNING_STORAGE_PATH", str(tmp_path / "from-env"))
    s = Settings(storage_path=tmp_path, torch_threads=4)
    assert s.torch_threads == 4 and s.storage_path == tmp_path
    assert Settings.from_env(torch_threads=3).torch_threads == 3
    assert Settings().storage_path == tmp_path / "from-env"


def test_defaults_when_neither_is_set(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMBEDLOOP_FINE_TUNE_THRESHOLD", "7")
    assert Settings.from_env({}).fine_tune_threshold == 100  # another mapping replaces os.environ
    assert Settings.from_env({"EMBEDLOOP_FINE_TUNE_THRESHOLD": "9"}).fine_tune_threshold == 9
    assert Settings().fine_tune_threshold == 7


def test_replace_keeps_values_and_does_not_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    s = Settings(storage_path=tmp_path)
    monkeypatch.setenv("EMBEDLOOP_EPOCHS", "not-a-number")  # would be refused if re-read
    t = s.replace(seed=7)
    assert t.seed == 7 and t.epochs == s.epochs
    with pytest.raises(ConfigError, match="EMBEDLOOP_EPOCHS='not-a-number' is not valid: expected an integer"):
        Settings(storage_path=tmp_path)


def test_settings_stay_frozen(tmp_path: Path):
    s = Settings(storage_path=tmp_path)
    with pytest.raises(AttributeError):
        s.epochs = 3  # type: ignore[misc]
