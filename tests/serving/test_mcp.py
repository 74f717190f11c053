"""The MCP server: in process through the SDK client, and end to end over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from _servers import child_env, free_port
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
    params = StdioServerParameters(command=sys.executable, args=_server_args(minilm_catalog), env=child_env())
    log = tmp_path / "mcp-stderr.log"

    async def go() -> dict[str, Any]:
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                found = ok(await client.call_tool("search", {"query": "Apple stock price", "k": 3}))
                await client.call_tool("record_selection", {"search_id": found["search_id"], "item_id": "AAPL"})
                status = ok(await client.call_tool("check_fine_tuning_status", {}))
                bad = error_text(await client.call_tool("search", {"query": "apple", "k": 0}))
                return {"names": names, "found": found, "status": status, "bad": bad}

    out = asyncio.run(go())
    assert out["names"] == TOOLS
    assert {h["item_id"] for h in out["found"]["hits"]} >= {"AAPL", "APLE"}
    assert out["status"]["feedback_count"] == 1
    assert out["status"]["current_model"] == "all-MiniLM-L6-v2"
    assert "k" in out["bad"]


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
