"""The rater-facing web app (FastAPI, server-rendered Jinja2 pages, no JavaScript).

Journey: ``/`` information and consent (nothing is stored before "I agree") -> ``/demographics``
-> ``/instructions`` -> ``/rate`` (one item a page, progress shown) -> ``/done`` (completion
code, Prolific return link). ``/withdraw`` deletes the rater's data at any point. A returning
rater resumes at their first unrated item (by session cookie, or by Prolific id after consenting
again). ``/admin`` shows progress to whoever holds the admin token.

Every form carries a CSRF token bound to the visitor's cookie; every field is validated on the
server (ranges, the item belongs to this rater); Jinja2 escapes all text; cookies are HttpOnly
and SameSite=Lax; submissions, joins and admin log-ins are rate limited. Pages forbid scripts and
framing (Content-Security-Policy) and send no referrer, so the Prolific id in the URL stays here.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
# and ``Request`` is imported inside create_app (FastAPI is a heavy import).

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from tidekit.rating._config import DEMOGRAPHICS, ServeConfig
from tidekit.rating._security import (
    RateLimiter,
    check_token,
    keyed_hash,
    new_token,
    sha256_hex,
    valid_external_id,
)
from tidekit.rating._store import FACTORS, ItemView, NotYourItem, RaterView, RatingStore, StudyFull

__all__ = ["create_app", "serve"]

SESSION_COOKIE = "tk_session"
PRE_COOKIE = "tk_pre"
ADMIN_COOKIE = "tk_admin"
MAX_COMMENT = 2000
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
_HERE = Path(__file__).parent
T = TypeVar("T")

QUESTIONS = (
    ("empathy", "Overall, how empathetic is this reply?",
     "How understood and supported would the person feel?"),
    ("emotion_recognition", "Emotion recognition: does the reply recognise what the person feels?", ""),
    ("distress_normalization", "Distress normalization: does it make the person's reactions feel understandable?", ""),
    ("supportive_reflection", "Supportive reflection: does it reflect what matters and offer gentle support?", ""),
)
assert tuple(q[0] for q in QUESTIONS[1:]) == FACTORS

_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def _templates() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
                              autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, auto_reload=False)


def create_app(db: str | Path | RatingStore, config: ServeConfig | None = None, root_path: str = "") -> Any:
    """The FastAPI app serving the study in ``db``.

    ``root_path`` is the URL prefix when served under a sub-path by a proxy (e.g. ``/study``).
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from markupsafe import Markup
    from starlette.concurrency import run_in_threadpool

    cfg = config or ServeConfig()
    store = db if isinstance(db, RatingStore) else RatingStore.open(db)
    info = store.info
    study = info.config
    submit_limit = RateLimiter(cfg.submit_rate, cfg.submit_burst)
    join_limit = RateLimiter(cfg.join_rate, cfg.join_burst)
    admin_limit = RateLimiter(0.2, 5)
    admin_cookie_value = keyed_hash(info.secret, "admin", info.admin_token_hash)

    inline_db = store.engine.dialect.name == "sqlite"

    async def call_db(fn: Callable[..., T], *args: Any) -> T:
        # SQLite calls take a fraction of a millisecond and SQLite serialises writers anyway, so
        # they run on the event loop (a thread hop would cost more than the query); PostgreSQL
        # calls wait on the network and run in worker threads
        if inline_db:
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    app = FastAPI(title="tidekit rating", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    # -- helpers --------------------------------------------------------------------------
    def csrf_for(binding: str) -> str:
        return keyed_hash(info.secret, "csrf", binding)

    def client_ip(request: Request) -> str:
        if cfg.trust_proxy and (fwd := request.headers.get("x-forwarded-for")):
            return fwd.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        base = {"title": study.title, "consent": study.consent, "root": root_path, "withdraw_link": False}
        html = _templates().get_template(name).render(**(base | ctx))
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def message(heading: str, *paragraphs: str, status: int = 200, link: dict[str, str] | None = None,
                withdraw_link: bool = False) -> HTMLResponse:
        return page("message.html", status=status, heading=heading, paragraphs=paragraphs, link=link,
                    withdraw_link=withdraw_link)

    def redirect(path: str) -> RedirectResponse:
        return RedirectResponse(root_path + path, status_code=303, headers=_HEADERS)

    def set_cookie(resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=cfg.secure_cookies,
                        path=root_path or "/")

    def forbidden(text: str = "This form has expired or did not come from this site. Go back, reload the page and try again.") -> HTMLResponse:
        return message("Request refused", text, status=403, link={"href": root_path + "/", "text": "Back to the study"})

    def too_many(wait: float) -> HTMLResponse:
        resp = message("Please slow down", "You are sending answers faster than anyone can read. "
                       "Wait a few seconds, then go back and submit again.", status=429)
        resp.headers["Retry-After"] = str(max(1, round(wait)))
        return resp

    async def current(request: Request) -> RaterView | None:
        return await call_db(store.rater_for_session, request.cookies.get(SESSION_COOKIE))

    def stage(rater: RaterView) -> str:
        if not rater.has_demographics:
            return "/demographics"
        return "/done" if rater.completed else "/rate"

    def csrf_ok(request: Request, form: Any, binding: str | None) -> bool:
        return binding is not None and check_token(form.get("csrf"), csrf_for(binding))

    def is_admin(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return check_token(sha256_hex(auth[7:].strip()), info.admin_token_hash)
        return check_token(request.cookies.get(ADMIN_COOKIE), admin_cookie_value)

    # -- the rater journey --------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def consent_page(request: Request) -> Response:
        rater = await current(request)
        if rater is not None:
            return redirect(stage(rater))
        pre = request.cookies.get(PRE_COOKIE) or new_token(24)
        prolific = {k: valid_external_id(request.query_params.get(k)) for k in PROLIFIC_PARAMS}
        resp = page("consent.html", csrf=csrf_for(pre), prolific=prolific, per_rater=info.per_rater,
                    points=study.scale.points, error=None)
        set_cookie(resp, PRE_COOKIE, pre, max_age=86400)
        return resp

    @app.post("/consent")
    async def consent(request: Request) -> Response:
        form = await request.form()
        pre = request.cookies.get(PRE_COOKIE)
        if not csrf_ok(request, form, pre):
            return forbidden("Your browser must accept cookies from this site to take part. Reload the "
                             "first page and try again.")
        if form.get("decision") != "agree":
            return message("Thank you", "You chose not to take part. Nothing about you was stored.",
                           "If you came from Prolific, please return the study there.")
        prolific = {k: valid_external_id(str(form.get(k) or "")) for k in PROLIFIC_PARAMS}
        if form.get("confirm") != "yes":
            assert pre is not None
            return page("consent.html", status=400, csrf=csrf_for(pre), prolific=prolific,
                        per_rater=info.per_rater, points=study.scale.points,
                        error="Please tick the box to confirm that you agree, or choose 'I do not agree'.")
        wait = join_limit.allow(client_ip(request))
        if wait:
            return too_many(wait)
        try:
            assert pre is not None
            _, token, _ = await call_db(  # the session token derives from this browser's nonce
                store.register_rater, prolific["PROLIFIC_PID"], prolific["STUDY_ID"], prolific["SESSION_ID"],
                False, keyed_hash(info.secret, "session", pre))
        except StudyFull:
            return message("This study is full", "Every place in this study has been taken, so no more "
                           "answers are needed. Nothing about you was stored. Thank you for your interest.",
                           "If you came from Prolific, please return the study there.")
        rater = await call_db(store.rater_for_session, token)
        assert rater is not None
        resp = redirect(stage(rater))
        set_cookie(resp, SESSION_COOKIE, token, max_age=30 * 86400)
        resp.delete_cookie(PRE_COOKIE, path=root_path or "/")
        return resp

    @app.get("/demographics")
    async def demographics_page(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return redirect("/")
        token = request.cookies[SESSION_COOKIE]
        return page("demographics.html", csrf=csrf_for(token), questions=DEMOGRAPHICS, answers={}, errors=[],
                    withdraw_link=True)

    @app.post("/demographics")
    async def demographics(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return redirect("/")
        token = request.cookies[SESSION_COOKIE]
        form = await request.form()
        if not csrf_ok(request, form, token):
            return forbidden()
        answers = {k: str(form.get(k) or "") for k in DEMOGRAPHICS}
        errors = [question for k, (question, options) in DEMOGRAPHICS.items()
                  if answers[k] not in {v for v, _ in options}]
        if errors:
            return page("demographics.html", status=400, csrf=csrf_for(token), questions=DEMOGRAPHICS,
                        answers=answers, errors=errors, withdraw_link=True)
        await call_db(store.save_demographics, rater.id, answers)
        return redirect("/instructions")

    @app.get("/instructions")
    async def instructions(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return redirect("/")
        return page("instructions.html", scale=study.scale, withdraw_link=True)

    def shown_ticket(token: str, assignment_id: int) -> str:
        # when the page was served, signed: the rating's duration without a write per page view
        ts = f"{time.time():.3f}"
        return f"{ts}.{keyed_hash(info.secret, 'shown', f'{token}|{assignment_id}|{ts}')[:32]}"

    def shown_at(token: str, assignment_id: str, ticket: str) -> float | None:
        ts, _, sig = ticket.rpartition(".")
        ok = check_token(sig, keyed_hash(info.secret, "shown", f"{token}|{assignment_id}|{ts}")[:32])
        return float(ts) if ok else None

    empty_scales = Markup(_templates().get_template("_scales.html").render(
        questions=QUESTIONS, scale=study.scale, values={}))  # the same for every fresh page

    def rate_page(token: str, state: tuple[RaterView, ItemView | None, int], status: int = 200,
                  errors: list[str] | None = None, values: dict[str, str] | None = None) -> Response:
        _rater, item, done = state
        if item is None:
            return redirect("/done")
        return page("rate.html", status=status, csrf=csrf_for(token), item=item,
                    shown=shown_ticket(token, item.assignment_id), done=done, total=info.per_rater,
                    questions=QUESTIONS, scale=study.scale, values=values or {}, errors=errors or [],
                    scales=None if values else empty_scales,
                    max_comment=MAX_COMMENT, withdraw_link=True)

    @app.get("/rate")
    async def rate_get(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE) or ""
        state = await call_db(store.rating_page, token)
        if state is None:
            return redirect("/")
        if not state[0].has_demographics:
            return redirect("/demographics")
        return rate_page(token, state)

    def submit(token: str, assignment_id: int, scores: dict[str, int], comment: str,
               shown: float | None) -> str:
        # one trip to the worker thread: who is this, then store the rating (one transaction)
        rater = store.rater_for_session(token)
        if rater is None:
            return "no-session"
        if not rater.has_demographics:
            return "no-demographics"
        wait = submit_limit.allow(rater.id)
        if wait:
            return f"wait:{wait}"
        try:
            store.submit_rating(rater, assignment_id, scores, comment, shown_at=shown)
        except NotYourItem:
            return "not-yours"
        return "ok"

    @app.post("/rate")
    async def rate_post(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE) or ""
        form = await request.form()
        if not token or not csrf_ok(request, form, token):
            return forbidden()
        values = {k: str(form.get(k) or "") for k in (*(q[0] for q in QUESTIONS), "comment", "assignment_id")}
        if not values["assignment_id"].isdigit():
            return forbidden("This answer does not belong to an item of yours.")
        errors, scores = [], {}
        for field, question, _ in QUESTIONS:
            raw = values[field]
            if raw.isdigit() and 1 <= int(raw) <= study.scale.points:
                scores[field] = int(raw)
            else:
                errors.append(f"{question.split(':')[0]}: choose a number from 1 to {study.scale.points}.")
        comment = values["comment"].replace("\r\n", "\n").strip()
        if len(comment) > MAX_COMMENT:
            errors.append(f"The comment is longer than {MAX_COMMENT} characters; please shorten it.")
        if errors:
            state = await call_db(store.rating_page, token)
            if state is None:
                return redirect("/")
            return rate_page(token, state, status=400, errors=errors, values=values)
        shown = shown_at(token, values["assignment_id"], str(form.get("shown") or ""))
        outcome = await call_db(submit, token, int(values["assignment_id"]), scores, comment, shown)
        if outcome == "no-session":
            return message("Session expired", "We could not find your session. Go back to the first page "
                           "to continue where you stopped.", status=401,
                           link={"href": root_path + "/", "text": "Continue"})
        if outcome == "no-demographics":
            return redirect("/demographics")
        if outcome.startswith("wait:"):
            return too_many(float(outcome[5:]))
        if outcome == "not-yours":
            return forbidden("This answer does not belong to an item of yours.")
        return redirect("/rate")

    @app.get("/done")
    async def done(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return redirect("/")
        if not rater.completed:
            return redirect(stage(rater))
        url = study.completion_url.format(code=info.completion_code) if rater.from_prolific else None
        return page("done.html", code=info.completion_code, prolific_url=url)

    @app.get("/withdraw")
    async def withdraw_page(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return message("Nothing to withdraw", "No answers from this browser are stored.")
        return page("withdraw.html", csrf=csrf_for(request.cookies[SESSION_COOKIE]))

    @app.post("/withdraw")
    async def withdraw(request: Request) -> Response:
        rater = await current(request)
        form = await request.form()
        if rater is None:
            return message("Nothing to withdraw", "No answers from this browser are stored.")
        if not csrf_ok(request, form, request.cookies[SESSION_COOKIE]):
            return forbidden()
        await call_db(store.withdraw, rater.id)
        resp = message("You have withdrawn", "Every answer you gave has been deleted. Thank you for your time.",
                       "If you came from Prolific, please return the study there.")
        resp.delete_cookie(SESSION_COOKIE, path=root_path or "/")
        return resp

    # -- admin ------------------------------------------------------------------------------
    def admin_login_page(request: Request, status: int, error: str | None = None) -> Response:
        pre = request.cookies.get(PRE_COOKIE) or new_token(24)
        resp = page("admin_login.html", status=status, csrf=csrf_for(pre), error=error)
        set_cookie(resp, PRE_COOKIE, pre, max_age=3600)
        return resp

    @app.get("/admin")
    async def admin(request: Request) -> Response:
        if not is_admin(request):
            return admin_login_page(request, status=401)
        from tidekit.rating._status import study_status

        status = await run_in_threadpool(study_status, store)
        binding = request.cookies.get(ADMIN_COOKIE) or ""
        return page("admin.html", s=status, csrf=csrf_for(binding))

    @app.get("/admin/status.json")
    async def admin_json(request: Request) -> Response:
        if not is_admin(request):
            return JSONResponse({"error": "admin token required"}, status_code=401, headers=_HEADERS)
        from tidekit.rating._status import study_status

        status = await run_in_threadpool(study_status, store)
        return JSONResponse(status.model_dump(mode="json"), headers=_HEADERS)

    @app.post("/admin/login")
    async def admin_login(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form, request.cookies.get(PRE_COOKIE)):
            return forbidden()
        wait = admin_limit.allow(client_ip(request))
        if wait:
            return too_many(wait)
        if not check_token(sha256_hex(str(form.get("token") or "")), info.admin_token_hash):
            return admin_login_page(request, status=401, error="That token is not right.")
        resp = redirect("/admin")
        set_cookie(resp, ADMIN_COOKIE, admin_cookie_value, max_age=8 * 3600)
        return resp

    @app.post("/admin/logout")
    async def admin_logout(request: Request) -> Response:
        form = await request.form()
        if not is_admin(request) or not csrf_ok(request, form, request.cookies.get(ADMIN_COOKIE)):
            return forbidden()
        resp = redirect("/admin")
        resp.delete_cookie(ADMIN_COOKIE, path=root_path or "/")
        return resp

    return app


def serve(
    db: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    root_path: str = "",
    log_level: str = "warning",
) -> None:
    """Run the app with uvicorn until interrupted. Access logs stay off: request URLs carry the
    Prolific id, which must not land in log files."""
    import uvicorn

    app = create_app(db, config, root_path=root_path)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                    proxy_headers=bool(config and config.trust_proxy), server_header=False)
    finally:
        app.state.store.close()
