"""More bad input through the Python API: each gets a clear error, nothing half-stored."""

from __future__ import annotations

import json

import pytest

from embedloop import CatalogError, EmbedLoop, InvalidInputError, NotFoundError

SQLISH = "'; DROP TABLE selections; --"


def test_sql_looking_strings_are_plain_data(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items([*finance_items, {"id": SQLISH, "text": f"{SQLISH} Robert'); DELETE FROM items; --"}])
    resp = fake_loop.search(SQLISH, k=3)
    assert resp.hits[0].item_id == SQLISH
    fake_loop.record_selection(resp.search_id, SQLISH, event_id=SQLISH)
    assert fake_loop.feedback_stats()["selections"] == 1
    assert fake_loop.status()["items"] == len(finance_items) + 1


@pytest.mark.parametrize("search_id", ["../../etc/passwd", "x" * 513, "", "\x00", 3.5, None])
def test_bad_or_unknown_search_ids(fake_loop: EmbedLoop, finance_items, search_id):
    fake_loop.add_items(finance_items)
    with pytest.raises((InvalidInputError, NotFoundError)):
        fake_loop.record_selection(search_id, "AAPL")
    assert fake_loop.feedback_stats()["selections"] == 0


@pytest.mark.parametrize("version", [-1, "1", 1.5, True, 99])
def test_bad_rollback_targets(fake_loop: EmbedLoop, version):
    with pytest.raises((InvalidInputError, NotFoundError)):
        fake_loop.rollback(version=version)
    assert fake_loop.active_version == 0


def test_rollback_without_history(fake_loop: EmbedLoop):
    with pytest.raises(NotFoundError, match="no earlier version"):
        fake_loop.rollback()


@pytest.mark.parametrize("keep", [0, -3, "2", None])
def test_bad_prune(fake_loop: EmbedLoop, keep):
    with pytest.raises(InvalidInputError, match="keep"):
        fake_loop.prune(keep=keep)


@pytest.mark.parametrize(
    "items",
    [
        "AAPL",
        {"id": "A", "text": "t"},
        [["A", "t"]],
        [{"id": "A", "text": "t", "metadata": "not a dict"}],
        [{"id": "A", "text": 5}],
    ],
)
def test_malformed_items(fake_loop: EmbedLoop, items):
    with pytest.raises(InvalidInputError):
        fake_loop.add_items(items)
    assert fake_loop.status()["items"] == 0


def test_fake_encoder_loop_cannot_train_but_says_why(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    fake_loop.record_feedback("apple", shown=["APLE", "AAPL"], selected=["AAPL"])
    result = fake_loop.fine_tune(force=True)
    assert result["status"] == "skipped" and "fixed encoder" in result["reasons"][0]
    assert fake_loop.versions()[0]["version"] == 0


def test_delete_validation(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    with pytest.raises(InvalidInputError):
        fake_loop.delete_items("AAPL")
    with pytest.raises(InvalidInputError):
        fake_loop.delete_items([])
    with pytest.raises(NotFoundError):
        fake_loop.delete_items(["AAPL", "NOPE"])
    assert fake_loop.status()["items"] == len(finance_items)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_over_long_text_in_a_catalog_row_loads_nothing(fake_loop: EmbedLoop, finance_items, tmp_path, suffix):
    limit = fake_loop.settings.max_text_length
    rows = [*finance_items[:2], {"id": "LONG", "text": "x" * (limit + 1)}, *finance_items[2:]]
    path = tmp_path / f"catalog{suffix}"
    if suffix == ".csv":
        path.write_text("id,text\n" + "".join(f'{r["id"]},"{r["text"]}"\n' for r in rows), encoding="utf-8")
        row = "row 4"  # line 1 is the header
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        row = "row 3"
    with pytest.raises(CatalogError) as err:
        fake_loop.load_catalog(path)
    message = str(err.value)
    assert row in message and "'LONG'" in message and str(path) in message
    assert f"{limit + 1} characters" in message and f"limit is {limit}" in message
    assert "Nothing was loaded" in message
    assert fake_loop.status()["items"] == 0
    assert fake_loop.search("apple", k=3).hits == []


def test_over_long_text_in_add_items_loads_nothing(fake_loop: EmbedLoop, finance_items):
    limit = fake_loop.settings.max_text_length
    rows = [*finance_items, {"id": "LONG", "text": "y" * (limit + 1)}]
    with pytest.raises(CatalogError, match=r"row 9 \(id 'LONG'\): text is \d+ characters"):
        fake_loop.add_items(rows)
    assert fake_loop.status()["items"] == 0
