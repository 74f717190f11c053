"""Screenshots of every dashboard page for the docs: docs/img/dashboard-<page>.png.

A temporary store with generated feedback and versions (the deterministic HashingEncoder,
no model download), the real HTTP app on a loopback port, headless Chromium from Debian's
packages (scripts/install_browser.sh).

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python scripts/dashboard_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_data import ServerThread, chromium, populate, storage, wait_rendered  # noqa: E402

from embedloop import EmbedLoop, Settings  # noqa: E402
from embedloop.models.encoder import HashingEncoder  # noqa: E402
from embedloop.serving.dashboard import PAGES  # noqa: E402
from embedloop.serving.http import create_app  # noqa: E402

logger = logging.getLogger("dashboard_screenshots")

#: A trial as ``trial_status()`` reports one, for the trial page's picture (a real trial needs trained models).
SAMPLE_TRIAL = {
    "trial_id": 4,
    "candidate_version": 13,
    "active_version": 12,
    "status": "running",
    "started_at": "2026-11-30T09:12:44+00:00",
    "share": 0.5,
    "max_searches": 5000,
    "alpha": 0.05,
    "searches": 1874,
    "wins": 412,
    "losses": 356,
    "ties": 1106,
    "statistic": 2.02,
    "decision": "continue",
}


class SampleTrialLoop(EmbedLoop):
    """The generated store, with :data:`SAMPLE_TRIAL` running."""

    def trial_status(self) -> dict | None:
        return dict(SAMPLE_TRIAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img", help="folder for dashboard-<page>.png")
    parser.add_argument("--selections", type=int, default=6_000)
    parser.add_argument("--versions", type=int, default=12)
    parser.add_argument("--width", type=int, default=1360)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = storage()
    settings = Settings(storage_path=root, embedding_model="all-MiniLM-L6-v2", show_progress=False, api_token="demo")
    with SampleTrialLoop(settings, encoder=HashingEncoder()) as loop:
        logger.info("generated %s", populate(loop, selections_wanted=args.selections, versions=args.versions))
        server = ServerThread(create_app(loop, settings))
        driver = chromium(args.width, 900)
        try:
            for page in PAGES:
                driver.get(f"{server.url}/dashboard/{page}")
                wait_rendered(driver)
                for _ in range(2):  # the window is a little taller than its viewport: fit the viewport to the page
                    missing = driver.execute_script("return document.documentElement.scrollHeight - window.innerHeight")
                    size = driver.get_window_size()
                    driver.set_window_size(args.width, max(700, min(size["height"] + int(missing), 2600)))
                driver.get(f"{server.url}/dashboard/{page}")
                wait_rendered(driver)
                path = out / f"dashboard-{page}.png"
                driver.save_screenshot(str(path))
                driver.set_window_size(args.width, 900)
                logger.info("wrote %s", path)
        finally:
            driver.quit()
            server.stop()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
