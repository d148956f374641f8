"""The rater's journey: consent, demographics, instructions, one item a page, done, withdraw.

``/`` information and consent (nothing is stored before "I agree") -> ``/demographics`` ->
``/instructions`` -> ``/rate`` (one item a page, progress shown) -> ``/done`` (completion code,
Prolific return link). ``/withdraw`` deletes the rater's data from the browser that consented.
Every route is a module-level function reaching the app's state with ``state_of(request)``;
every POST checks the CSRF token bound to the visitor's cookie before it reads anything else.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tidekit.rating._config import DEMOGRAPHICS
from tidekit.rating._outcomes import Outcome, Submission, admit, store_rating, submit
from tidekit.rating._pages import MAX_COMMENT, QUESTIONS, RETURN_TO_PROLIFIC, read_form
from tidekit.rating._security import (
    clean_text,
    new_token,
    parse_small_int,
    valid_external_id,
    valid_prolific_pid,
)
from tidekit.rating._state import AppState, state_of
from tidekit.rating._store import AlreadyStarted, ItemView, RaterView, StudyFull, TooManyUnfinished

__all__ = ["MAX_ID", "PROLIFIC_PARAMS", "router"]

MAX_ID = 2**31 - 1  # assignment ids are 32-bit integers on PostgreSQL
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
NOT_YOURS = "This answer does not belong to an item of yours."
router = APIRouter()


def stage(rater: RaterView) -> str:
    """The page a rater continues at."""
    if not rater.has_demographics:
        return "/demographics"
    return "/done" if rater.completed else "/rate"


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """Whether the database takes writes: a stat and, unless a write committed in the last 2 s, a
    lock probe in a worker thread."""
    store = state_of(request).store
    quick = store.quick_health()
    ok, detail = quick if quick is not None else await run_in_threadpool(store.health, 0.3)
    return JSONResponse({"status": "ok" if ok else "unavailable", "database": detail},
                        status_code=200 if ok else 503)


# -- consent ------------------------------------------------------------------------------------
def consent_form(st: AppState, pre: str, prolific: dict[str, str | None], status: int = 200,
                 error: str | None = None) -> HTMLResponse:
    return st.pages.page("consent.html", status=status, csrf=st.csrf_for(pre), prolific=prolific,
                         per_rater=st.info.per_rater, points=st.study.scale.points, error=error)


@router.get("/")
async def consent_page(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    if rater is not None:
        return st.pages.redirect(stage(rater))
    pre = request.cookies.get(st.pre_cookie) or new_token(24)
    prolific = {k: valid_external_id(request.query_params.get(k)) for k in PROLIFIC_PARAMS}
    resp = consent_form(st, pre, prolific)
    st.pages.set_cookie(resp, st.pre_cookie, pre, max_age=86400)
    return resp


@router.post("/consent")
async def consent(request: Request) -> Response:
    st = state_of(request)
    pages = st.pages
    form = await read_form(request)
    pre = request.cookies.get(st.pre_cookie)
    if not st.csrf_ok(form, pre):
        return pages.forbidden("Your browser must accept cookies from this site to take part. Reload the "
                               "first page and try again.")
    assert pre is not None
    if form.get("decision") != "agree":
        return pages.message("Thank you", "You chose not to take part. Nothing about you was stored.",
                             RETURN_TO_PROLIFIC)
    prolific = {k: valid_external_id(form.get(k) or "") for k in PROLIFIC_PARAMS}
    if st.cfg.require_prolific and not valid_prolific_pid(prolific["PROLIFIC_PID"]):
        return pages.message("Please start from Prolific", "This study takes part through Prolific. Open it from "
                             "the study's page on Prolific, so that your participation can be recorded and paid. "
                             "Nothing about you was stored.", status=403)
    if form.get("confirm") != "yes":
        return consent_form(st, pre, prolific, status=400,
                            error="Please tick the box to confirm that you agree, or choose 'I do not agree'.")
    ip = st.client_ip(request)
    wait = st.join_limit.allow(ip)
    if wait:
        return pages.too_many(wait)
    registered = await register(st, prolific, pre, ip)
    if isinstance(registered, Response):
        return registered
    rater = await st.call_db(st.store.rater_for_session, registered)
    assert rater is not None
    resp = pages.redirect(stage(rater))
    pages.set_cookie(resp, st.session_cookie, registered, max_age=30 * 86400)
    pages.delete_cookie(resp, st.pre_cookie)
    return resp


async def register(st: AppState, prolific: dict[str, str | None], pre: str, ip: str) -> str | Response:
    """The new (or resumed) rater's session token, or the page saying why there is none."""
    pages = st.pages
    try:
        _, token, _ = await st.call_db(lambda: st.store.register_rater(
            prolific["PROLIFIC_PID"], prolific["STUDY_ID"], prolific["SESSION_ID"], False, None,
            pre=pre, client=ip, max_unfinished=st.cfg.max_unfinished_per_client,
            release_after_s=st.release_after_s))
    except StudyFull:
        return pages.message("This study is full", "Every place in this study has been taken, so no more "
                             "answers are needed. Nothing about you was stored. Thank you for your interest.",
                             RETURN_TO_PROLIFIC)
    except AlreadyStarted:
        return pages.message("You have already started this study", "This Prolific ID has already started the "
                             "study in another browser. Please continue in that browser, or open the study again "
                             "from your Prolific page on this device. Nothing new was stored.",
                             "If neither works, contact the researchers" + pages.contact_suffix() + ".",
                             status=409)
    except TooManyUnfinished:
        busy = pages.message("Too many unfinished sessions", "Several people on your network have started this "
                             "study and not finished yet, so no new place can be opened from here just now. Please "
                             "finish a session you started, or try again later. Nothing about you was stored.",
                             status=429)
        busy.headers["Retry-After"] = "600"
        return busy
    return token


