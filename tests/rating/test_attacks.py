"""Red-team attacks on a real ``tidekit rate serve`` (a subprocess on 127.0.0.1), each scripted as
a test: session takeover by Prolific id, odd input, slot exhaustion, a foreign SQLite write lock,
forged proxy headers, admin sessions and Bearer guessing, CSV formulas, oversized bodies and
security headers. PostgreSQL runs the NUL-byte and 2^31-id attacks too."""

from __future__ import annotations

import contextlib
import csv
import html
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tidekit.rating import DEMOGRAPHICS, PREFER_NOT, RatingStore, export_ratings, rating_frame

pytestmark = pytest.mark.slow
RELAXED = ("submit_rate=1000", "submit_burst=1000", "join_rate=1000", "join_burst=1000")
ANSWER = {"empathy": "5", "emotion_recognition": "4", "distress_normalization": "6", "supportive_reflection": "3"}
PID = "5f1a2b3c4d5e6f7a8b9c0d1e"
Serve = Callable[..., contextlib.AbstractContextManager[tuple[str, Any]]]


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field on the page"
    return html.unescape(match.group(1))


class Rater:
    """One browser: a cookie jar and an address (sent as X-Forwarded-For when given)."""

    def __init__(self, base: str, forwarded_for: str | None = None) -> None:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=30, headers=headers)

    def consent(self, query: str = "") -> httpx.Response:
        page = self.http.get("/" + query)
        assert page.status_code == 200, page.text
        data = {"csrf": field(page.text, "csrf"), "decision": "agree", "confirm": "yes"}
        for key in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
            if f'name="{key}"' in page.text:
                data[key] = field(page.text, key)
        return self.http.post("/consent", data=data)

    def demographics(self) -> None:
        page = self.http.get("/demographics")
        answers = {k: options[0][0] for k, (_, options) in DEMOGRAPHICS.items()} | {"gender": PREFER_NOT}
        resp = self.http.post("/demographics", data={"csrf": field(page.text, "csrf"), **answers})
        assert resp.status_code == 303, resp.text

    def form(self) -> dict[str, str]:
        page = self.http.get("/rate")
        assert page.status_code == 200, page.status_code
        return {"csrf": field(page.text, "csrf"), "assignment_id": field(page.text, "assignment_id"),
                "shown": field(page.text, "shown"), **ANSWER}

    def start(self, query: str = "") -> Rater:
        assert self.consent(query).status_code == 303
        self.demographics()
        return self


@pytest.fixture
def sqlite_study(tmp_path: Path, make_study: Callable[..., tuple[str, str]]) -> tuple[str, str]:
    return make_study(str(tmp_path / "ratings.db"))


