"""The rater-facing web app (FastAPI, server-rendered Jinja2 pages, no JavaScript).

Journey: ``/`` information and consent (nothing is stored before "I agree") -> ``/demographics``
-> ``/instructions`` -> ``/rate`` (one item a page, progress shown) -> ``/done`` (completion
code, Prolific return link). ``/withdraw`` deletes the rater's data at any point, from the
browser that consented. A returning rater resumes at their first unrated item (by session
cookie, or on another device by Prolific id *with* the matching Prolific ``SESSION_ID``; the id
alone is refused, so knowing someone's id does not give their session). ``/admin`` shows
progress to whoever holds the admin token.

Every form carries a CSRF token bound to the visitor's cookie; every field is validated on the
server (ASCII numbers in range, text without control characters, the item belongs to this
rater; anything but a plain URL-encoded form is refused); Jinja2 escapes all text; cookies are
HttpOnly and SameSite=Lax (``__Host-`` and Secure with ``secure_cookies``); session tokens are
random and new at consent; submissions, joins, admin log-ins and Bearer guesses are rate
limited; one client address holds at most a few unfinished slots, and abandoned ones are freed.
Every response carries security headers (no scripts, no framing, no referrer, so the Prolific
id in the URL stays here); request bodies are capped before they are read.

SQLite calls run on the event loop with no busy wait (``busy_timeout=0``): a statement that
meets another process's lock fails at once, and the call is retried after an ``asyncio.sleep``
for up to ``write_wait_s``, so a foreign lock never stalls the loop for longer than one
statement. A database error is a "not saved, try again" page (503) and a log line without the
statement's values.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
# and ``Request`` is imported inside create_app (FastAPI is a heavy import).

import asyncio
import logging
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from tidekit.rating._config import DEMOGRAPHICS, RatingServeConfig
from tidekit.rating._http import Guard, security_headers
from tidekit.rating._security import (
    RateLimiter,
    check_token,
    clean_text,
    client_address,
    keyed_hash,
    new_token,
    parse_networks,
    parse_small_int,
    sha256_hex,
    valid_external_id,
    valid_prolific_pid,
)
from tidekit.rating._store import (
    FACTORS,
    AlreadyStarted,
    ItemView,
    NotYourItem,
    RaterView,
    RatingStore,
    StudyFull,
    TooManyUnfinished,
)

__all__ = ["create_app", "serve"]

SESSION_COOKIE = "tk_session"
PRE_COOKIE = "tk_pre"
ADMIN_COOKIE = "tk_admin"
MAX_COMMENT = 2000
MAX_ID = 2**31 - 1  # assignment ids are 32-bit integers on PostgreSQL
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
FORM_TYPE = "application/x-www-form-urlencoded"
log = logging.getLogger("tidekit.rating")
_HERE = Path(__file__).parent
T = TypeVar("T")

# the question wording is the rating form's own; the factor ids (and their order) are the one
# list in tidekit.scenarios, via FACTORS, so a form question always matches a ratings column
_FACTOR_QUESTIONS = {
    "emotion_recognition": "Emotion recognition: does the reply recognise what the person feels?",
    "distress_normalization": "Distress normalization: does it make the person's reactions feel understandable?",
    "supportive_reflection": "Supportive reflection: does it reflect what matters and offer gentle support?",
}
QUESTIONS = (
    ("empathy", "Overall, how empathetic is this reply?",
     "How understood and supported would the person feel?"),
    *((factor, _FACTOR_QUESTIONS[factor], "") for factor in FACTORS),
)



def _sqlite_busy(exc: Any) -> bool:
    """Whether a SQLAlchemy error is SQLite's "database is locked/busy" (worth a retry)."""
    text = str(getattr(exc, "orig", exc))
    return "database is locked" in text or "database is busy" in text or "SQLITE_BUSY" in text


