"""The whole path on the real MiniLM: fine_tune() puts a candidate on trial, the users' selections promote it."""

from __future__ import annotations

import pytest
from feedback_sim import CATALOG, HELD_OUT, rank_of, simulate

from embedloop import EmbedLoop, Settings

pytestmark = pytest.mark.slow


def test_fine_tune_starts_a_trial_that_users_decide(loop_settings: Settings):
    settings = loop_settings.replace(trials=True, trial_share=1.0, trial_min_effect=0.6, torch_threads=1)
    with EmbedLoop(settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        simulate(loop)
        result = loop.fine_tune()
        assert result["status"] == "trial", result
        version = result["version"]
        assert "pre-check passed" in result["reasons"][0]
        assert loop.status()["trial"]["candidate_version"] == version
        assert loop.registry.manifest(version)["status"] == "trial"
        assert loop.status()["last_run"]["status"] == "trial"
        assert loop.active_version == 0
        # the same users keep searching; no further call decides the trial
        for seed in range(1, 40):
            if loop.status()["trial"] is None:
                break
            simulate(loop, rounds=1, seed=seed)
        assert loop.status()["trial"] is None, loop.status()["trial"]
        assert loop.active_version == version, loop.trials()[0]
        assert loop.status()["last_run"]["status"] == "promoted"
        assert loop.trials()[0]["outcome"]["wins"] > loop.trials()[0]["outcome"]["losses"]
        # the candidate's vectors from evaluation were promoted: an unseen phrasing now ranks its target first
        assert rank_of(loop, "tim cook company shares", HELD_OUT["tim cook company shares"]) == 1
        # its feedback window is consumed now that the trial is over (only feedback after it counts)
        status = loop.status()
        window = loop.trials()[0]
        assert status["feedback_count"] < status["total_feedback"] and window["status"] == "promoted"