# -- demographics and instructions ----------------------------------------------------------------
@router.get("/demographics")
async def demographics_page(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    if rater is None:
        return st.pages.redirect("/")
    token = request.cookies[st.session_cookie]
    return st.pages.page("demographics.html", csrf=st.csrf_for(token), questions=DEMOGRAPHICS, answers={},
                         errors=[], withdraw_link=True)


@router.post("/demographics")
async def demographics(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    if rater is None:
        return st.pages.redirect("/")
    token = request.cookies[st.session_cookie]
    form = await read_form(request)
    if not st.csrf_ok(form, token):
        return st.pages.forbidden()
    answers = {k: form.get(k) or "" for k in DEMOGRAPHICS}
    errors = [question for k, (question, options) in DEMOGRAPHICS.items()
              if answers[k] not in {v for v, _ in options}]
    if errors:
        return st.pages.page("demographics.html", status=400, csrf=st.csrf_for(token), questions=DEMOGRAPHICS,
                             answers=answers, errors=errors, withdraw_link=True)
    await st.call_db(st.store.save_demographics, rater.id, answers)
    return st.pages.redirect("/instructions")


@router.get("/instructions")
async def instructions(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    if rater is None:
        return st.pages.redirect("/")
    return st.pages.page("instructions.html", scale=st.study.scale, withdraw_link=True)


# -- rating -----------------------------------------------------------------------------------
def rate_page(st: AppState, token: str, state: tuple[RaterView, ItemView | None, int], status: int = 200,
              errors: list[str] | None = None, values: dict[str, str] | None = None,
              targets: dict[str, str] | None = None) -> Response:
    """The rater's next item (or /done when none is left), with ``errors`` and the answers given."""
    _rater, item, done = state
    if item is None:
        return st.pages.redirect("/done")
    return st.pages.page("rate.html", status=status, csrf=st.csrf_for(token), item=item,
                         shown=st.shown_ticket(token, item.assignment_id), done=done, total=st.info.per_rater,
                         questions=QUESTIONS, scale=st.study.scale, values=values or {}, errors=errors or [],
                         error_targets=targets or {}, scales=None if values else st.pages.empty_scales,
                         max_comment=MAX_COMMENT, withdraw_link=True)


@router.get("/rate")
async def rate_get(request: Request) -> Response:
    st = state_of(request)
    token = request.cookies.get(st.session_cookie) or ""
    state = await st.call_db(st.store.rating_page, token)
    if state is None:
        return st.pages.redirect("/")
    if not state[0].has_demographics:
        return st.pages.redirect("/demographics")
    return rate_page(st, token, state)


def check_scores(values: dict[str, str], points: int) -> tuple[dict[str, int], list[str], dict[str, str]]:
    """The scores of a rating form, its problems, and the field each problem links to. A score that
    is not a choice is blanked in ``values`` (not shown back as if it were one)."""
    errors: list[str] = []
    scores: dict[str, int] = {}
    targets: dict[str, str] = {}
    for field, question, _ in QUESTIONS:
        score = parse_small_int(values[field], 1, points)
        if score is not None:
            scores[field] = score
        else:
            values[field] = ""
            errors.append(f"{question.split(':')[0]}: choose a number from 1 to {points}.")
            targets[errors[-1]] = f"{field}-1"  # the summary links each problem to its scale
    if len(clean_text(values["comment"])) > MAX_COMMENT:
        errors.append(f"The comment is longer than {MAX_COMMENT} characters; please shorten it.")
        targets[errors[-1]] = "comment"
    return scores, errors, targets


@router.post("/rate")
async def rate_post(request: Request) -> Response:
    st = state_of(request)
    token = request.cookies.get(st.session_cookie) or ""
    form = await read_form(request)
    if not token or not st.csrf_ok(form, token):
        return st.pages.forbidden()
    values = {k: form.get(k) or "" for k in (*(q[0] for q in QUESTIONS), "comment", "assignment_id")}
    assignment_id = parse_small_int(values["assignment_id"], 0, MAX_ID)
    if assignment_id is None:
        return st.pages.forbidden(NOT_YOURS)
    scores, errors, targets = check_scores(values, st.study.scale.points)
    if errors:
        state = await st.call_db(st.store.rating_page, token)
        if state is None:
            return st.pages.redirect("/")
        return rate_page(st, token, state, status=400, errors=errors, values=values, targets=targets)
    comment = clean_text(values["comment"])
    shown = st.shown_at(token, assignment_id, form.get("shown") or "")
    if st.inline_db:  # admit once, so retries while another process holds the lock spend no tokens
        admitted = await st.call_db(admit, st.store, st.submit_limit, token)
        result = admitted if isinstance(admitted, Submission) else await st.call_db(
            store_rating, st.store, admitted, assignment_id, scores, comment, shown)
    else:  # one trip to a worker thread
        result = await st.call_db(submit, st.store, st.submit_limit, token, assignment_id, scores, comment, shown)
    return submission_page(st, result)


def submission_page(st: AppState, result: Submission) -> Response:
    """The answer to a rating that passed the form's checks."""
    pages = st.pages
    match result.outcome:
        case Outcome.NO_SESSION:
            return pages.message("Session expired", "We could not find your session. Go back to the first page "
                                 "to continue where you stopped.", status=401, link=pages.back_link("Continue"))
        case Outcome.NO_DEMOGRAPHICS:
            return pages.redirect("/demographics")
        case Outcome.SLOW_DOWN:
            return pages.too_many(result.wait_s)
        case Outcome.NOT_YOURS:
            return pages.forbidden(NOT_YOURS)
        case Outcome.STORED:
            return pages.redirect("/rate")


# -- the end -----------------------------------------------------------------------------------
@router.get("/done")
async def done(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    if rater is None:
        return st.pages.redirect("/")
    if not rater.completed:
        return st.pages.redirect(stage(rater))
    url = st.study.completion_url.format(code=st.info.completion_code) if rater.from_prolific else None
    return st.pages.page("done.html", code=st.info.completion_code, prolific_url=url)


def withdraw_elsewhere(st: AppState, status: int = 403) -> HTMLResponse:
    """Only the browser that consented may delete the answers (a resumed device may not)."""
    return st.pages.message(
        "Withdraw from the browser where you agreed",
        "To protect your answers, they can only be deleted from the browser where you agreed to take part. "
        "Open the study there and use the withdraw link at the bottom of the page, or ask the researchers"
        f"{st.pages.contact_suffix()} to delete them.", RETURN_TO_PROLIFIC, status=status,
        link=st.pages.back_link("Go back to the study"))


@router.get("/withdraw")
async def withdraw_page(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    if rater is None:
        return st.pages.message("Nothing to withdraw", "No answers from this browser are stored.")
    if not rater.consented_here:
        return withdraw_elsewhere(st, status=200)
    return st.pages.page("withdraw.html", csrf=st.csrf_for(request.cookies[st.session_cookie]))


@router.post("/withdraw")
async def withdraw(request: Request) -> Response:
    st = state_of(request)
    rater = await st.current(request)
    form = await read_form(request)
    if rater is None:
        return st.pages.message("Nothing to withdraw", "No answers from this browser are stored.")
    if not st.csrf_ok(form, request.cookies[st.session_cookie]):
        return st.pages.forbidden()
    if not rater.consented_here:
        return withdraw_elsewhere(st)
    await st.call_db(st.store.withdraw, rater.id)
    resp = st.pages.message("You have withdrawn", "Every answer you gave has been deleted. Thank you for your "
                            "time.", RETURN_TO_PROLIFIC)
    st.pages.delete_cookie(resp, st.session_cookie)
    return resp
