"""The ``embedloop`` command line through click's runner, with the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from embedloop import EmbedLoop
from embedloop.cli import cli

MINILM = "all-MiniLM-L6-v2"

CATALOG_CSV = """id,text,exchange
AAPL,AAPL - Apple Inc. Common Stock,NASDAQ
APLE,"APLE - Apple Hospitality REIT, Inc. Common Shares",NYSE
MSFT,MSFT - Microsoft Corporation Common Stock,NASDAQ
TSLA,"TSLA - Tesla, Inc. Common Stock",NASDAQ
SPY,SPY - SPDR S&P 500 ETF Trust,NYSE
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "cli-storage"


@pytest.fixture
def run(runner: CliRunner, store_dir: Path):
    """Invoke ``embedloop --model MiniLM --storage <tmp> ARGS...``."""

    def invoke(*args: str, json_output: bool = False) -> Result:
        base = ["--model", MINILM, "--storage", str(store_dir)]
        if json_output:
            base.append("--json")
        return runner.invoke(cli, [*base, *args])

    return invoke


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.csv"
    path.write_text(CATALOG_CSV, encoding="utf-8")
    return path


def assert_user_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    # the model loader may draw a progress bar on stderr before the error
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_full_flow(run, catalog_file: Path, store_dir: Path, tmp_path: Path, _isolated_storage: Path):
    loaded = run("catalog", "load", str(catalog_file), json_output=True)
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.stdout) == {"received": 5, "changed": 5, "total": 5}
    assert (store_dir / "feedback.db").is_file()
    assert not _isolated_storage.exists()  # --storage overrides LEARNING_STORAGE_PATH

    text = run("search", "Apple stock price", "-k", "3")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0].split() == ["rank", "id", "score", "text"]
    assert "search id: " in text.stdout

    found = run("search", "Apple stock price", "-k", "3", "--user", "u1", json_output=True)
    assert found.exit_code == 0, found.output
    resp = json.loads(found.stdout)
    assert [h["rank"] for h in resp["hits"]] == [1, 2, 3]
    assert resp["hits"][0]["item_id"] == "AAPL"
    search_id = resp["search_id"]

    picked = run("select", search_id, "AAPL", "--event-id", "ev-1", json_output=True)
    assert picked.exit_code == 0, picked.output
    sel = json.loads(picked.stdout)
    assert (sel["item_id"], sel["rank"], sel["event_id"], sel["duplicate"]) == ("AAPL", 1, "ev-1", False)
    again = run("select", search_id, "AAPL", "--event-id", "ev-1")
    assert again.exit_code == 0 and "duplicate" in again.stdout

    recorded = run(
        "feedback", "record", "--query", "msft", "--shown", "AAPL,MSFT", "--shown", "SPY", "--selected", "MSFT"
    )
    assert recorded.exit_code == 0, recorded.output
    assert "MSFT (rank 2)" in recorded.stdout

    stats = json.loads(run("feedback", "stats", json_output=True).stdout)
    assert stats["items"] == 5 and stats["selections"] == 2 and stats["searches"] == 3

    exported = run("feedback", "export")
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert {line["query"] for line in lines} == {"Apple stock price", "msft"}
    out_file = tmp_path / "feedback.jsonl"
    to_file = run("feedback", "export", "-o", str(out_file), json_output=True)
    assert json.loads(to_file.stdout) == {"exported": 2, "path": str(out_file)}
    assert len(out_file.read_text().splitlines()) == 2

    status = json.loads(run("status", json_output=True).stdout)
    assert status["feedback_count"] == 2
    assert status["threshold"] == 100
    assert status["should_fine_tune"] is False
    assert status["current_model"] == MINILM and status["active_version"] == 0 and status["items"] == 5

    versions = run("models", "list", json_output=True)
    assert versions.exit_code == 0, versions.output
    assert [(v["version"], v["active"]) for v in json.loads(versions.stdout)] == [(0, True)]
    assert "*" in run("models", "list").stdout

    deleted = json.loads(run("catalog", "delete", "TSLA", json_output=True).stdout)
    assert deleted == {"deleted": 1, "total": 4}


def test_db_option_sets_the_database(runner: CliRunner, tmp_path: Path):
    db = tmp_path / "elsewhere.db"
    storage = tmp_path / "s"
    result = runner.invoke(
        cli, ["--model", MINILM, "--storage", str(storage), "--db", str(db), "--json", "feedback", "stats"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 0
    assert db.is_file() and not (storage / "feedback.db").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["search", ""], "query is empty"),
        (["search", "   "], "query is empty"),
        (["search", "apple", "-k", "0"], "k=0"),
        (["search", "apple", "-k", "x"], "'x' is not a valid integer"),
        (["select", "no-such-search", "AAPL"], "Unknown search_id"),
        (["feedback", "record", "--query", "q", "--shown", "AAPL", "--selected", "MSFT"], "not in shown"),
        (["feedback", "record", "--query", "", "--shown", "AAPL"], "query is empty"),
        (["models", "rollback"], "no earlier version"),
        (["models", "rollback", "--version", "7"], "Unknown model version 7"),
        (["models", "prune", "--keep", "0"], "--keep"),
    ],
)
def test_bad_input_is_a_clean_error(run, args: list[str], fragment: str):
    assert_user_error(run(*args), fragment)


