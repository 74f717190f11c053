"""Progress bars only when stderr is a terminal (issue 12, item 9)."""

from __future__ import annotations

from embedloop.models import resolve_model
from embedloop.models.encoder import SentenceTransformerEncoder
from embedloop.progress import progress_enabled


def test_no_bars_when_stderr_is_not_a_terminal(tmp_path, capfd):
    assert progress_enabled(True) is False  # pytest captures stderr: not a terminal
    path = resolve_model("all-MiniLM-L6-v2", tmp_path / "cache")
    capfd.readouterr()
    encoder = SentenceTransformerEncoder.load(path)
    encoder.encode(["a text"] * 300, batch_size=64, show_progress=progress_enabled(True))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err, err


def test_bars_when_asked_and_stderr_is_a_terminal(monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_enabled(True) is True
    assert progress_enabled(False) is False
