"""The dashboard's data (loop.runs, loop.feedback_timeline, GET /runs, GET /feedback/timeline) and its routes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from embedloop.errors import InvalidInputError
from embedloop.serving.dashboard import PAGES, static_dir
from embedloop.serving.http import create_app, dashboard_url
from embedloop.store.runs import finish_run, start_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loop(fake_loop, finance_items):
    fake_loop.add_items(finance_items)
    return fake_loop


@pytest.fixture
def client(loop, settings):
    with TestClient(create_app(loop, settings.replace(api_token="admin-secret"))) as c:
        yield c


def test_runs_endpoint_pages_like_the_python_api(loop, client):
    for n in range(3):
        run = start_run(loop.store, parent_version=0, from_seq=0, to_seq=n)
        finish_run(loop.store, run, status="skipped", reasons=[f"only {n} events"])
    body = client.get("/runs", params={"limit": 2, "offset": 1}).json()
    assert body == loop.runs(limit=2, offset=1)
    assert body["total"] == 3 and [r["reasons"] for r in body["runs"]] == [["only 1 events"], ["only 0 events"]]
    assert client.get("/runs").json()["limit"] == 50


def test_feedback_timeline_endpoint_matches_the_python_api(loop, client):
    response = loop.search("apple stock", k=3)
    loop.record_selection(response.search_id, response.hits[0].item_id)
    loop.record_feedback("nothing fits", shown=["AAPL", "MSFT"], selected=[])
    body = client.get("/feedback/timeline", params={"days": 7}).json()
    assert body == loop.feedback_timeline(days=7)
    assert body["totals"]["searches"] == 2 and body["totals"]["selections"] == 1
    assert body["top_unselected_queries"] == [{"query": "nothing fits", "searches": 1}]
    assert body["top_selected_items"][0]["item_id"] == response.hits[0].item_id


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/runs?limit=0", "limit"),
        ("/runs?limit=501", "limit"),
        ("/runs?offset=-1", "offset"),
        ("/feedback/timeline?days=0", "days"),
        ("/feedback/timeline?days=abc", "days"),
    ],
)
def test_bad_read_parameters_answer_422_naming_the_field(client, path, field):
    response = client.get(path)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda lp: lp.runs(limit=0), "limit"),
        (lambda lp: lp.runs(offset=-2), "offset"),
        (lambda lp: lp.feedback_timeline(days=400), "days"),
        (lambda lp: lp.feedback_timeline(days=True), "days"),
    ],
)
def test_python_api_refuses_bad_arguments(loop, call, field):
    with pytest.raises(InvalidInputError) as err:
        call(loop)
    assert err.value.field == field


def test_read_endpoints_need_no_token_like_status(client):
    assert client.get("/runs").status_code == 200
    assert client.get("/feedback/timeline").status_code == 200


@pytest.mark.parametrize("page", ["", *(f"/{p}" for p in PAGES)])
def test_every_page_serves_the_shell_with_a_strict_content_security_policy(client, page):
    response = client.get(f"/dashboard{page}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    html = response.text
    # every asset is local: no http(s) URL is loaded by the page
    assert not re.search(r"""(src|href)=["']https?:""", html)
    assert "/dashboard/static/app.js" in html and "/dashboard/static/uPlot.iife.min.js" in html


def test_unknown_page_is_404_and_assets_are_served(client):
    assert client.get("/dashboard/nope").status_code == 404
    for name in ("app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css", "LICENSE-uPlot"):
        response = client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200, name
        assert response.content == (static_dir() / name).read_bytes()
    assert client.get("/dashboard/static/../../loop.py").status_code == 404


def test_dashboard_is_not_in_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/runs" in paths and "/feedback/timeline" in paths
    assert not any(p.startswith("/dashboard") for p in paths)


def test_page_script_never_writes_html_from_data():
    """Text reaches the page through text nodes only: no innerHTML / outerHTML / insertAdjacentHTML / document.write."""
    script = re.sub(r"/\*.*?\*/", "", (static_dir() / "app.js").read_text(), flags=re.S)  # comments may name them
    assert "textContent" in script or "createTextNode" in script
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)


def test_assets_are_package_data():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "serving/dashboard/static/*" in pyproject


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/dashboard"),
        ("0.0.0.0", "http://127.0.0.1:8000/dashboard"),
        ("::1", "http://[::1]:8000/dashboard"),
    ],
)
def test_dashboard_url(host, url):
    assert dashboard_url(host, 8000) == url


@pytest.mark.slow
def test_embedloop_serve_prints_the_dashboard_address_and_serves_it(start_cli, minilm_catalog):
    from _servers import free_port

    port = free_port()
    args = ["--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "serve", "--insecure", "--no-scheduler"]
    server = start_cli([*args, "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/health")
    assert f"dashboard at {base}/dashboard" in server.log.read_text()
    with httpx.Client(base_url=base, timeout=60) as http:
        page = http.get("/dashboard")
        assert page.status_code == 200 and "/dashboard/static/app.js" in page.text
        assert http.get("/dashboard/static/app.js").status_code == 200
        assert http.get("/runs").json()["total"] == 0
    assert server.terminate() == 0