def test_a_prolific_id_alone_never_moves_a_session(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        victim = Rater(base).start(f"?PROLIFIC_PID={PID}&STUDY_ID=S1&SESSION_ID=SESS1")
        assert victim.http.post("/rate", data=victim.form() | {"comment": "mine"}).status_code == 303
        # the attacker knows the Prolific id, not the Prolific session
        for query in (f"?PROLIFIC_PID={PID}", f"?PROLIFIC_PID={PID}&STUDY_ID=S1&SESSION_ID=GUESS"):
            attacker = Rater(base)
            resp = attacker.consent(query)
            assert resp.status_code == 409 and "another browser" in resp.text
            assert attacker.http.get("/rate").status_code == 303  # no session: back to the start
            assert attacker.http.get("/withdraw").status_code == 200
            assert "Nothing to withdraw" in attacker.http.get("/withdraw").text
        assert victim.http.get("/rate").status_code == 200  # still signed in
        # the same participant on a second device, from the Prolific link (same SESSION_ID): resumes
        phone = Rater(base)
        assert phone.consent(f"?PROLIFIC_PID={PID}&STUDY_ID=S1&SESSION_ID=SESS1").headers["location"] == "/rate"
        assert "Item 2 of 7" in phone.http.get("/rate").text
        assert victim.http.get("/rate").status_code == 200  # neither device is logged out
        # ...but withdrawal (deleting the data) only from the browser that consented
        page = phone.http.get("/withdraw")
        assert "where you agreed" in page.text and 'name="csrf"' not in page.text
        csrf = field(victim.http.get("/withdraw").text, "csrf")
        assert phone.http.post("/withdraw", data={"csrf": csrf}).status_code == 403
    store = RatingStore.open(db)
    try:
        assert list(rating_frame(store)["comment"]) == ["mine"]
    finally:
        store.close()


def test_the_session_token_is_fresh_at_consent(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        victim, planted = Rater(base), Rater(base)
        page = victim.http.get("/")
        planted.http.cookies.set("tk_pre", victim.http.cookies["tk_pre"])  # a cookie the attacker planted
        data = {"csrf": field(page.text, "csrf"), "decision": "agree", "confirm": "yes"}
        assert victim.http.post("/consent", data=data).status_code == 303
        assert planted.http.post("/consent", data=data).status_code == 303
        token = victim.http.cookies["tk_session"]
        assert token != planted.http.cookies.get("tk_session")
        assert victim.http.get("/demographics").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_odd_input_is_refused_and_keeps_the_answer(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                                                   make_study: Callable[..., tuple[str, str]],
                                                   serve_study: Serve) -> None:
    url = str(tmp_path / "ratings.db") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    db, _ = make_study(url)
    secret = "SECRET-COMMENT-7781"
    with serve_study(db, *RELAXED) as (base, proc):
        rater = Rater(base).start()
        form = rater.form()
        attempts = [{"assignment_id": "\u00b2"}, {"empathy": "\u00b2"}, {"empathy": "\u0665"},
                    {"assignment_id": str(10**30)}, {"assignment_id": str(2**31)}, {"assignment_id": "0x1"}]
        for bad in attempts:
            resp = rater.http.post("/rate", data=form | bad)
            assert 400 <= resp.status_code < 500, (bad, resp.status_code)
            if "empathy" in bad:  # the page comes back with the other answers still filled in
                assert 'role="alert"' in resp.text
                assert 'name="emotion_recognition" value="4" required checked' in resp.text
        upload = rater.http.post("/rate", data=form, files={"comment": ("c.txt", b"as a file", "text/plain")})
        assert 400 <= upload.status_code < 500
        nul = rater.http.post("/rate", data=form | {"comment": f"a\x00b {secret}"})
        assert nul.status_code in (303, 400)
        if nul.status_code == 400:
            assert rater.http.post("/rate", data=form | {"comment": f"ab {secret}"}).status_code == 303
        assert rater.http.get("/rate").status_code == 200
    log = proc.stderr.read().decode()
    assert secret not in log and "Traceback" not in log
    store = RatingStore.open(db)
    try:
        comments = list(rating_frame(store)["comment"])
        assert comments == [f"ab {secret}"]  # stored once, the NUL byte gone
    finally:
        store.close()


def test_oversized_bodies_are_refused_before_they_are_read(sqlite_study: tuple[str, str],
                                                          serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        host, port = urlsplit(base).hostname, urlsplit(base).port
        assert host and port
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"POST /consent HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 209715200\r\n\r\n" + b"a" * 1024)
            assert s.recv(64).startswith(b"HTTP/1.1 413")

        # chunked, no Content-Length: cut off at the cap, long before 200 MiB are sent
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"POST /consent HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            sent, chunk = 0, b"10000\r\n" + b"b" * 65536 + b"\r\n"
            with contextlib.suppress(OSError):  # the server closes the connection once it has answered
                while sent < 200 * 2**20:
                    s.sendall(chunk)
                    sent += 65536
            assert sent < 50 * 2**20
            assert s.recv(64).startswith(b"HTTP/1.1 413")
        assert httpx.get(base + "/healthz").status_code == 200


def test_one_client_cannot_take_every_slot(tmp_path: Path, make_study: Callable[..., tuple[str, str]],
                                           serve_study: Serve) -> None:
    db, token = make_study(str(tmp_path / "ratings.db"), conversations=4)  # 12 items x k=2 / 6 = 4 slots
    with serve_study(db, *RELAXED, "trust_proxy=true") as (base, _):
        took = [Rater(base, "203.0.113.5").consent().status_code for _ in range(8)]
        assert took.count(303) == 3 and took[3:] == [429] * 5
        assert Rater(base, "198.51.100.7").consent().status_code == 303  # a real rater still gets in
        status = httpx.get(base + "/admin/status.json", headers={"Authorization": f"Bearer {token}"}).json()
        assert status["bundles_claimed"] == 4 and status["slots_free"] == 0


def test_abandoned_slots_are_released(tmp_path: Path, make_study: Callable[..., tuple[str, str]],
                                      serve_study: Serve) -> None:
    db, token = make_study(str(tmp_path / "ratings.db"), conversations=2)  # 2 slots
    with serve_study(db, *RELAXED, "trust_proxy=true", "slot_timeout_min=0.02") as (base, _):
        a, b = Rater(base, "203.0.113.1"), Rater(base, "203.0.113.2")
        assert a.consent().status_code == 303
        b.start()
        assert b.http.post("/rate", data=b.form()).status_code == 303  # b makes progress
        late = Rater(base, "203.0.113.3")
        time.sleep(1.5)  # a's slot (no rating) is now idle beyond 1.2 s; b's holds a rating
        assert late.consent().status_code == 303
        assert a.http.get("/demographics").status_code == 303  # a's idle slot went to the late rater
        assert b.http.get("/rate").status_code == 200
        status = httpx.get(base + "/admin/status.json", headers={"Authorization": f"Bearer {token}"}).json()
        assert status["slots_released"] == 1 and status["bundles_claimed"] == 2


def test_a_valid_prolific_id_can_be_required(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED, "require_prolific=true") as (base, _):
        for query in ("", "?PROLIFIC_PID=x", "?PROLIFIC_PID=not-a-prolific-id-at-all"):
            resp = Rater(base).consent(query)
            assert resp.status_code == 403 and "Prolific" in resp.text
        assert Rater(base).consent(f"?PROLIFIC_PID={PID}&SESSION_ID=S").status_code == 303
    store = RatingStore.open(db)
    try:
        assert len(store.counts()["raters"]) == 1
    finally:
        store.close()


@contextlib.contextmanager
def foreign_write_lock(db: str, seconds: float) -> Iterator[threading.Event]:
    """Another process's write transaction on the SQLite file, held for ``seconds``."""
    held = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE meta SET value = value WHERE key = 'created_at'")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    th = threading.Thread(target=hold)
    th.start()
    held.wait(5)
    try:
        yield held
    finally:
        th.join()


def test_a_foreign_write_lock_does_not_freeze_the_server(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        rater = Rater(base).start()
        form = rater.form()
        answers: list[int] = []
        with foreign_write_lock(db, 6.0):
            poster = threading.Thread(target=lambda: answers.append(rater.http.post("/rate", data=form).status_code))
            poster.start()
            time.sleep(0.5)  # the rating now waits for the lock
            for _ in range(3):
                t0 = time.monotonic()
                resp = httpx.get(base + "/healthz", timeout=5)
                assert time.monotonic() - t0 < 1.0 and resp.status_code in (200, 503)
                assert httpx.get(base + "/", timeout=5).status_code == 200
                time.sleep(0.5)
        poster.join(30)
        assert answers == [303]  # the waiting rating was stored once the lock went
        assert httpx.get(base + "/healthz").json()["status"] == "ok"


def test_a_lock_held_too_long_is_a_friendly_503_without_parameters_in_the_log(
        sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED, "write_wait_s=1") as (base, proc):
        rater = Rater(base).start()
        form = rater.form() | {"comment": "PRIVATE-NOTE-4411"}
        with foreign_write_lock(db, 3.0):
            resp = rater.http.post("/rate", data=form)
        assert resp.status_code == 503 and "not saved" in resp.text and resp.headers["retry-after"]
        assert "Traceback" not in resp.text and "sqlite" not in resp.text.lower()
        assert rater.http.post("/rate", data=form).status_code == 303  # submitting again works
    log = proc.stderr.read().decode()
    assert "PRIVATE-NOTE-4411" not in log and "Traceback" not in log


def test_healthz_fails_when_the_database_cannot_be_written(sqlite_study: tuple[str, str],
                                                          serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        assert httpx.get(base + "/healthz").status_code == 200
        mode = os.stat(db).st_mode
        os.chmod(db, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        try:
            resp = httpx.get(base + "/healthz")
            assert resp.status_code == 503 and "read-only" in resp.json()["database"]
        finally:
            os.chmod(db, mode)
        assert httpx.get(base + "/healthz").status_code == 200
        moved = db + ".moved"
        os.rename(db, moved)
        try:
            resp = httpx.get(base + "/healthz")
            assert resp.status_code == 503 and "missing" in resp.json()["database"]
        finally:
            os.rename(moved, db)


def test_a_forged_forwarded_for_does_not_escape_the_limits(sqlite_study: tuple[str, str],
                                                           serve_study: Serve) -> None:
    db, _ = sqlite_study
    with serve_study(db, "trust_proxy=true", "join_rate=0.001", "join_burst=2") as (base, _):
        # nginx appends the real address to whatever the client sent: "forged, real"
        codes = [Rater(base, f"10.0.0.{n}, 198.51.100.9").consent().status_code for n in range(4)]
        assert codes == [303, 303, 429, 429]
        assert Rater(base, "10.0.0.1, 198.51.100.10").consent().status_code == 303  # another real address


def test_admin_sessions_are_random_and_sign_out_revokes(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, token = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        cookies = []
        for _ in range(2):
            admin = httpx.Client(base_url=base, follow_redirects=False)
            page = admin.get("/admin")
            resp = admin.post("/admin/login", data={"csrf": field(page.text, "csrf"), "token": token})
            assert resp.status_code == 303
            cookies.append(admin.cookies["tk_admin"])
        assert cookies[0] != cookies[1]
        page = admin.get("/admin")
        assert page.status_code == 200
        assert admin.post("/admin/logout", data={"csrf": field(page.text, "csrf")}).status_code == 303
        replay = httpx.Client(base_url=base, follow_redirects=False)
        replay.cookies.set("tk_admin", cookies[1])
        assert replay.get("/admin").status_code == 401  # the signed-out session is dead server-side
        other = httpx.Client(base_url=base, follow_redirects=False)
        other.cookies.set("tk_admin", cookies[0])
        assert other.get("/admin").status_code == 200  # the other sign-in lives on


def test_bearer_guesses_are_rate_limited(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, token = sqlite_study
    with serve_study(db, *RELAXED) as (base, _):
        codes = [httpx.get(base + "/admin/status.json", headers={"Authorization": f"Bearer guess{n}"}).status_code
                 for n in range(8)]
        assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
        # while the address is blocked even the right token is not checked, so guessing cannot go on
        assert httpx.get(base + "/admin/status.json", headers={"Authorization": f"Bearer {token}"}).status_code == 429


def test_csv_export_neutralises_formulas(sqlite_study: tuple[str, str], serve_study: Serve,
                                         tmp_path: Path) -> None:
    db, _ = sqlite_study
    formulas = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)"]
    with serve_study(db, *RELAXED) as (base, _):
        rater = Rater(base).start()
        for text in formulas:
            assert rater.http.post("/rate", data=rater.form() | {"comment": text}).status_code == 303
    out = tmp_path / "ratings.csv"
    export_ratings(db, out)
    with out.open(newline="", encoding="utf-8") as fh:
        comments = [row["comment"] for row in csv.DictReader(fh)]
    assert sorted(comments) == sorted("'" + f for f in formulas)
    parquet = tmp_path / "ratings.parquet"
    export_ratings(db, parquet)
    import pandas as pd

    assert sorted(pd.read_parquet(parquet)["comment"]) == sorted(formulas)  # typed formats keep the text


def test_every_response_carries_the_security_headers(sqlite_study: tuple[str, str], serve_study: Serve) -> None:
    db, token = sqlite_study
    with serve_study(db, *RELAXED, "secure_cookies=true") as (base, _):
        for path, headers in (("/healthz", {}), ("/static/style.css", {}), ("/nope", {}), ("/", {}),
                              ("/admin/status.json", {}), ("/admin/status.json", {"Authorization": f"Bearer {token}"})):
            resp = httpx.get(base + path, headers=headers)
            for name in ("content-security-policy", "x-content-type-options", "permissions-policy",
                         "referrer-policy", "x-frame-options"):
                assert name in resp.headers, (path, name)
        resp = httpx.post(base + "/consent", data={"x": "1"})
        assert "permissions-policy" in resp.headers
        cookie = httpx.get(base + "/").headers["set-cookie"]
        assert cookie.startswith("__Host-tk_pre=") and "Secure" in cookie and "Path=/" in cookie
