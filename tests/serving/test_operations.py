"""One argument model per operation: the tools, MCP and HTTP publish and enforce the same thing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from mcp import Client

from embedloop.cli.main import cli
from embedloop.errors import InvalidInputError
from embedloop.operations import OPERATIONS, operation
from embedloop.serving.http import create_app
from embedloop.serving.mcp_server import build_server
from embedloop.skills import TOOL_DEFINITIONS, Agent2EmbeddingSkill

TOKEN = "admin-secret-admin-secret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def loop(fake_loop, finance_items):
    fake_loop.add_items(finance_items)
    fake_loop.record_feedback("apple stock", shown=["APLE", "AAPL"], selected=["AAPL"])
    fake_loop.record_feedback("tesla", shown=["TSLA"], selected=["TSLA"])
    return fake_loop


@pytest.fixture
def client(loop, settings):
    with TestClient(create_app(loop, settings.replace(api_token=TOKEN))) as c:
        yield c


def mcp_tools(loop) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with Client(build_server(loop)) as client:
            return (await client.list_tools()).tools

    return {t.name: t for t in asyncio.run(go())}


def mcp_call(loop, name: str, arguments: dict[str, Any]):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with Client(build_server(loop)) as client:
            return await client.call_tool(name, arguments)

    return asyncio.run(go())


def test_tool_definitions_and_mcp_publish_each_operations_model(loop):
    assert [t["name"] for t in TOOL_DEFINITIONS] == [op.name for op in OPERATIONS]
    tools = mcp_tools(loop)
    for op, definition in zip(OPERATIONS, TOOL_DEFINITIONS, strict=True):
        schema = op.schema()
        assert definition["parameters"] == schema
        assert tools[op.name].input_schema == schema
        assert set(schema["properties"]) == set(op.params.model_fields)
        required = {name for name, f in op.params.model_fields.items() if f.is_required()}
        assert set(schema["required"]) == required
        for prop in schema["properties"].values():
            assert "title" not in prop and "anyOf" not in prop and prop["description"]
        assert tools[op.name].annotations.read_only_hint is op.read_only


def test_http_bodies_are_the_operations_models(client):
    spec = client.get("/openapi.json").json()
    bodies = {
        ("/search", "post"): "search",
        ("/selections", "post"): "record_selection",
        ("/feedback", "post"): "record_feedback",
        ("/fine-tune", "post"): "fine_tune_embeddings",
        ("/evaluate", "post"): "evaluate_model",
        ("/models/rollback", "post"): "rollback_model",
        ("/models/prune", "post"): "prune_models",
        ("/trial/stop", "post"): "stop_trial",
        ("/review/answer", "post"): "answer_review",
        ("/judgments", "post"): "record_judgment",
    }
    for (path, method), name in bodies.items():
        content = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        ref = content.get("$ref") or next(v["$ref"] for v in content.get("anyOf", []) if "$ref" in v)
        assert ref.rsplit("/", 1)[-1] == operation(name).params.__name__, path


@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        ("prune_models", {"keep": 0}, "keep"),
        ("prune_models", {"keep": "3"}, "keep"),
        ("list_training_runs", {"limit": 501}, "limit"),
        ("export_feedback", {"offset": -1}, "offset"),
        ("evaluate_model", {"candidate": ""}, "candidate"),
        ("answer_review", {"review_id": "r", "selected": ["a", 3]}, "selected[1]"),
        ("get_feedback_stats", {"verbose": True}, "verbose"),
    ],
)
def test_one_check_answers_the_same_on_every_interface(loop, client, name, arguments, field):
    op = operation(name)
    with pytest.raises(InvalidInputError) as err:
        op.validate(arguments)
    assert err.value.field == field
    result = mcp_call(loop, name, arguments)
    assert result.is_error and field.split("[")[0] in result.content[0].text


def test_runs_stats_and_export_on_every_interface(loop, client, settings):
    skill = Agent2EmbeddingSkill(loop)
    stats = asyncio.run(skill.call("get_feedback_stats", {}))
    assert stats == loop.feedback_stats() == client.get("/feedback/stats").json()
    assert stats["selections"] == 2

    page = asyncio.run(skill.call("export_feedback", {"limit": 1, "offset": 1}))
    assert page["total"] == 2 and [r["query"] for r in page["records"]] == ["tesla"]
    assert client.get("/feedback/export", params={"limit": 1, "offset": 1}, headers=ADMIN).json() == page
    assert client.get("/feedback/export").status_code == 401  # users' queries: admin only
    exported = json.loads(mcp_call(loop, "export_feedback", {}).content[0].text)
    assert [r["query"] for r in exported["records"]] == ["apple stock", "tesla"]

    runs = json.loads(mcp_call(loop, "list_training_runs", {"limit": 5}).content[0].text)
    assert runs == loop.runs(5) == client.get("/runs", params={"limit": 5}).json()

    cli_out = CliRunner().invoke(
        cli, ["--storage", str(settings.storage_path), "--json", "feedback", "stats"], catch_exceptions=False
    )
    assert json.loads(cli_out.output)["selections"] == 2
    cli_runs = CliRunner().invoke(cli, ["--storage", str(settings.storage_path), "runs", "--limit", "3"])
    assert cli_runs.exit_code == 0 and "no runs (total 0)" in cli_runs.output


def test_prune_and_evaluate_on_http_and_mcp(loop, client):
    pruned = client.post("/models/prune", json={"keep": 2}, headers=ADMIN)
    assert pruned.status_code == 200 and pruned.json() == {"removed": [], "kept": [0]}
    assert client.post("/models/prune", json={"keep": 2}).status_code == 401
    assert json.loads(mcp_call(loop, "prune_models", {}).content[0].text)["kept"] == [0]

    bad = client.post("/evaluate", json={"candidate": "/no/such/model"}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "candidate"
    assert "not a saved model folder" in mcp_call(loop, "evaluate_model", {"candidate": "/nope"}).content[0].text
    evaluated = client.post("/evaluate", headers=ADMIN)
    assert evaluated.status_code == 200 and evaluated.json()["holdout_queries"] >= 1
    assert evaluated.json()["metrics"]["retrieval_ndcg@10"] == loop.evaluate()["metrics"]["retrieval_ndcg@10"]
    assert client.post("/evaluate").status_code == 401
