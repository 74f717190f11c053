"""Opening an up-to-date store skips Alembic (a fast CLI start), and the shortcut agrees with Alembic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from embedloop.store import FeedbackStore
from embedloop.store.database import _packaged_head, head_revision

SRC = Path(__file__).resolve().parents[2] / "src"


def test_packaged_head_matches_alembic():
    assert _packaged_head() == head_revision()


def test_up_to_date_database_opens_without_importing_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    FeedbackStore(url).close()  # creates and migrates
    code = (
        "import sys; from embedloop.store import FeedbackStore\n"
        "FeedbackStore(sys.argv[1]).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
