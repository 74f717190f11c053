"""The operator dashboard: static pages served by the HTTP app at ``/dashboard``.

The pages are one HTML shell, plain JavaScript and CSS shipped in ``static/``
(no build step, nothing from a CDN); charts use the vendored uPlot
(``static/uPlot.iife.min.js``, MIT, see ``static/LICENSE-uPlot``). Every
number on a page comes from the JSON API the same server exposes (``/status``,
``/models``, ``/runs``, ``/feedback/timeline``, ...): the pages hold no logic
of their own. Admin actions send the admin token the operator typed in, kept
in the browser's session storage, as a bearer header.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

#: Page names; ``/dashboard/<page>`` serves the shell, whose script renders that page.
PAGES = ("overview", "versions", "cycles", "feedback", "trial", "review")

#: No inline script, nothing from another origin: a stray string can never run as code.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def static_dir() -> Path:
    """The folder of the dashboard's assets inside the installed package."""
    return Path(str(resources.files(__package__) / "static"))


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard pages at ``/dashboard`` and its assets at ``/dashboard/static``."""
    shell = (static_dir() / "index.html").read_text(encoding="utf-8")

    def page(name: str) -> HTMLResponse:
        if name not in PAGES:
            raise HTTPException(404, f"No dashboard page {name!r}; pages: {', '.join(PAGES)}.")
        return HTMLResponse(shell, headers=_HEADERS)

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return page("overview")

    @app.get("/dashboard/{name}", include_in_schema=False)
    def dashboard_page(name: str) -> HTMLResponse:
        return page(name)

    app.mount("/dashboard/static", StaticFiles(directory=static_dir()), name="dashboard-static")
