"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Selenium against a real server.

The server is the real HTTP app under uvicorn on a loopback port, over a store filled with generated
feedback and versions (deterministic HashingEncoder). Every number checked on a page is compared with
what the JSON API answers at that moment. Chromium comes from ``scripts/install_browser.sh``
(``make test`` runs it); without it these tests skip, unless EMBEDLOOP_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from embedloop import EmbedLoop, Settings
from embedloop.models.encoder import HashingEncoder
from embedloop.serving.http import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from dashboard_data import CHROMEDRIVER, CHROMIUM, HOSTILE, ServerThread, chromium, populate, wait_rendered  # noqa: E402

TOKEN = "dash-admin-token"
HOSTILE_QUERY = '<img src=x onerror="alert(2)"> &amp;'

pytestmark = pytest.mark.browser

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    if os.environ.get("EMBEDLOOP_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"{CHROMIUM} / {CHROMEDRIVER} missing: run scripts/install_browser.sh")
    pytest.skip("no system Chromium (run scripts/install_browser.sh)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(
        storage_path=tmp_path_factory.mktemp("dashboard"),
        embedding_model="all-MiniLM-L6-v2",
        show_progress=False,
        api_token=TOKEN,
    )
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        populate(loop, selections_wanted=400, versions=6, n_items=80, days=10)
        # hostile strings at the top of both lists: an item text, and a query nobody selected from
        loop.record_feedback_batch([{"query": "hostile", "shown": ["XSS", "IT00001"], "selected": ["XSS"]}] * 40)
        loop.record_feedback_batch([{"query": HOSTILE_QUERY, "shown": ["IT00001"], "selected": []}] * 40)
        srv = ServerThread(create_app(loop, settings))
        yield srv
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def page(server, browser):
    def open_page(name: str = ""):
        browser.get(f"{server.url}/dashboard{'/' + name if name else ''}")
        wait_rendered(browser)
        return browser

    yield open_page
    browser.execute_script("sessionStorage.clear()")


def api(server, path: str):
    response = httpx.get(server.url + path, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def field(driver, name: str) -> str:
    return driver.find_element("css selector", f'[data-field="{name}"]').text


def test_overview_shows_the_api_status(server, page):
    driver = page()
    status = api(server, "/status")
    assert field(driver, "active_version") == f"v{status['active_version']}"
    assert field(driver, "base_model") == status["base_model"]
    assert field(driver, "feedback_count") == f"{status['feedback_count']:,} / {status['threshold']:,}"
    assert field(driver, "total_feedback") == f"{status['total_feedback']:,}"
    assert field(driver, "lock") == "free"
    assert field(driver, "last_run_id").startswith(f"#{status['last_run']['id']} ")
    assert field(driver, "trial") == "no trial running"


def test_versions_page_lists_every_version_with_its_metrics(server, page):
    driver = page("versions")
    models = api(server, "/models")
    rows = driver.find_elements("css selector", "tbody tr[data-version]")
    assert [r.get_attribute("data-version") for r in rows] == [str(v["version"]) for v in models["versions"]]
    active = driver.find_element("css selector", "tr.is-active")
    assert active.get_attribute("data-version") == str(models["active_version"])
    trained = next(v for v in models["versions"] if v.get("metrics"))
    cell = driver.find_element("css selector", f'tr[data-version="{trained["version"]}"] [data-field="primary"]')
    m = trained["metrics"]
    assert cell.text == f"{m['active']['triplet_accuracy']:.3f} → {m['candidate']['triplet_accuracy']:.3f}"


def test_cycles_page_shows_runs_and_charts(server, page):
    driver = page("cycles")
    runs = api(server, "/runs?limit=20")
    rows = driver.find_elements("css selector", "tbody tr[data-run]")
    assert [r.get_attribute("data-run") for r in rows] == [str(r["id"]) for r in runs["runs"]]
    assert field(driver, "runs-range") == f"1–{len(runs['runs'])} of {runs['total']}"
    assert len(driver.find_elements("css selector", ".chart canvas")) == 2


def test_feedback_page_numbers_and_hostile_text_shown_escaped(server, page):
    driver = page("feedback")
    data = api(server, "/feedback/timeline?days=30")
    assert field(driver, "searches") == f"{data['totals']['searches']:,}"
    assert field(driver, "selections") == f"{data['totals']['selections']:,}"
    assert field(driver, "click_through") == f"{100 * data['totals']['click_through']:.1f} %"
    texts = [e.text for e in driver.find_elements("css selector", '[data-field="item-text"]')]
    assert texts == [i["text"] for i in data["top_selected_items"]]
    assert texts[0] == HOSTILE  # the catalog item named "<script>..." is listed as text
    queries = [e.text for e in driver.find_elements("css selector", '[data-field="unselected-query"]')]
    assert queries == [q["query"] for q in data["top_unselected_queries"]] and queries[0] == HOSTILE_QUERY
    assert driver.execute_script("return document.querySelectorAll('#app img').length") == 0
    # ...and never became markup: no alert, no script element but the page's own two
    assert driver.execute_script("return document.querySelectorAll('script').length") == 2
    assert driver.execute_script("return document.querySelectorAll('#app script').length") == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in driver.execute_script(
        "return document.getElementById('app').innerHTML"
    )
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def test_trial_and_review_pages_say_what_is_missing(server, page):
    driver = page("trial")
    status = api(server, "/status")
    if status.get("trial") is None:
        assert driver.find_element("css selector", "#app .empty").text.startswith("no trial running")
    else:
        assert field(driver, "trial-wins") == f"{status['trial']['wins']:,}"
    driver = page("review")
    if httpx.get(server.url + "/review/queue").status_code == 404:
        assert (
            driver.find_element("css selector", "#app .empty").text
            == "The review queue is not available on this server."
        )


def _click_rollback(driver, version: int) -> str:
    selector = f'button[data-action="rollback"][data-version="{version}"]'
    driver.find_element("css selector", selector).click()
    driver.find_element("css selector", selector).click()  # the second click confirms
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: not d.find_element("id", "flash").get_attribute("hidden"))
    wait_rendered(driver)
    return str(driver.find_element("id", "flash").text)


def test_rollback_is_refused_without_the_token_and_done_with_it(server, page):
    driver = page("versions")
    models = api(server, "/models")
    target = next(v["version"] for v in models["versions"] if v["status"] == "retired" and not v["active"])
    message = _click_rollback(driver, target)
    assert "401" in message and "admin token" in message
    assert api(server, "/models")["active_version"] == models["active_version"]

    driver.find_element("id", "token-input").send_keys(TOKEN)
    driver.find_element("id", "token-save").click()
    assert field(driver, "auth-state") == "admin"
    driver = page("versions")  # the token survives a page load (session storage)
    assert field(driver, "auth-state") == "admin"
    message = _click_rollback(driver, target)
    assert message == f"Rolled back: v{target} is active."
    assert api(server, "/models")["active_version"] == target
    assert driver.find_element("css selector", "tr.is-active").get_attribute("data-version") == str(target)


class TrialLoop(EmbedLoop):
    """A loop with a running trial as ``trial_status()`` reports one (no training needed to start it)."""

    trial: dict | None = {
        "candidate_version": 3,
        "searches": 1234,
        "wins": 410,
        "losses": 377,
        "ties": 447,
        "statistic": 1.234,
        "decision": "continue",
    }

    def trial_status(self):
        return dict(self.trial) if self.trial else None

    def trials(self, limit: int = 20):
        past = {"id": 1, "candidate_version": 2, "active_version": 1, "status": "rejected", "reason": HOSTILE}
        return [
            {
                **past,
                "started_at": "2026-11-30T10:00:00+00:00",
                "decided_at": None,
                "outcome": {"wins": 3, "losses": 9, "ties": 4},
            }
        ]

    def stop_trial(self, reason: str = "stopped by an operator"):
        TrialLoop.trial = None
        return {"stopped": True, "reason": reason}


@pytest.fixture(scope="module")
def trial_server(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(
        storage_path=tmp_path_factory.mktemp("trial"),
        embedding_model="all-MiniLM-L6-v2",
        show_progress=False,
        api_token=TOKEN,
    )
    with TrialLoop(settings, encoder=HashingEncoder()) as loop:
        loop.add_items([{"id": "A", "text": "alpha"}])
        srv = ServerThread(create_app(loop, settings))
        yield srv
        srv.stop()


def test_trial_page_shows_the_running_trial_and_stop_needs_the_token(trial_server, browser):
    browser.get(f"{trial_server.url}/dashboard/trial")
    wait_rendered(browser)
    trial = api(trial_server, "/status")["trial"]
    assert field(browser, "trial-candidate") == f"v{trial['candidate_version']}"
    for key in ("searches", "wins", "losses", "ties"):
        assert field(browser, f"trial-{key}") == f"{trial[key]:,}"
    assert field(browser, "trial-statistic") == f"{trial['statistic']:.3f}"
    assert field(browser, "trial-decision") == trial["decision"]
    (past,) = browser.find_elements("css selector", "tr[data-trial]")
    assert HOSTILE in past.text and "3 / 9 / 4" in past.text  # a stored reason is text too

    from selenium.webdriver.support.ui import WebDriverWait

    def stop() -> str:
        browser.find_element("id", "trial-stop").click()
        WebDriverWait(browser, 10).until(lambda d: not d.find_element("id", "flash").get_attribute("hidden"))
        return str(browser.find_element("id", "flash").text)

    has_endpoint = httpx.post(trial_server.url + "/trial/stop").status_code != 404
    message = stop()
    assert ("401" in message and "admin token" in message) if has_endpoint else "cannot stop trials" in message
    browser.find_element("id", "token-input").send_keys(TOKEN)
    browser.find_element("id", "token-save").click()
    if has_endpoint:  # POST /trial/stop (the trials work) calls loop.stop_trial()
        assert stop() == "Trial stopped."
        wait_rendered(browser)
        assert browser.find_element("css selector", "#app .empty").text == "no trial running"
    browser.execute_script("sessionStorage.clear()")


def test_review_page_lists_real_questions_escaped_and_records_an_answer(tmp_path_factory, browser):
    """The page against the real routes: questions from review_queue(), answers stored as judgments."""
    settings = Settings(
        storage_path=tmp_path_factory.mktemp("review"),
        embedding_model="all-MiniLM-L6-v2",
        show_progress=False,
        api_token=TOKEN,
    )
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        loop.add_items(
            [
                {"id": "A1", "text": "alpha fund one"},
                {"id": "A2", "text": "alpha fund two"},
                {"id": "X", "text": HOSTILE},
            ]
        )
        loop.search("alpha fund", k=3)  # A1 and A2 tie exactly under the hashing encoder
        loop.search(HOSTILE_QUERY, k=3)  # searched, nothing selected
        expected = [q["query"] for q in loop.review_queue(limit=10)]
        assert expected == ["alpha fund", HOSTILE_QUERY]
        srv = ServerThread(create_app(loop, settings))
        try:
            browser.get(f"{srv.url}/dashboard/review")
            wait_rendered(browser)
            panels = browser.find_elements("css selector", "#app section.panel")
            assert [p.find_element("css selector", "h2").text for p in panels] == expected
            assert "tied scores" in panels[0].text and HOSTILE in panels[1].text
            assert browser.execute_script("return document.querySelectorAll('#app img, #app script').length") == 0
            panels[0].find_element("css selector", 'input[value="A1"]').click()
            panels[0].find_element("css selector", "button.primary").click()
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(browser, 10).until(lambda d: d.find_element("id", "flash").text == "Answer recorded.")
            wait_rendered(browser)
            judged = {(j["query"], j["item_id"], j["relevant"]) for j in loop.judgments()}
            assert ("alpha fund", "A1", True) in judged and ("alpha fund", "A2", False) in judged
            assert [
                p.find_element("css selector", "h2").text
                for p in browser.find_elements("css selector", "#app section.panel")
            ] == [HOSTILE_QUERY]
        finally:
            srv.stop()
