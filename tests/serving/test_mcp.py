"""The MCP server: in process through the SDK client, and end to end over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from _servers import child_env, default_sigint, embedloop_script, free_port
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from embedloop import ConfigError
from embedloop.serving.mcp_server import build_server, http_app
from embedloop.skills import TOOL_DEFINITIONS
from embedloop.store.locks import acquire

TOOLS = {
    "search",
    "record_selection",
    "record_feedback",
    "check_fine_tuning_status",
    "fine_tune_embeddings",
    "list_model_versions",
    "rollback_model",
    "get_trial",
    "stop_trial",
    "get_review_queue",
    "answer_review",
    "record_judgment",
    "evaluate_model",
    "prune_models",
    "list_training_runs",
    "get_feedback_stats",
    "export_feedback",
}


@pytest.fixture
def server(fake_loop, finance_items):
    fake_loop.add_items(finance_items)
    return build_server(fake_loop)


def call(server, name: str, arguments: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with Client(server) as client:
            return await client.call_tool(name, arguments or {})

    return asyncio.run(go())


def ok(result) -> Any:  # type: ignore[no-untyped-def]
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


def error_text(result) -> str:  # type: ignore[no-untyped-def]
    assert result.is_error
    return result.content[0].text


def test_tools_match_the_skill_definitions(server):
    async def go():  # type: ignore[no-untyped-def]
        async with Client(server) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in asyncio.run(go())}
    assert set(tools) == TOOLS
    for definition in TOOL_DEFINITIONS:
        listed = tools[definition["name"]]
        assert listed.description == definition["description"]
        schema = listed.input_schema
        assert set(schema["properties"]) == set(definition["parameters"]["properties"])
        assert set(schema.get("required", [])) == set(definition["parameters"]["required"])
        assert schema["additionalProperties"] is False
        for name, prop in schema["properties"].items():
            assert prop["description"] == definition["parameters"]["properties"][name]["description"]
    assert tools["check_fine_tuning_status"].annotations.read_only_hint is True
    assert tools["rollback_model"].annotations.destructive_hint is True


def test_search_select_and_status(server):
    async def go() -> tuple[Any, Any, Any]:
        async with Client(server) as client:
            found = ok(await client.call_tool("search", {"query": "Tesla, Inc.", "k": 2}))
            picked = ok(
                await client.call_tool("record_selection", {"search_id": found["search_id"], "item_id": "TSLA"})
            )
            status = ok(await client.call_tool("check_fine_tuning_status", {}))
            return found, picked, status

    found, picked, status = asyncio.run(go())
    assert found["hits"][0]["item_id"] == "TSLA"
    assert picked["rank"] == 1
    assert {"should_fine_tune", "feedback_count", "threshold", "current_model"} <= set(status)
    assert status["feedback_count"] == 1


def test_record_feedback_and_versions(server):
    logged = ok(call(server, "record_feedback", {"query": "apple", "shown": ["APLE", "AAPL"], "selected": ["AAPL"]}))
    assert logged["selections"][0]["item_id"] == "AAPL"
    versions = ok(call(server, "list_model_versions"))["versions"]
    assert [v["version"] for v in versions] == [0] and versions[0]["active"]


@pytest.mark.parametrize(
    ("name", "arguments", "needle"),
    [
        ("search", {}, "query"),
        ("search", {"query": ""}, "query"),
        ("search", {"query": "apple", "k": "ten"}, "k"),
        ("search", {"query": "apple", "k": 0}, "k"),
        ("search", {"query": "apple", "limit": 3}, "limit"),
        ("search", {"query": "   "}, "InvalidInputError (field 'query')"),
        ("search", {"query": "apple", "k": 5000}, "InvalidInputError (field 'k')"),
        ("record_selection", {"search_id": "s1"}, "item_id"),
        ("record_selection", {"search_id": "nope", "item_id": "AAPL"}, "NotFoundError"),
        ("record_feedback", {"query": "q", "shown": [], "selected": []}, "shown"),
        ("record_feedback", {"query": "q", "shown": ["AAPL"], "selected": ["MSFT"]}, "field 'selected'"),
        ("record_feedback", {"query": "q", "shown": ["ZZZ"], "selected": []}, "NotFoundError"),
        ("check_fine_tuning_status", {"verbose": True}, "verbose"),
        ("fine_tune_embeddings", {"force": "yes"}, "force"),
        ("list_model_versions", {"all": True}, "all"),
        ("rollback_model", {"version": -1}, "version"),
        ("rollback_model", {}, "no earlier version"),
        ("rollback_model", {"version": 3}, "NotFoundError"),
    ],
)
def test_bad_input_is_a_tool_error(server, name, arguments, needle):
    assert needle in error_text(call(server, name, arguments))


SQLISH = "'; DROP TABLE selections; --"


def _counts(loop) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    stats = loop.feedback_stats()
    return {key: stats[key] for key in ("items", "searches", "impressions", "selections")}


@pytest.mark.parametrize(
    ("name", "arguments", "needles"),
    [
        # SQL-looking ids are plain data: unknown, never executed
        ("record_selection", {"search_id": SQLISH, "item_id": "AAPL"}, ["NotFoundError", "search_id"]),
        ("record_selection", {"search_id": "1 OR 1=1", "item_id": "AAPL"}, ["NotFoundError", "1 OR 1=1"]),
        ("record_feedback", {"query": SQLISH, "shown": [SQLISH], "selected": []}, ["NotFoundError"]),
        ("rollback_model", {"version": "1; DROP TABLE searches"}, ["version"]),
        # NUL and other binary strings
        ("search", {"query": "apple\x00stock"}, ["field 'query'", "NUL"]),
        ("search", {"query": "\udcff\udcfe"}, ["query", "unicode"]),  # lone surrogates: not text
        ("search", {"query": "apple", "user_id": "u\x00"}, ["user_id"]),
        ("record_selection", {"search_id": "\x00", "item_id": "AAPL"}, ["search_id"]),
        ("record_feedback", {"query": "q\x00", "shown": ["AAPL"], "selected": ["AAPL"]}, ["field 'query'", "NUL"]),
        ("record_feedback", {"query": "apple", "shown": ["AAPL", "A\x00"], "selected": ["AAPL"]}, ["shown"]),
        (
            "record_feedback",
            {"query": "apple", "shown": ["AAPL"], "selected": ["AAPL"], "event_id": "\x00"},
            ["event_id"],
        ),
        # wrong types
        ("search", {"query": 42}, ["query"]),
        ("search", {"query": ["apple"]}, ["query"]),
        ("search", {"query": "apple", "k": 2.5}, ["k"]),
        ("search", {"query": "apple", "k": True}, ["k"]),
        ("search", {"query": "apple", "k": "3"}, ["k"]),
        ("record_selection", {"search_id": 7, "item_id": "AAPL"}, ["search_id"]),
        ("record_feedback", {"query": "apple", "shown": "AAPL", "selected": []}, ["shown"]),
        ("record_feedback", {"query": "apple", "shown": ["AAPL"], "selected": None}, ["selected"]),
        ("record_feedback", {"query": "apple", "shown": [["AAPL"]], "selected": []}, ["shown"]),
        ("rollback_model", {"version": 1.0}, ["version"]),
        # negative and enormous k
        ("search", {"query": "apple", "k": -1}, ["k"]),
        ("search", {"query": "apple", "k": -(10**12)}, ["k"]),
        ("search", {"query": "apple", "k": 10**12}, ["k"]),
        ("search", {"query": "apple", "k": 10**40}, ["k"]),
        # unknown ids and oversized ones
        (
            "record_selection",
            {"search_id": "00000000-0000-0000-0000-000000000000", "item_id": "AAPL"},
            ["NotFoundError"],
        ),
        ("record_selection", {"search_id": "s" * 513, "item_id": "AAPL"}, ["search_id"]),
        ("search", {"query": "x" * 10_001}, ["field 'query'", "10001 characters"]),
    ],
)
def test_hostile_input_is_a_tool_error_and_stores_nothing(server, fake_loop, name, arguments, needles):
    before = _counts(fake_loop)
    text = error_text(call(server, name, arguments))
    for needle in needles:
        assert needle in text, text
    assert "Traceback" not in text
    assert _counts(fake_loop) == before
    assert fake_loop.active_version == 0


def test_sql_looking_query_is_searched_as_text(server, fake_loop):
    before = _counts(fake_loop)
    found = ok(call(server, "search", {"query": SQLISH, "k": 3, "user_id": SQLISH}))
    assert len(found["hits"]) == 3
    after = _counts(fake_loop)
    assert after["searches"] == before["searches"] + 1 and after["items"] == before["items"] == 8
    picked = ok(
        call(server, "record_selection", {"search_id": found["search_id"], "item_id": found["hits"][0]["item_id"]})
    )
    assert picked["rank"] == 1 and _counts(fake_loop)["selections"] == 1


def test_fine_tune_without_feedback_is_skipped(server):
    result = ok(call(server, "fine_tune_embeddings", {}))
    assert result["status"] == "skipped" and result["version"] is None


def test_fine_tune_refused_while_another_process_trains(server, fake_loop):
    assert acquire(fake_loop.store, "training", "other-host:123", 60)
    text = error_text(call(server, "fine_tune_embeddings", {}))
    assert "TrainingInProgressError" in text and "other-host:123" in text


def test_http_transport_needs_a_token_or_loopback_insecure(server, settings):
    with pytest.raises(ConfigError, match="EMBEDLOOP_API_TOKEN"):
        http_app(server, settings)
    with pytest.raises(ConfigError, match="loopback"):
        http_app(server, settings, host="0.0.0.0", insecure=True)
    assert http_app(server, settings.replace(api_token="t"), host="0.0.0.0") is not None
    assert http_app(server, settings, insecure=True) is not None


# ---------------------------------------------------------------- end to end
def _server_args(storage: Path) -> list[str]:
    return ["-m", "embedloop.serving.mcp_server", "--storage", str(storage), "--model", "all-MiniLM-L6-v2"]


@pytest.mark.slow
def test_stdio_end_to_end(minilm_catalog, tmp_path: Path):
    """Every tool over stdio against a real server process."""
    params = StdioServerParameters(command=sys.executable, args=_server_args(minilm_catalog), env=child_env())
    log = tmp_path / "mcp-stderr.log"

    async def go() -> dict[str, Any]:
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                found = ok(await client.call_tool("search", {"query": "Apple stock price", "k": 3}))
                picked = ok(
                    await client.call_tool("record_selection", {"search_id": found["search_id"], "item_id": "AAPL"})
                )
                logged = ok(
                    await client.call_tool(
                        "record_feedback",
                        {"query": "microsoft shares", "shown": ["AAPL", "MSFT"], "selected": ["MSFT"]},
                    )
                )
                status = ok(await client.call_tool("check_fine_tuning_status", {}))
                versions = ok(await client.call_tool("list_model_versions", {}))["versions"]
                rollback = error_text(await client.call_tool("rollback_model", {}))
                tuned = ok(await client.call_tool("fine_tune_embeddings", {}))
                bad = error_text(await client.call_tool("search", {"query": "apple", "k": 0}))
                return {
                    "names": names,
                    "found": found,
                    "picked": picked,
                    "logged": logged,
                    "status": status,
                    "versions": versions,
                    "rollback": rollback,
                    "tuned": tuned,
                    "bad": bad,
                }

    out = asyncio.run(go())
    assert out["names"] == TOOLS
    assert {h["item_id"] for h in out["found"]["hits"]} >= {"AAPL", "APLE"}
    assert out["picked"]["item_id"] == "AAPL" and out["picked"]["search_id"] == out["found"]["search_id"]
    assert [(s["item_id"], s["rank"]) for s in out["logged"]["selections"]] == [("MSFT", 2)]
    assert out["status"]["feedback_count"] == 2
    assert out["status"]["current_model"] == "all-MiniLM-L6-v2"
    assert [(v["version"], v["active"]) for v in out["versions"]] == [(0, True)]
    assert "NotFoundError" in out["rollback"] and "no earlier version" in out["rollback"]
    # 2 events are below the threshold of 100: the cycle is skipped, nothing promoted
    assert out["tuned"]["status"] == "skipped" and out["tuned"]["version"] is None
    assert out["tuned"]["reasons"]
    assert "k" in out["bad"]
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_embedloop_mcp_command_over_stdio(minilm_catalog, tmp_path: Path):
    """The installed ``embedloop mcp`` console script serves the tools over stdio."""
    args = ["--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "mcp"]
    params = StdioServerParameters(command=str(embedloop_script()), args=args, env=child_env())
    log = tmp_path / "mcp-cli-stderr.log"

    async def go() -> tuple[set[str], dict[str, Any], dict[str, Any], str]:
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                found = ok(await client.call_tool("search", {"query": "Tesla electric cars", "k": 2}))
                await client.call_tool("record_selection", {"search_id": found["search_id"], "item_id": "TSLA"})
                status = ok(await client.call_tool("check_fine_tuning_status", {}))
                bad = error_text(await client.call_tool("record_selection", {"search_id": "nope", "item_id": "TSLA"}))
                return names, found, status, bad

    names, found, status, bad = asyncio.run(go())
    assert names == TOOLS
    assert found["hits"][0]["item_id"] == "TSLA"
    assert status["feedback_count"] == 1 and status["active_version"] == 0
    assert "NotFoundError" in bad
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_streamable_http_end_to_end(start_server, minilm_catalog):
    port = free_port()
    args = _server_args(minilm_catalog)[2:] + ["--transport", "http", "--port", str(port)]
    server = start_server("embedloop.serving.mcp_server", args, EMBEDLOOP_API_TOKEN="mcp-secret")
    url = f"http://127.0.0.1:{port}/mcp"
    server.wait_http(url)
    refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "Unauthorized"

    async def go() -> tuple[dict[str, Any], str]:
        headers = {"Authorization": "Bearer mcp-secret"}
        async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                found = ok(await client.call_tool("search", {"query": "Microsoft", "k": 1}))
                bad = error_text(await client.call_tool("record_selection", {"search_id": found["search_id"]}))
                return found, bad

    found, bad = asyncio.run(go())
    assert found["hits"][0]["item_id"] == "MSFT"
    assert "item_id" in bad
    assert server.terminate() == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_stdio_server_stops_cleanly_on_a_signal(minilm_catalog, tmp_path: Path, sig):
    """``embedloop mcp`` answering over stdio exits 0, without a traceback, on Ctrl-C or SIGTERM."""
    args = ["-v", "--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "mcp"]
    log = tmp_path / "mcp-signal.log"
    with log.open("w") as errlog:
        proc = subprocess.Popen(
            [str(embedloop_script()), *args],
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            text=True,
            preexec_fn=default_sigint,
        )
    assert proc.stdin is not None and proc.stdout is not None
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    try:
        proc.stdin.write(json.dumps(hello) + "\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())  # the server is up and serving
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "embedloop"
        proc.send_signal(sig)
        code = proc.wait(timeout=60)  # stdin stays open: only the signal can end it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    err = log.read_text()
    assert code == 0, err
    assert "Traceback" not in err
    assert "MCP server stopped by a signal." in err