def test_malformed_catalog_files(run, tmp_path: Path):
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("id,name\nAAPL,Apple\n", encoding="utf-8")
    assert_user_error(run("catalog", "load", str(no_text)), "'text'")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"id": "A", "text": "a"}\n{not json\n', encoding="utf-8")
    assert_user_error(run("catalog", "load", str(bad_json)), "line 2")
    unknown = tmp_path / "catalog.xlsx"
    unknown.write_text("x", encoding="utf-8")
    assert_user_error(run("catalog", "load", str(unknown)), "Cannot tell the format")
    assert_user_error(run("catalog", "load", str(tmp_path / "missing.csv")), "does not exist")
    assert_user_error(run("catalog", "load"), "exactly one")
    assert_user_error(run("catalog", "load", "--limit", "3", str(no_text)), "--limit")
    # nothing was stored by the refused files
    assert json.loads(run("feedback", "stats", json_output=True).stdout)["items"] == 0


def test_custom_fields(run, tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"sym": "AAPL", "name": "Apple Inc."}\n', encoding="utf-8")
    result = run("catalog", "load", str(path), "--id-field", "sym", "--text-field", "name", json_output=True)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 1


def test_config_errors_are_clean(runner: CliRunner, run, catalog_file: Path, store_dir: Path):
    assert run("catalog", "load", str(catalog_file)).exit_code == 0
    other_model = runner.invoke(cli, ["--storage", str(store_dir), "--model", "all-mpnet-base-v2", "status"])
    assert_user_error(other_model, "was built with 'all-MiniLM-L6-v2'")


def test_unknown_command_and_option(runner: CliRunner):
    assert_user_error(runner.invoke(cli, ["nope"]), "No such command")
    assert_user_error(runner.invoke(cli, ["search", "--nope", "q"]), "No such option")


def test_finetune_output_and_exit_code(run, monkeypatch: pytest.MonkeyPatch):
    outcome = {
        "status": "rejected",
        "version": 1,
        "metrics": {"active": {"ndcg@10": 0.5}, "candidate": {"ndcg@10": 0.4}},
        "reasons": ["ndcg@10 0.4000 < active 0.5000"],
    }
    calls = []

    def fake_fine_tune(self: EmbedLoop, force: bool = False) -> dict:
        calls.append(force)
        return outcome

    monkeypatch.setattr(EmbedLoop, "fine_tune", fake_fine_tune)
    result = run("finetune", "--force")
    assert result.exit_code == 0, result.output
    assert calls == [True]
    assert "status:  rejected" in result.stdout and "ndcg@10 0.4000 < active 0.5000" in result.stdout
    assert result.stdout.count("ndcg@10") == 2  # the comparison table row and the reason
    outcome["status"] = "failed"
    assert run("finetune").exit_code == 1
    assert calls == [True, False]


def test_json_stdout_is_only_the_result(run, monkeypatch: pytest.MonkeyPatch):
    def chatty_fine_tune(self: EmbedLoop, force: bool = False) -> dict:
        print("{'loss': 2.5}")  # what the transformers trainer does
        return {"status": "skipped", "version": None, "metrics": {}, "reasons": ["not enough feedback"]}

    monkeypatch.setattr(EmbedLoop, "fine_tune", chatty_fine_tune)
    result = run("finetune", json_output=True)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "skipped"
    assert "{'loss': 2.5}" in result.stderr


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_top_level_help_lists_groups(runner: CliRunner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("catalog", "feedback", "models", "search", "select", "status", "finetune", "evaluate"):
        assert f"  {name} " in result.stdout
    for option in ("--storage", "--model", "--db", "--json", "--verbose"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("path", "command"), list(_commands(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_command_has_help(runner: CliRunner, path: tuple[str, ...], command: click.Command):
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert command.help and command.help.strip()
    if command.context_settings.get("ignore_unknown_options"):  # passes its arguments on (bench quality)
        assert "usage:" in result.stdout and "--help" in result.stdout
        return
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{' '.join(path)} {param.opts} has no help"
            assert param.opts[-1] in result.stdout
        else:
            assert param.human_readable_name.upper() in result.stdout or "ID..." in result.stdout


def test_version(runner: CliRunner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("embedloop ")


def test_verbose_logs_to_stderr_and_cleans_up(run):
    import logging

    package_logger = logging.getLogger("embedloop")
    handlers_before = list(package_logger.handlers)
    result = run("-v", "feedback", "stats", json_output=True)
    assert result.exit_code == 0, result.output
    assert "INFO embedloop.cli.context: Opening storage" in result.stderr
    assert json.loads(result.stdout)["items"] == 0  # logs never mix into stdout
    assert package_logger.handlers == handlers_before
    quiet = run("feedback", "stats")
    assert "INFO" not in quiet.stderr


def test_bench_quality_help_and_missing_data(runner: CliRunner, tmp_path: Path) -> None:
    helped = runner.invoke(cli, ["bench", "quality", "--help"])
    assert helped.exit_code == 0
    assert "--dataset" in helped.output and "--noise" in helped.output
    missing = runner.invoke(cli, ["bench", "quality", "--dataset", "scifact", "--data-root", str(tmp_path)])
    assert missing.exit_code == 2
    assert "no BEIR dataset at" in missing.output and "--data-root" in missing.output
    alone = runner.invoke(cli, ["bench", "quality", "--review-questions-only", "--data-root", str(tmp_path)])
    assert alone.exit_code == 2 and "--review-questions-only needs --review-budgets" in alone.output


# ------------------------------------------------------------- hostile input
SQLISH = "'; DROP TABLE selections; --"


def _stats(run) -> dict:  # type: ignore[no-untyped-def]
    result = run("feedback", "stats", json_output=True)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bad_catalog_paths_load_nothing(run, tmp_path: Path):
    up = "../" * (len(tmp_path.parts) + 2)  # climbs past the root, which stays at /
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"id,text\n\xff\xfe\x00\x81,\x89PNG\r\n\x1a\n")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert_user_error(run("catalog", "load", f"{tmp_path}/{up}etc/passwd"), "Cannot tell the format")
    assert_user_error(run("catalog", "load", f"{tmp_path}/{up}no-such-dir/catalog.csv"), "does not exist")
    assert_user_error(run("catalog", "load", str(folder)), "is a directory")
    assert_user_error(run("catalog", "load", str(binary)), "not UTF-8")
    assert _stats(run)["items"] == 0


def test_export_to_an_unwritable_path_is_a_clean_error(run, catalog_file: Path, tmp_path: Path):
    assert run("catalog", "load", str(catalog_file)).exit_code == 0
    assert run("feedback", "record", "--query", "msft", "--shown", "AAPL,MSFT", "--selected", "MSFT").exit_code == 0
    before = _stats(run)
    up = "../" * (len(tmp_path.parts) + 2)
    targets = [
        (str(catalog_file / "out.jsonl"), "Cannot write"),  # the parent is a file
        (f"{tmp_path}/{up}no-such-dir/out.jsonl", "Cannot write"),  # traversal to a folder that does not exist
        ("/proc/embedloop-export.jsonl", "Cannot write"),  # not writable, even as root
        (str(tmp_path), "is a directory"),
    ]
    for target, fragment in targets:
        assert_user_error(run("feedback", "export", "-o", target), fragment)
    assert not Path("/no-such-dir").exists()
    assert _stats(run) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["search", "apple\x00stock"], "NUL"),
        (["search", "\udcff\udcfe"], "not valid UTF-8"),
        (["search", "apple", "--user", "u\x00"], "user_id"),
        (["search", "apple", "-k", "-1"], "k=-1 is out of range"),
        (["search", "apple", "-k", "1000001"], "k=1000001 is out of range"),
        (["search", "apple", "-k", "9" * 40], "is out of range"),
        (["search", "apple", "-k", "1; DROP TABLE items"], "is not a valid integer"),
        (["search", "x" * 10_001], "10001 characters"),
        (["select", SQLISH, "AAPL"], "Unknown search_id"),
        (["select", "\udcff", "AAPL"], "search_id is not valid UTF-8"),
        (["select", "s" * 513, "AAPL"], "at most 512 characters"),
        (["feedback", "record", "--query", SQLISH, "--shown", SQLISH], SQLISH),
        (["feedback", "record", "--query", "q\x00", "--shown", "AAPL"], "NUL"),
        (["feedback", "record", "--query", "apple", "--shown", "AAPL,\udcff"], "shown"),
        (["feedback", "record", "--query", "apple", "--shown", "AAPL", "--event-id", "\x00"], "event_id"),
        (["catalog", "delete", SQLISH], SQLISH),
        (["models", "rollback", "--version", "-1"], "version"),
        (["models", "rollback", "--version", "1; DROP TABLE searches"], "is not a valid integer"),
    ],
)
def test_hostile_arguments_are_clean_errors_and_store_nothing(run, catalog_file: Path, args: list[str], fragment):
    assert run("catalog", "load", str(catalog_file)).exit_code == 0
    before = _stats(run)
    assert_user_error(run(*args), fragment)
    assert _stats(run) == before


def test_sql_looking_query_is_searched_as_text(run, catalog_file: Path):
    assert run("catalog", "load", str(catalog_file)).exit_code == 0
    found = run("search", SQLISH, "-k", "2", "--user", SQLISH, json_output=True)
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 2
    stats = _stats(run)
    assert stats["items"] == 5 and stats["searches"] == 1 and stats["selections"] == 0