class BadForm(Exception):
    """A request body that is not a plain form of text fields."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@cache
def _templates() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
                              autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, auto_reload=False)


def create_app(db: str | Path | RatingStore, config: RatingServeConfig | None = None, root_path: str = "") -> Any:
    """The FastAPI app serving the study in ``db``.

    ``root_path`` is the URL prefix when served under a sub-path by a proxy (e.g. ``/study``).
    """
    import sqlalchemy as sa
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from markupsafe import Markup
    from starlette.concurrency import run_in_threadpool

    cfg = config or RatingServeConfig()
    # SQLite: statements never wait for a lock (busy_timeout 0); call_db retries instead (below)
    store = db if isinstance(db, RatingStore) else RatingStore.open(db, busy_timeout_s=0.0)
    info = store.info
    study = info.config
    submit_limit = RateLimiter(cfg.submit_rate, cfg.submit_burst)
    join_limit = RateLimiter(cfg.join_rate, cfg.join_burst)
    admin_limit = RateLimiter(0.2, 5)  # admin log-ins and wrong Bearer tokens, per client address
    proxies = parse_networks(cfg.trusted_proxies)
    release_after_s = cfg.slot_timeout_min * 60 or None
    secure = cfg.secure_cookies
    cookie_path = "/" if secure else (root_path or "/")  # __Host- cookies must have Path=/

    def cookie_name(base: str) -> str:
        return "__Host-" + base if secure else base

    session_cookie, pre_cookie, admin_cookie = (cookie_name(n) for n in (SESSION_COOKIE, PRE_COOKIE, ADMIN_COOKIE))

    # SQLite calls run on the event loop: a query takes a fraction of a millisecond, less than a
    # thread hop, and all of this process's writes are serialised by the loop itself. A statement
    # that meets another process's lock fails at once (busy_timeout 0, its transaction rolled
    # back) and the whole call is retried after a sleep that frees the loop, until write_wait_s.
    # PostgreSQL calls wait on the network and run in worker threads.
    inline_db = store.engine.dialect.name == "sqlite"

    async def call_db(fn: Callable[..., T], *args: Any) -> T:
        if not inline_db:
            return await run_in_threadpool(fn, *args)
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + cfg.write_wait_s, 0.002
        while True:
            try:
                return fn(*args)
            except sa.exc.OperationalError as exc:
                if not _sqlite_busy(exc) or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.1)

    app = FastAPI(title="tidekit rating", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    app.add_middleware(Guard, headers=security_headers(https=secure), max_body=cfg.max_body_kib * 1024)

    # -- helpers --------------------------------------------------------------------------
    def csrf_for(binding: str) -> str:
        return keyed_hash(info.secret, "csrf", binding)

    def client_ip(request: Request) -> str:
        peer = request.client.host if request.client else None
        if not cfg.trust_proxy:
            return peer or "unknown"
        return client_address(peer, request.headers.get("x-forwarded-for"), proxies)

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        base = {"title": study.title, "consent": study.consent, "root": root_path, "withdraw_link": False}
        html = _templates().get_template(name).render(**(base | ctx))
        return HTMLResponse(html, status_code=status)

    def message(heading: str, *paragraphs: str, status: int = 200, link: dict[str, str] | None = None,
                withdraw_link: bool = False) -> HTMLResponse:
        return page("message.html", status=status, heading=heading, paragraphs=paragraphs, link=link,
                    withdraw_link=withdraw_link)

    def redirect(path: str) -> RedirectResponse:
        return RedirectResponse(root_path + path, status_code=303)

    def set_cookie(resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path=cookie_path)

    def delete_cookie(resp: Response, name: str) -> None:
        resp.delete_cookie(name, path=cookie_path, secure=secure, httponly=True, samesite="lax")

    def forbidden(text: str = "This form has expired or did not come from this site. Go back, reload the page and try again.") -> HTMLResponse:
        return message("Request refused", text, status=403, link={"href": root_path + "/", "text": "Back to the study"})

    def too_many(wait: float) -> HTMLResponse:
        resp = message("Please slow down", "You are sending answers faster than anyone can read. "
                       "Wait a few seconds, then go back and submit again.", status=429)
        resp.headers["Retry-After"] = str(max(1, round(wait)))
        return resp

    def return_to_prolific() -> str:
        return "If you came from Prolific, please return the study there."

    async def read_form(request: Request) -> dict[str, str]:
        """The body as text fields (NUL bytes dropped); raises BadForm for anything else."""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
            raise BadForm(415, "This page only accepts answers sent from its own form.")
        form = await request.form()
        out: dict[str, str] = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise BadForm(400, "This page only accepts text answers.")
            out.setdefault(key, value.replace("\x00", ""))
        return out

    async def current(request: Request) -> RaterView | None:
        return await call_db(store.rater_for_session, request.cookies.get(session_cookie))

    def stage(rater: RaterView) -> str:
        if not rater.has_demographics:
            return "/demographics"
        return "/done" if rater.completed else "/rate"

    def csrf_ok(form: dict[str, str], binding: str | None) -> bool:
        return binding is not None and check_token(form.get("csrf"), csrf_for(binding))

    async def is_admin(request: Request) -> bool | float:
        """True for a valid admin session or Bearer token; a wrong Bearer token counts against the
        address's admin limit, and while that is spent the seconds to wait are returned."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            ip = client_ip(request)
            wait = admin_limit.blocked(ip)
            if wait:
                return wait
            if check_token(sha256_hex(auth[7:].strip()), info.admin_token_hash):
                return True
            admin_limit.allow(ip)
            return False
        return await call_db(store.admin_session_valid, request.cookies.get(admin_cookie))

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, exc: BadForm) -> Response:
        return message("Request refused", str(exc), status=exc.status,
                       link={"href": root_path + "/", "text": "Back to the study"})

    @app.exception_handler(sa.exc.DBAPIError)
    async def database_error(request: Request, exc: sa.exc.DBAPIError) -> Response:
        # the statement's values (a comment, a token hash) stay out of the log: engines hide
        # parameters, and only the error class and its first line are written, with no query string
        first_line = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else ""
        log.warning("database error on %s %s: %s: %s", request.method, request.url.path,
                    type(exc.orig).__name__, first_line)
        resp = message("Your answer was not saved", "The study's database is busy or unavailable for a moment, "
                       "so what you just sent was not saved. Wait a few seconds, then go back and submit again: "
                       "your earlier answers are safe.", status=503)
        resp.headers["Retry-After"] = "5"
        return resp

    # -- the rater journey --------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz() -> Response:
        # a stat and, unless a write committed in the last 2 s, a lock probe in a worker thread
        quick = store.quick_health()
        ok, detail = quick if quick is not None else await run_in_threadpool(store.health, 0.3)
        return JSONResponse({"status": "ok" if ok else "unavailable", "database": detail},
                            status_code=200 if ok else 503)

    @app.get("/")
    async def consent_page(request: Request) -> Response:
        rater = await current(request)
        if rater is not None:
            return redirect(stage(rater))
        pre = request.cookies.get(pre_cookie) or new_token(24)
        prolific = {k: valid_external_id(request.query_params.get(k)) for k in PROLIFIC_PARAMS}
        resp = page("consent.html", csrf=csrf_for(pre), prolific=prolific, per_rater=info.per_rater,
                    points=study.scale.points, error=None)
        set_cookie(resp, pre_cookie, pre, max_age=86400)
        return resp

    @app.post("/consent")
    async def consent(request: Request) -> Response:
        form = await read_form(request)
        pre = request.cookies.get(pre_cookie)
        if not csrf_ok(form, pre):
            return forbidden("Your browser must accept cookies from this site to take part. Reload the "
                             "first page and try again.")
        assert pre is not None
        if form.get("decision") != "agree":
            return message("Thank you", "You chose not to take part. Nothing about you was stored.",
                           return_to_prolific())
        prolific = {k: valid_external_id(form.get(k) or "") for k in PROLIFIC_PARAMS}
        if cfg.require_prolific and not valid_prolific_pid(prolific["PROLIFIC_PID"]):
            return message("Please start from Prolific", "This study takes part through Prolific. Open it from "
                           "the study's page on Prolific, so that your participation can be recorded and paid. "
                           "Nothing about you was stored.", status=403)
        if form.get("confirm") != "yes":
            return page("consent.html", status=400, csrf=csrf_for(pre), prolific=prolific,
                        per_rater=info.per_rater, points=study.scale.points,
                        error="Please tick the box to confirm that you agree, or choose 'I do not agree'.")
        ip = client_ip(request)
        wait = join_limit.allow(ip)
        if wait:
            return too_many(wait)
        try:
            _, token, _ = await call_db(lambda: store.register_rater(
                prolific["PROLIFIC_PID"], prolific["STUDY_ID"], prolific["SESSION_ID"], False, None,
                pre=pre, client=ip, max_unfinished=cfg.max_unfinished_per_client, release_after_s=release_after_s))
        except StudyFull:
            return message("This study is full", "Every place in this study has been taken, so no more "
                           "answers are needed. Nothing about you was stored. Thank you for your interest.",
                           return_to_prolific())
        except AlreadyStarted:
            return message("You have already started this study", "This Prolific ID has already started the "
                           "study in another browser. Please continue in that browser, or open the study again "
                           "from your Prolific page on this device. Nothing new was stored.",
                           "If neither works, contact the researchers"
                           + (f" ({study.consent.contact})" if study.consent.contact else "") + ".", status=409)
        except TooManyUnfinished:
            busy = message("Too many unfinished sessions", "Several people on your network have started this "
                           "study and not finished yet, so no new place can be opened from here just now. Please "
                           "finish a session you started, or try again later. Nothing about you was stored.",
                           status=429)
            busy.headers["Retry-After"] = "600"
            return busy
        rater = await call_db(store.rater_for_session, token)
        assert rater is not None
        resp = redirect(stage(rater))
        set_cookie(resp, session_cookie, token, max_age=30 * 86400)
        delete_cookie(resp, pre_cookie)
        return resp

    @app.get("/demographics")
    async def demographics_page(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return redirect("/")
        token = request.cookies[session_cookie]
        return page("demographics.html", csrf=csrf_for(token), questions=DEMOGRAPHICS, answers={}, errors=[],
                    withdraw_link=True)

    @app.post("/demographics")
    async def demographics(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return redirect("/")
        token = request.cookies[session_cookie]
        form = await read_form(request)
        if not csrf_ok(form, token):
            return forbidden()
        answers = {k: form.get(k) or "" for k in DEMOGRAPHICS}
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

    def shown_at(token: str, assignment_id: int, ticket: str) -> float | None:
        ts, _, sig = ticket.rpartition(".")
        ok = check_token(sig, keyed_hash(info.secret, "shown", f"{token}|{assignment_id}|{ts}")[:32])
        return float(ts) if ok else None

    empty_scales = Markup(_templates().get_template("_scales.html").render(
        questions=QUESTIONS, scale=study.scale, values={}))  # the same for every fresh page

    def rate_page(token: str, state: tuple[RaterView, ItemView | None, int], status: int = 200,
                  errors: list[str] | None = None, values: dict[str, str] | None = None,
                  targets: dict[str, str] | None = None) -> Response:
        _rater, item, done = state
        if item is None:
            return redirect("/done")
        return page("rate.html", status=status, csrf=csrf_for(token), item=item,
                    shown=shown_ticket(token, item.assignment_id), done=done, total=info.per_rater,
                    questions=QUESTIONS, scale=study.scale, values=values or {}, errors=errors or [],
                    error_targets=targets or {}, scales=None if values else empty_scales,
                    max_comment=MAX_COMMENT, withdraw_link=True)

    @app.get("/rate")
    async def rate_get(request: Request) -> Response:
        token = request.cookies.get(session_cookie) or ""
        state = await call_db(store.rating_page, token)
        if state is None:
            return redirect("/")
        if not state[0].has_demographics:
            return redirect("/demographics")
        return rate_page(token, state)

    def admit(token: str) -> RaterView | str:
        """The rater who may submit now, or why not."""
        rater = store.rater_for_session(token)
        if rater is None:
            return "no-session"
        if not rater.has_demographics:
            return "no-demographics"
        wait = submit_limit.allow(rater.id)
        return f"wait:{wait}" if wait else rater

    def store_rating(rater: RaterView, assignment_id: int, scores: dict[str, int], comment: str,
                     shown: float | None) -> str:
        try:
            store.submit_rating(rater, assignment_id, scores, comment, shown_at=shown)
        except NotYourItem:
            return "not-yours"
        return "ok"

    def submit(token: str, assignment_id: int, scores: dict[str, int], comment: str, shown: float | None) -> str:
        admitted = admit(token)
        return admitted if isinstance(admitted, str) else store_rating(admitted, assignment_id, scores, comment,
                                                                       shown)

    @app.post("/rate")
    async def rate_post(request: Request) -> Response:
        token = request.cookies.get(session_cookie) or ""
        form = await read_form(request)
        if not token or not csrf_ok(form, token):
            return forbidden()
        values = {k: form.get(k) or "" for k in (*(q[0] for q in QUESTIONS), "comment", "assignment_id")}
        assignment_id = parse_small_int(values["assignment_id"], 0, MAX_ID)
        if assignment_id is None:
            return forbidden("This answer does not belong to an item of yours.")
        errors, scores, targets = [], {}, {}
        for field, question, _ in QUESTIONS:
            score = parse_small_int(values[field], 1, study.scale.points)
            if score is not None:
                scores[field] = score
            else:
                values[field] = ""  # not shown back as if it were a choice
                errors.append(f"{question.split(':')[0]}: choose a number from 1 to {study.scale.points}.")
                targets[errors[-1]] = f"{field}-1"  # the summary links each problem to its scale
        comment = clean_text(values["comment"])
        if len(comment) > MAX_COMMENT:
            errors.append(f"The comment is longer than {MAX_COMMENT} characters; please shorten it.")
            targets[errors[-1]] = "comment"
        if errors:
            state = await call_db(store.rating_page, token)
            if state is None:
                return redirect("/")
            return rate_page(token, state, status=400, errors=errors, values=values, targets=targets)
        shown = shown_at(token, assignment_id, form.get("shown") or "")
        if inline_db:  # admit once, so retries while another process holds the lock spend no tokens
            admitted = await call_db(admit, token)
            outcome = admitted if isinstance(admitted, str) else await call_db(
                store_rating, admitted, assignment_id, scores, comment, shown)
        else:  # one trip to a worker thread
            outcome = await call_db(submit, token, assignment_id, scores, comment, shown)
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

    def withdraw_elsewhere() -> HTMLResponse:
        contact = f" ({study.consent.contact})" if study.consent.contact else ""
        return message("Withdraw from the browser where you agreed",
                       "To protect your answers, they can only be deleted from the browser where you agreed to "
                       "take part. Open the study there and use the withdraw link at the bottom of the page, or "
                       f"ask the researchers{contact} to delete them.", return_to_prolific(), status=403,
                       link={"href": root_path + "/", "text": "Go back to the study"})

    @app.get("/withdraw")
    async def withdraw_page(request: Request) -> Response:
        rater = await current(request)
        if rater is None:
            return message("Nothing to withdraw", "No answers from this browser are stored.")
        if not rater.consented_here:
            resp = withdraw_elsewhere()
            resp.status_code = 200
            return resp
        return page("withdraw.html", csrf=csrf_for(request.cookies[session_cookie]))

    @app.post("/withdraw")
    async def withdraw(request: Request) -> Response:
        rater = await current(request)
        form = await read_form(request)
        if rater is None:
            return message("Nothing to withdraw", "No answers from this browser are stored.")
        if not csrf_ok(form, request.cookies[session_cookie]):
            return forbidden()
        if not rater.consented_here:
            return withdraw_elsewhere()
        await call_db(store.withdraw, rater.id)
        resp = message("You have withdrawn", "Every answer you gave has been deleted. Thank you for your time.",
                       return_to_prolific())
        delete_cookie(resp, session_cookie)
        return resp

    # -- admin ------------------------------------------------------------------------------
    def admin_login_page(request: Request, status: int, error: str | None = None) -> Response:
        pre = request.cookies.get(pre_cookie) or new_token(24)
        resp = page("admin_login.html", status=status, csrf=csrf_for(pre), error=error)
        set_cookie(resp, pre_cookie, pre, max_age=3600)
        return resp

    async def status_now() -> Any:
        from tidekit.rating._status import study_status

        return await run_in_threadpool(study_status, store, cfg.slot_timeout_min or 30.0)

    @app.get("/admin")
    async def admin(request: Request) -> Response:
        allowed = await is_admin(request)
        if allowed is not True:
            return too_many(allowed) if allowed else admin_login_page(request, status=401)
        binding = request.cookies.get(admin_cookie) or ""
        return page("admin.html", s=await status_now(), csrf=csrf_for(binding))

    @app.get("/admin/status.json")
    async def admin_json(request: Request) -> Response:
        allowed = await is_admin(request)
        if allowed is not True:
            if allowed:
                return JSONResponse({"error": "too many wrong tokens; wait"}, status_code=429,
                                    headers={"Retry-After": str(max(1, round(allowed)))})
            return JSONResponse({"error": "admin token required"}, status_code=401)
        return JSONResponse((await status_now()).model_dump(mode="json"))

    @app.post("/admin/login")
    async def admin_login(request: Request) -> Response:
        form = await read_form(request)
        if not csrf_ok(form, request.cookies.get(pre_cookie)):
            return forbidden()
        wait = admin_limit.allow(client_ip(request))
        if wait:
            return too_many(wait)
        if not check_token(sha256_hex(form.get("token") or ""), info.admin_token_hash):
            return admin_login_page(request, status=401, error="That token is not right.")
        session = await call_db(store.new_admin_session, cfg.admin_session_hours)
        resp = redirect("/admin")
        set_cookie(resp, admin_cookie, session, max_age=round(cfg.admin_session_hours * 3600))
        delete_cookie(resp, pre_cookie)
        return resp

    @app.post("/admin/logout")
    async def admin_logout(request: Request) -> Response:
        form = await read_form(request)
        session = request.cookies.get(admin_cookie)
        if await is_admin(request) is not True or not session or not csrf_ok(form, session):
            return forbidden()
        await call_db(store.end_admin_session, session)
        resp = redirect("/admin")
        delete_cookie(resp, admin_cookie)
        return resp

    return app


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
    import os
    import threading
    import time

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
