"""Agent2EmbeddingSkill: the spec's status dict, non-blocking fine-tuning, tool calls by name."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from datetime import datetime
from typing import Any

import pytest

import embedloop.skills as skills
from embedloop.errors import InvalidInputError, NotFoundError, NotShownError, TrainingInProgressError
from embedloop.scheduler import FineTuneScheduler
from embedloop.skills import TOOL_DEFINITIONS, Agent2EmbeddingSkill, anthropic_tools, openai_tools
from embedloop.skills.tools import METHODS, validate_arguments
from embedloop.store.locks import acquire

SPEC_KEYS = {"should_fine_tune", "feedback_count", "threshold", "current_model"}


@pytest.fixture
def skill(fake_loop, finance_items):
    fake_loop.add_items(finance_items)
    return Agent2EmbeddingSkill(fake_loop)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_status_has_the_spec_keys_and_more(skill):
    run(skill.record_feedback("apple stock", shown=["APLE", "AAPL"], selected=["AAPL"]))
    status = run(skill.check_fine_tuning_status())
    assert SPEC_KEYS <= set(status)
    assert status["should_fine_tune"] is False
    assert status["feedback_count"] == 1
    assert status["threshold"] == 100
    assert status["current_model"] == "all-MiniLM-L6-v2"
    assert status["active_version"] == 0
    assert status["last_run"] is None
    assert status["next_scheduled_check"] is None  # no scheduler attached
    assert status["training_in_progress"] is False
    json.dumps(status)  # JSON-ready for an agent


def test_status_shows_the_schedule_and_a_running_cycle(fake_loop):
    scheduler = FineTuneScheduler(fake_loop, initial_delay=600).start()
    try:
        skill = Agent2EmbeddingSkill(fake_loop, scheduler)
        assert acquire(fake_loop.store, "training", "other-agent", 30)
        status = run(skill.check_fine_tuning_status())
    finally:
        scheduler.stop(5)
    assert datetime.fromisoformat(status["next_scheduled_check"]).tzinfo is not None
    assert status["training_in_progress"] is True
    assert status["training_lock"]["owner"] == "other-agent"
    assert status["scheduler"]["interval_seconds"] == 3600.0


def test_search_and_selection_round_trip(skill):
    found = run(skill.search("Apple Inc. Common Stock", k=3))
    assert found["hits"][0]["item_id"] == "AAPL" and len(found["hits"]) == 3
    picked = run(skill.record_selection(found["search_id"], "AAPL", event_id="e1"))
    assert picked["item_id"] == "AAPL" and picked["rank"] == 1 and picked["duplicate"] is False
    again = run(skill.call("record_selection", {"search_id": found["search_id"], "item_id": "AAPL", "event_id": "e1"}))
    assert again["duplicate"] is True
    assert run(skill.check_fine_tuning_status())["feedback_count"] == 1


def test_fine_tuning_runs_off_the_event_loop(fake_loop, monkeypatch):
    # The cycle itself is not under test: a slow stand-in shows whether the event loop keeps running.
    def slow_cycle(force: bool = False) -> dict[str, Any]:
        time.sleep(0.5)
        return {"status": "skipped", "version": None, "metrics": {}, "reasons": ["stand-in"], "force": force}

    monkeypatch.setattr(fake_loop, "fine_tune", slow_cycle)
    skill = Agent2EmbeddingSkill(fake_loop)

    async def main() -> tuple[dict[str, Any], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        result = await skill.execute_embedding_fine_tuning(force=True)
        task.cancel()
        return result, ticks

    result, ticks = run(main())
    assert result["force"] is True and result["reasons"] == ["stand-in"]
    assert ticks >= 20  # the loop ticked all through the 0.5 s "training"


def test_fine_tuning_without_feedback_is_skipped(skill):
    result = run(skill.execute_embedding_fine_tuning())
    assert result["status"] == "skipped" and result["version"] is None
    assert "no new feedback" in result["reasons"][0]
    assert run(skill.call("fine_tune_embeddings", {"force": True}))["status"] == "skipped"


def test_fine_tuning_refused_while_another_agent_trains(skill, fake_loop):
    assert acquire(fake_loop.store, "training", "agent-7", 30)
    with pytest.raises(TrainingInProgressError, match="agent-7"):
        run(skill.execute_embedding_fine_tuning())
    with pytest.raises(TrainingInProgressError):
        run(skill.call("fine_tune_embeddings", {}))


def test_versions_and_rollback(skill):
    versions = run(skill.call("list_model_versions"))
    assert [v["version"] for v in versions] == [0] and versions[0]["active"]
    with pytest.raises(NotFoundError, match="no earlier version"):
        run(skill.call("rollback_model", {}))
    with pytest.raises(NotFoundError):
        run(skill.call("rollback_model", {"version": 9}))


# ------------------------------------------------------------- tool definitions
def test_tool_definitions_are_complete_and_valid_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    names = [t["name"] for t in TOOL_DEFINITIONS]
    assert {"fine_tune_embeddings", "check_fine_tuning_status", "search", "record_selection", "record_feedback"} <= set(
        names
    )
    assert set(names) == set(METHODS)
    for tool in TOOL_DEFINITIONS:
        assert set(tool) == {"name", "description", "parameters"}
        assert len(tool["description"]) > 40
        jsonschema.Draft202012Validator.check_schema(tool["parameters"])
        assert tool["parameters"]["type"] == "object"
        for prop in tool["parameters"]["properties"].values():
            assert prop["description"]
        assert callable(getattr(Agent2EmbeddingSkill, METHODS[tool["name"]]))
    json.dumps(TOOL_DEFINITIONS)


def test_provider_shapes():
    oa = openai_tools(["fine_tune_embeddings"])
    assert oa == [{"type": "function", "function": TOOL_DEFINITIONS[4]}]
    an = anthropic_tools()
    assert an[0]["input_schema"] == TOOL_DEFINITIONS[0]["parameters"]
    oa[0]["function"]["name"] = "mutated"
    assert TOOL_DEFINITIONS[4]["name"] == "fine_tune_embeddings"  # copies, not the originals


def test_schema_accepts_what_the_tools_accept():
    jsonschema = pytest.importorskip("jsonschema")
    good = {"query": "apple", "k": 5}
    jsonschema.validate(good, TOOL_DEFINITIONS[0]["parameters"])
    assert validate_arguments("search", good) == good
    assert validate_arguments("search", {"query": "apple", "user_id": None}) == {"query": "apple"}


@pytest.mark.parametrize(
    ("name", "arguments", "field"),
    [
        ("no_such_tool", {}, "name"),
        ("search", ["apple"], "arguments"),
        ("search", {}, "query"),
        ("search", {"query": "apple", "limit": 3}, "limit"),
        ("search", {"query": 42}, "query"),
        ("search", {"query": "apple", "k": "ten"}, "k"),
        ("search", {"query": "apple", "k": 0}, "k"),
        ("search", {"query": "apple", "k": True}, "k"),
        ("search", {"query": "   "}, "query"),  # passes the schema, refused by the loop
        ("record_selection", {"search_id": "s"}, "item_id"),
        ("record_selection", {"search_id": "", "item_id": "AAPL"}, "search_id"),
        ("record_feedback", {"query": "q", "shown": [], "selected": []}, "shown"),
        ("record_feedback", {"query": "q", "shown": ["AAPL"], "selected": [1]}, "selected[0]"),
        ("record_feedback", {"query": "q", "shown": ["AAPL"], "selected": ["MSFT"]}, "selected"),
        ("record_feedback", {"query": "q", "shown": "AAPL", "selected": []}, "shown"),
        ("check_fine_tuning_status", {"verbose": True}, "verbose"),
        ("fine_tune_embeddings", {"force": "yes"}, "force"),
        ("list_model_versions", {"all": 1}, "all"),
        ("rollback_model", {"version": -1}, "version"),
        ("rollback_model", {"version": "2"}, "version"),
    ],
)
def test_bad_tool_calls_name_the_field(skill, name, arguments, field):
    with pytest.raises(InvalidInputError) as err:
        run(skill.call(name, arguments))
    assert err.value.field == field
    assert str(err.value)


def test_domain_errors_pass_through_call(skill):
    with pytest.raises(NotFoundError, match="Unknown search_id"):
        run(skill.call("record_selection", {"search_id": "nope", "item_id": "AAPL"}))
    found = run(skill.call("search", {"query": "Tesla", "k": 1}))
    with pytest.raises(NotShownError):
        run(skill.call("record_selection", {"search_id": found["search_id"], "item_id": "MSFT"}))


def test_embedding_finetuner_is_exported_lazily():
    if importlib.util.find_spec("embedloop.training.finetuner") is None:
        with pytest.raises(ModuleNotFoundError):
            skills.EmbeddingFineTuner  # noqa: B018
    else:
        assert isinstance(skills.EmbeddingFineTuner, type)
    with pytest.raises(AttributeError):
        skills.NoSuchThing  # noqa: B018
    assert "EmbeddingFineTuner" in skills.__all__
