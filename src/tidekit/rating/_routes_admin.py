"""The admin pages: progress for whoever holds the admin token.

``/admin`` (HTML) and ``/admin/status.json`` accept a signed-in admin session (a random token
from ``/admin/login``, ended by ``/admin/logout``) or ``Authorization: Bearer <admin token>``.
Log-ins and wrong Bearer tokens are rate limited per client address.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tidekit.rating._outcomes import Access, AdminAccess
from tidekit.rating._pages import read_form
from tidekit.rating._security import check_token, new_token, sha256_hex
from tidekit.rating._state import AppState, state_of
from tidekit.rating._status import StudyStatus, study_status

__all__ = ["check_admin", "router"]

router = APIRouter()


async def check_admin(st: AppState, request: Request) -> AdminAccess:
    """GRANTED for a valid admin session or Bearer token. A wrong Bearer token counts against the
    address's admin limit; while that is spent the answer is SLOW_DOWN with the seconds to wait."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        ip = st.client_ip(request)
        wait = st.admin_limit.blocked(ip)
        if wait:
            return AdminAccess(Access.SLOW_DOWN, wait)
        if check_token(sha256_hex(auth[7:].strip()), st.info.admin_token_hash):
            return AdminAccess(Access.GRANTED)
        st.admin_limit.allow(ip)
        return AdminAccess(Access.DENIED)
    valid = await st.call_db(st.store.admin_session_valid, request.cookies.get(st.admin_cookie))
    return AdminAccess(Access.GRANTED if valid else Access.DENIED)


def login_page(st: AppState, request: Request, status: int, error: str | None = None) -> Response:
    pre = request.cookies.get(st.pre_cookie) or new_token(24)
    resp = st.pages.page("admin_login.html", status=status, csrf=st.csrf_for(pre), error=error)
    st.pages.set_cookie(resp, st.pre_cookie, pre, max_age=3600)
    return resp


async def status_now(st: AppState) -> StudyStatus:
    return await run_in_threadpool(study_status, st.store, st.cfg.slot_timeout_min or 30.0)


@router.get("/admin")
async def admin(request: Request) -> Response:
    st = state_of(request)
    allowed = await check_admin(st, request)
    if allowed.access is Access.SLOW_DOWN:
        return st.pages.too_many(allowed.wait_s)
    if allowed.access is Access.DENIED:
        return login_page(st, request, status=401)
    binding = request.cookies.get(st.admin_cookie) or ""
    return st.pages.page("admin.html", s=await status_now(st), csrf=st.csrf_for(binding))


@router.get("/admin/status.json")
async def admin_json(request: Request) -> Response:
    st = state_of(request)
    allowed = await check_admin(st, request)
    if allowed.access is Access.SLOW_DOWN:
        return JSONResponse({"error": "too many wrong tokens; wait"}, status_code=429,
                            headers={"Retry-After": str(max(1, round(allowed.wait_s)))})
    if allowed.access is Access.DENIED:
        return JSONResponse({"error": "admin token required"}, status_code=401)
    return JSONResponse((await status_now(st)).model_dump(mode="json"))


@router.post("/admin/login")
async def admin_login(request: Request) -> Response:
    st = state_of(request)
    form = await read_form(request)
    if not st.csrf_ok(form, request.cookies.get(st.pre_cookie)):
        return st.pages.forbidden()
    wait = st.admin_limit.allow(st.client_ip(request))
    if wait:
        return st.pages.too_many(wait)
    if not check_token(sha256_hex(form.get("token") or ""), st.info.admin_token_hash):
        return login_page(st, request, status=401, error="That token is not right.")
    session = await st.call_db(st.store.new_admin_session, st.cfg.admin_session_hours)
    resp = st.pages.redirect("/admin")
    st.pages.set_cookie(resp, st.admin_cookie, session, max_age=round(st.cfg.admin_session_hours * 3600))
    st.pages.delete_cookie(resp, st.pre_cookie)
    return resp


@router.post("/admin/logout")
async def admin_logout(request: Request) -> Response:
    st = state_of(request)
    form = await read_form(request)
    session = request.cookies.get(st.admin_cookie)
    allowed = await check_admin(st, request)
    if allowed.access is not Access.GRANTED or not session or not st.csrf_ok(form, session):
        return st.pages.forbidden()
    await st.call_db(st.store.end_admin_session, session)
    resp = st.pages.redirect("/admin")
    st.pages.delete_cookie(resp, st.admin_cookie)
    return resp
