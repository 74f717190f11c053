"""A running trial as the CLI, the HTTP API and the MCP tools show it, and stopping it from each."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from mcp import Client
from test_trials import ITEMS, OracleEncoder, put_on_trial, trial_settings

from embedloop import EmbedLoop
from embedloop.cli import cli
from embedloop.models.encoder import HashingEncoder
from embedloop.serving.http import create_app
from embedloop.serving.mcp_server import build_server

TOKEN = "admin-secret-0123456789"


@pytest.fixture
def trial_loop(storage):
    with EmbedLoop(trial_settings(storage), encoder=HashingEncoder()) as loop:
        loop.add_items(ITEMS)
        yield loop


def test_http_shows_and_stops_a_trial(trial_loop: EmbedLoop):
    version = put_on_trial(trial_loop, OracleEncoder())
    with TestClient(create_app(trial_loop, trial_loop.settings.replace(api_token=TOKEN))) as client:
        body = client.get("/trial").json()
        assert body["trial"]["candidate_version"] == version and body["trial"]["decision"] == "continue"
        assert client.get("/status").json()["trial"]["trial_id"] == body["trial"]["trial_id"]
        assert [v["version"] for v in client.get("/models").json()["versions"] if v["on_trial"]] == [version]
        assert client.post("/trial/stop", json={"reason": "x"}).status_code in (401, 403)
        stopped = client.post("/trial/stop", json={"reason": "bad week"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert stopped.status_code == 200 and stopped.json()["decision_reason"] == "bad week"
        again = client.post("/trial/stop", headers={"Authorization": f"Bearer {TOKEN}"})
        assert again.status_code == 409 and again.json()["error"]["type"] == "TrialError"
        after = client.get("/trial").json()
        assert after["trial"] is None and after["history"][0]["status"] == "stopped"
        # a fine-tune result with status "trial" passes through as is
        assert client.get("/status").json()["should_fine_tune"] is False


def test_mcp_tools_show_and_stop_a_trial(trial_loop: EmbedLoop):
    version = put_on_trial(trial_loop, OracleEncoder())
    server = build_server(trial_loop)

    async def go() -> tuple[dict, dict, dict, str]:
        async with Client(server) as client:
            shown = json.loads((await client.call_tool("get_trial", {})).content[0].text)
            status = json.loads((await client.call_tool("check_fine_tuning_status", {})).content[0].text)
            stopped = json.loads((await client.call_tool("stop_trial", {"reason": "agent said so"})).content[0].text)
            again = await client.call_tool("stop_trial", {})
            assert again.is_error
            return shown, status, stopped, again.content[0].text

    shown, status, stopped, error = asyncio.run(go())
    assert shown["trial"]["candidate_version"] == version
    assert status["trial"]["candidate_version"] == version
    assert stopped["status"] == "stopped" and "TrialError" in error
    assert trial_loop.status()["trial"] is None


def test_cli_models_trial_shows_and_stops(trial_loop: EmbedLoop):
    version = put_on_trial(trial_loop, OracleEncoder())
    storage = str(trial_loop.settings.storage_path)
    trial_loop.close()
    runner = CliRunner()
    base = ["--model", "all-MiniLM-L6-v2", "--storage", storage]
    shown = runner.invoke(cli, [*base, "--json", "models", "trial", "--history", "3"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["trial"]["candidate_version"] == version and data["history"][0]["status"] == "running"
    listed = runner.invoke(cli, [*base, "models", "list"])
    assert listed.exit_code == 0 and "T" in listed.stdout
    refused = runner.invoke(cli, [*base, "models", "trial", "--stop"], input="n\n")
    assert refused.exit_code != 0
    stopped = runner.invoke(cli, [*base, "models", "trial", "--stop", "--yes", "--reason", "ops"])
    assert stopped.exit_code == 0, stopped.output
    assert "rejected" in stopped.stdout
    none = runner.invoke(cli, [*base, "models", "trial", "--stop", "--yes"])
    assert none.exit_code == 2 and "No trial is running" in none.stderr
