"""``embedloop review`` through click's runner, with the real MiniLM and a tiny catalog."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from embedloop.cli import cli

MINILM = "all-MiniLM-L6-v2"
CATALOG = """id,text
AAPL,AAPL - Apple Inc. Common Stock
APLE,"APLE - Apple Hospitality REIT, Inc. Common Shares"
MSFT,MSFT - Microsoft Corporation Common Stock
TSLA,"TSLA - Tesla, Inc. Common Stock"
"""


def test_review_shows_answers_and_exports(tmp_path: Path):
    runner = CliRunner()
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(CATALOG, encoding="utf-8")

    def run(*args: str, json_output: bool = False, input: str | None = None):  # type: ignore[no-untyped-def]
        base = ["--model", MINILM, "--storage", str(tmp_path / "store"), *(["--json"] if json_output else [])]
        result = runner.invoke(cli, [*base, *args], input=input)
        assert result.exit_code == 0, (result.output, result.stderr)
        return result

    run("catalog", "load", str(catalog))
    run("search", "apple stock", "-k", "3")
    shown = json.loads(run("review", json_output=True).stdout)
    assert shown["query"] == "apple stock" and len(shown["candidates"]) >= 2
    text = run("review").stdout
    assert "apple stock" in text and shown["review_id"] in text
    first, second = shown["candidates"][0]["item_id"], shown["candidates"][1]["item_id"]
    # interactively: numbers or ids
    answered = run("review", "--interactive", "--reviewer", "ann", input=f"1\n{second}\n").stdout
    assert f"{first}=relevant" in answered and f"{second}=not relevant" in answered
    assert "No open questions." in run("review").stdout
    again = json.loads(
        run("review", "--id", shown["review_id"], "--select", first, "--reject", second, json_output=True).stdout
    )
    assert again["duplicate"] is True
    run("review", "judge", "tesla", "TSLA", "--relevant")
    listed = json.loads(run("review", "judgments", json_output=True).stdout)
    assert [j["item_id"] for j in listed] == ["TSLA", second, first]
    exported = run("review", "export").stdout.splitlines()
    assert len(exported) == 3 and json.loads(exported[0])["reviewer"] == "ann"
    bad = runner.invoke(
        cli, ["--model", MINILM, "--storage", str(tmp_path / "store"), "review", "--id", "nope", "--select", "AAPL"]
    )
    assert bad.exit_code == 2 and "Unknown review_id" in bad.stderr
