"""The rater-facing web app (FastAPI, server-rendered Jinja2 pages, no JavaScript), assembled.

Journey (``_routes_rater``): ``/`` information and consent (nothing is stored before "I agree")
-> ``/demographics`` -> ``/instructions`` -> ``/rate`` (one item a page, progress shown) ->
``/done`` (completion code, Prolific return link). ``/withdraw`` deletes the rater's data at any
point, from the browser that consented. A returning rater resumes at their first unrated item
(by session cookie, or on another device by Prolific id *with* the matching Prolific
``SESSION_ID``; the id alone is refused, so knowing someone's id does not give their session).
``/admin`` (``_routes_admin``) shows progress to whoever holds the admin token.

Every form carries a CSRF token bound to the visitor's cookie; every field is validated on the
server (ASCII numbers in range, text without control characters, the item belongs to this
rater; anything but a plain URL-encoded form is refused); Jinja2 escapes all text; cookies are
HttpOnly and SameSite=Lax (``__Host-`` and Secure with ``secure_cookies``); session tokens are
random and new at consent; submissions, joins, admin log-ins and Bearer guesses are rate
limited; one client address holds at most a few unfinished slots, and abandoned ones are freed.
Every response carries security headers (no scripts, no framing, no referrer, so the Prolific
id in the URL stays here); request bodies are capped before they are read.

Where the parts live: the routes are module-level functions on two ``APIRouter`` s; what they
share (store, settings, pages, rate limiters, cookie names, clock) is one ``AppState``
(``_state``) at ``app.state.rating``; what a submission or an admin check comes to is a typed
outcome (``_outcomes``); pages, cookies and forms are ``_pages``. SQLite calls run on the event
loop with no busy wait and are retried after an ``asyncio.sleep`` (``AppState.call_db``). A
database error is a "not saved, try again" page (503) and a log line without the statement's
values. FastAPI is imported with this module, which ``tidekit.rating`` loads on first use of
``create_app`` or ``serve``.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from tidekit.rating import _routes_admin, _routes_rater
from tidekit.rating._config import RatingServeConfig
from tidekit.rating._http import Guard, security_headers
from tidekit.rating._pages import HERE, BadForm
from tidekit.rating._state import AppState, state_of
from tidekit.rating._store import RatingStore

__all__ = ["create_app", "serve"]

log = logging.getLogger("tidekit.rating")


def create_app(db: str | Path | RatingStore, config: RatingServeConfig | None = None, root_path: str = "") -> FastAPI:
    """The FastAPI app serving the study in ``db``.

    ``root_path`` is the URL prefix when served under a sub-path by a proxy (e.g. ``/study``).
    """
    cfg = config or RatingServeConfig()
    # SQLite: statements never wait for a lock (busy_timeout 0); AppState.call_db retries instead
    store = db if isinstance(db, RatingStore) else RatingStore.open(db, busy_timeout_s=0.0)
    app = FastAPI(title="tidekit rating", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.rating = AppState.build(store, cfg, root_path)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(Guard, headers=security_headers(https=cfg.secure_cookies), max_body=cfg.max_body_kib * 1024)
    app.add_exception_handler(BadForm, bad_form)
    app.add_exception_handler(sa.exc.DBAPIError, database_error)
    app.include_router(_routes_rater.router)
    app.include_router(_routes_admin.router)
    return app


async def bad_form(request: Request, exc: Exception) -> Response:
    """A body that is not a plain form of text fields: refused with the status BadForm carries."""
    assert isinstance(exc, BadForm)
    pages = state_of(request).pages
    return pages.message("Request refused", str(exc), status=exc.status, link=pages.back_link())


async def database_error(request: Request, exc: Exception) -> Response:
    """A database error: a "not saved, try again" page (503) and a log line without its values."""
    assert isinstance(exc, sa.exc.DBAPIError)
    # the statement's values (a comment, a token hash) stay out of the log: engines hide
    # parameters, and only the error class and its first line are written, with no query string
    first_line = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else ""
    log.warning("database error on %s %s: %s: %s", request.method, request.url.path,
                type(exc.orig).__name__, first_line)
    resp = state_of(request).pages.message(
        "Your answer was not saved", "The study's database is busy or unavailable for a moment, so what you "
        "just sent was not saved. Wait a few seconds, then go back and submit again: your earlier answers are "
        "safe.", status=503)
    resp.headers["Retry-After"] = "5"
    return resp


def serve(
    db: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: RatingServeConfig | None = None,
    root_path: str = "",
    log_level: str = "warning",
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Run the app with uvicorn until interrupted. Access logs stay off: request URLs carry the
    Prolific id, which must not land in log files. ``X-Forwarded-For`` is read by the app itself
    (``trust_proxy``, ``trusted_proxies``), so uvicorn's own proxy-header handling stays off.
    ``on_ready`` is called once the socket listens with ``{"url", "admin_url", "host", "port",
    "pid"}`` (what ``tidekit rate serve --json`` prints)."""
    import uvicorn

    app = create_app(db, config, root_path=root_path)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                           proxy_headers=False, server_header=False))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and on_ready is not None:
            url = f"http://{host}:{port}{root_path}/"
            on_ready({"url": url, "admin_url": url + "admin", "host": host, "port": port, "pid": os.getpid()})

    watcher = threading.Thread(target=announce, daemon=True)
    watcher.start()
    try:
        server.run()
    finally:
        server.should_exit = True
        watcher.join(timeout=1)
        app.state.store.close()
