"""Issue 12, item 6: JSON errors under --json, `catalog list` with paging, evaluate without held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedloop import EmbedLoop, NoHeldOutDataError, NotFoundError, Settings
from embedloop.cli import cli
from embedloop.models.encoder import HashingEncoder

MINILM = "all-MiniLM-L6-v2"


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """A storage built for MiniLM whose catalog was indexed with the hashing encoder (no model load)."""
    path = tmp_path / "s"
    settings = Settings(storage_path=path, embedding_model=MINILM, show_progress=False)
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        loop.add_items([{"id": f"ITEM{n:02d}", "text": f"item number {n}"} for n in range(7)])
    return path


def invoke(storage: Path, *args: str):
    return CliRunner().invoke(cli, ["--storage", str(storage), *args])


def test_json_errors_are_json(storage: Path):
    result = invoke(storage, "--json", "select", "no-such-search", "ITEM01")
    assert result.exit_code == 2
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["type"] == "NotFoundError" and "no-such-search" in error["message"]
    assert error["exit_code"] == 2
    usage = CliRunner().invoke(cli, ["--json", "search"])  # a usage error is JSON too
    assert usage.exit_code == 2 and json.loads(usage.stderr)["error"]["type"] == "UsageError"
    plain = invoke(storage, "select", "no-such-search", "ITEM01")
    assert plain.stderr.startswith("error: Unknown search_id")


def test_catalog_list_pages_through_every_item(storage: Path):
    seen: list[str] = []
    after: list[str] = []
    for _ in range(4):
        result = invoke(storage, "--json", "catalog", "list", "--limit", "3", *after)
        assert result.exit_code == 0, result.output
        page = json.loads(result.stdout)
        assert page["total"] == 7
        seen += [item["id"] for item in page["items"]]
        if page["next_after"] is None:
            break
        after = ["--after", page["next_after"]]
    assert seen == [f"ITEM{n:02d}" for n in range(7)]
    text = invoke(storage, "catalog", "list", "--limit", "2")
    assert "Next page: embedloop catalog list --limit 2 --after 'ITEM01'" in text.stdout


def test_unknown_item_error_points_to_catalog_list(fake_loop: EmbedLoop):
    fake_loop.add_items([{"id": "A", "text": "a"}])
    with pytest.raises(NotFoundError, match="embedloop catalog list"):
        fake_loop.record_feedback("q", shown=["A", "B"], selected=["A"])
    with pytest.raises(NotFoundError, match="embedloop catalog list"):
        fake_loop.delete_items(["B"])


def test_list_items_refuses_bad_limits(fake_loop: EmbedLoop):
    from embedloop import InvalidInputError

    with pytest.raises(InvalidInputError, match="limit must be an integer from 1 to 1000"):
        fake_loop.list_items(limit=0)


def test_evaluate_without_held_out_data_says_why(fake_loop: EmbedLoop):
    fake_loop.add_items([{"id": "A", "text": "apple"}, {"id": "B", "text": "banana"}])
    fake_loop.record_feedback("apple", shown=["B", "A"], selected=["A"])  # one distinct query: nothing held out
    with pytest.raises(NoHeldOutDataError, match="No held-out feedback.*EMBEDLOOP_HOLDOUT_FRACTION"):
        fake_loop.evaluate()


def test_select_twice_without_event_id_is_recorded_once(fake_loop: EmbedLoop):
    fake_loop.add_items([{"id": "A", "text": "apple pie"}, {"id": "B", "text": "apple juice"}])
    resp = fake_loop.search("apple", k=2)
    first = fake_loop.record_selection(resp.search_id, "A")
    again = fake_loop.record_selection(resp.search_id, "A")
    assert not first.duplicate and again.duplicate and again.event_id == first.event_id
    other = fake_loop.record_selection(resp.search_id, "B")  # another result of the same search counts
    assert not other.duplicate
    explicit = fake_loop.record_selection(resp.search_id, "A", event_id="click-2")  # an explicit id: a new event
    assert not explicit.duplicate
    assert fake_loop.feedback_stats()["selections"] == 3
