"""The rating app's state: one object, built once by ``create_app``, holding what every route needs.

Routes are module-level functions; each reaches the state with :func:`state_of` (it lives at
``request.app.state.rating``), so what a route depends on is named here rather than captured
from an enclosing function: the store and the study's fixed facts, the serve settings, the
pages, the rate limiters, the cookie names and the clock that stamps item pages.

SQLite calls run on the event loop with no busy wait (``busy_timeout=0``): a query takes a
fraction of a millisecond, less than a thread hop, and this process's writes are serialised by
the loop itself. A statement that meets another process's lock fails at once (its transaction
rolled back) and :meth:`AppState.call_db` retries the whole call after an ``asyncio.sleep`` that
frees the loop, until ``write_wait_s``. PostgreSQL calls wait on the network and run in worker
threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tidekit.rating._config import RatingServeConfig, RatingStudyConfig
from tidekit.rating._pages import Pages
from tidekit.rating._security import (
    Network,
    RateLimiter,
    check_token,
    client_address,
    keyed_hash,
    parse_networks,
)
from tidekit.rating._store import RaterView, RatingStore, StudyInfo

__all__ = ["ADMIN_COOKIE", "PRE_COOKIE", "SESSION_COOKIE", "AppState", "sqlite_busy", "state_of"]

SESSION_COOKIE = "tk_session"
PRE_COOKIE = "tk_pre"
ADMIN_COOKIE = "tk_admin"
T = TypeVar("T")


def sqlite_busy(exc: Any) -> bool:
    """Whether a SQLAlchemy error is SQLite's "database is locked/busy" (worth a retry)."""
    text = str(getattr(exc, "orig", exc))
    return "database is locked" in text or "database is busy" in text or "SQLITE_BUSY" in text


@dataclass(frozen=True)
class AppState:
    """Everything the routes share; the limiters are the only parts that change (in memory)."""

    store: RatingStore
    info: StudyInfo
    cfg: RatingServeConfig
    pages: Pages
    submit_limit: RateLimiter  # per rater
    join_limit: RateLimiter  # per client address
    admin_limit: RateLimiter  # admin log-ins and wrong Bearer tokens, per client address
    proxies: list[Network]
    session_cookie: str
    pre_cookie: str
    admin_cookie: str
    inline_db: bool  # SQLite: calls run on the event loop (see the module docstring)
    clock: Callable[[], float] = field(default=time.time)  # stamps item pages (the rating's duration)

    @classmethod
    def build(cls, store: RatingStore, cfg: RatingServeConfig, root_path: str = "") -> AppState:
        """The state for ``store`` served with ``cfg`` under the URL prefix ``root_path``."""
        info = store.info
        pages = Pages.build(info.config, root_path, cfg.secure_cookies)
        return cls(store=store, info=info, cfg=cfg, pages=pages,
                   submit_limit=RateLimiter(cfg.submit_rate, cfg.submit_burst),
                   join_limit=RateLimiter(cfg.join_rate, cfg.join_burst),
                   admin_limit=RateLimiter(0.2, 5),
                   proxies=parse_networks(cfg.trusted_proxies),
                   session_cookie=pages.cookie_name(SESSION_COOKIE), pre_cookie=pages.cookie_name(PRE_COOKIE),
                   admin_cookie=pages.cookie_name(ADMIN_COOKIE),
                   inline_db=store.engine.dialect.name == "sqlite")

    @property
    def study(self) -> RatingStudyConfig:
        return self.info.config

    @property
    def release_after_s(self) -> float | None:
        """Free a slot that rated nothing for this long when the study is full (None: never)."""
        return self.cfg.slot_timeout_min * 60 or None

    async def call_db(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``: on the loop with lock retries (SQLite), else in a worker thread."""
        if not self.inline_db:
            return await run_in_threadpool(fn, *args)
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.cfg.write_wait_s, 0.002
        while True:
            try:
                return fn(*args)
            except sa.exc.OperationalError as exc:
                if not sqlite_busy(exc) or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.1)

    async def current(self, request: Request) -> RaterView | None:
        """The rater behind the request's session cookie."""
        return await self.call_db(self.store.rater_for_session, request.cookies.get(self.session_cookie))

    # -- tokens ---------------------------------------------------------------------------
    def csrf_for(self, binding: str) -> str:
        """The CSRF token of forms served to the holder of the cookie ``binding``."""
        return keyed_hash(self.info.secret, "csrf", binding)

    def csrf_ok(self, form: dict[str, str], binding: str | None) -> bool:
        return binding is not None and check_token(form.get("csrf"), self.csrf_for(binding))

    def client_ip(self, request: Request) -> str:
        """The client's address: the peer, or behind trusted proxies the X-Forwarded-For hop."""
        peer = request.client.host if request.client else None
        if not self.cfg.trust_proxy:
            return peer or "unknown"
        return client_address(peer, request.headers.get("x-forwarded-for"), self.proxies)

    def shown_ticket(self, token: str, assignment_id: int) -> str:
        """When the page was served, signed: the rating's duration without a write per page view."""
        ts = f"{self.clock():.3f}"
        return f"{ts}.{keyed_hash(self.info.secret, 'shown', f'{token}|{assignment_id}|{ts}')[:32]}"

    def shown_at(self, token: str, assignment_id: int, ticket: str) -> float | None:
        """The time a :meth:`shown_ticket` stamped, or None for a ticket not signed here."""
        ts, _, sig = ticket.rpartition(".")
        ok = check_token(sig, keyed_hash(self.info.secret, "shown", f"{token}|{assignment_id}|{ts}")[:32])
        return float(ts) if ok else None


def state_of(request: Request) -> AppState:
    """The app state of the app serving ``request`` (set by ``create_app``)."""
    state: AppState = request.app.state.rating
    return state
