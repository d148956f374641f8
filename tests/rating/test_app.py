"""The rater web app through HTTP (in-process client), on SQLite and PostgreSQL: the journey,
escaping, CSRF, validation, ownership, rate limits and the admin token."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tidekit.rating import (
    DEMOGRAPHICS,
    PREFER_NOT,
    RatingServeConfig,
    RatingStore,
    create_app,
    rating_frame,
)

FAST = RatingServeConfig(submit_rate=1000, submit_burst=1000, join_rate=1000, join_burst=1000)
ANSWER = {"empathy": "5", "emotion_recognition": "4", "distress_normalization": "6", "supportive_reflection": "3"}


@pytest.fixture
def study(db_url: str, make_study: Callable[..., tuple[str, str]]) -> Iterator[tuple[RatingStore, str]]:
    db, token = make_study(db_url)
    store = RatingStore.open(db)
    yield store, token
    store.close()


def client_for(store: RatingStore, config: RatingServeConfig = FAST) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(create_app(store, config), follow_redirects=False)


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field on the page"
    return html.unescape(match.group(1))


def consent(client: Any, query: str = "") -> Any:
    page = client.get("/" + query)
    assert page.status_code == 200 and "Information and consent" in page.text
    data = {"csrf": field(page.text, "csrf"), "decision": "agree", "confirm": "yes"}
    for key in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"):
        if f'name="{key}"' in page.text:
            data[key] = field(page.text, key)
    return client.post("/consent", data=data)


def demographics(client: Any) -> None:
    page = client.get("/demographics")
    answers = {k: options[0][0] for k, (_, options) in DEMOGRAPHICS.items()} | {"gender": PREFER_NOT}
    resp = client.post("/demographics", data={"csrf": field(page.text, "csrf"), **answers})
    assert resp.status_code == 303 and resp.headers["location"] == "/instructions"


def rate_all(client: Any) -> list[dict[str, Any]]:
    """Answer every item; attention checks with the requested answer. Returns what was sent."""
    sent = []
    while True:
        page = client.get("/rate")
        if page.status_code == 303:
            assert page.headers["location"] == "/done"
            return sent
        ask = re.search(r"please choose (\d) for every rating", page.text)
        values = dict.fromkeys(ANSWER, ask.group(1)) if ask else dict(ANSWER)
        data = {"csrf": field(page.text, "csrf"), "assignment_id": field(page.text, "assignment_id"),
                "shown": field(page.text, "shown"), **values, "comment": f"note {len(sent)}"}
        resp = client.post("/rate", data=data)
        assert resp.status_code == 303, resp.text
        sent.append(data)


def test_whole_journey_and_the_export_holds_exactly_what_was_submitted(study: tuple[RatingStore, str]) -> None:
    store, _ = study
    client = client_for(store)
    assert store.rater_for_session("nothing") is None
    resp = consent(client, "?PROLIFIC_PID=5f1a2b3c4d5e6f7a8b9c0d1e&STUDY_ID=S1&SESSION_ID=X1")
    assert resp.status_code == 303 and resp.headers["location"] == "/demographics"
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    demographics(client)
    assert "Emotion recognition" in client.get("/instructions").text
    sent = rate_all(client)
    assert len(sent) == 7  # 6 items + 1 attention check
    done = client.get("/done")
    code = store.info.completion_code
    assert code in done.text and f"cc={code}" in done.text  # Prolific return link
    frame = rating_frame(store)
    assert len(frame) == len(sent) and frame["rating_id"].is_unique
    assert sorted(frame["comment"]) == sorted(d["comment"] for d in sent)
    assert frame["attention_passed"].all() and not frame["simulated"].any()
    assert set(frame["gender"]) == {PREFER_NOT} and frame["duration_s"].notna().all()
    # resubmitting the last form (back button, double click) stores nothing new
    assert client.post("/rate", data=sent[-1]).status_code == 303
    assert len(rating_frame(store)) == len(sent)


def test_returning_rater_resumes_where_they_stopped(study: tuple[RatingStore, str]) -> None:
    store, _ = study
    first = client_for(store)
    consent(first, "?PROLIFIC_PID=abcdef0123456789abcdef01&SESSION_ID=S9")
    demographics(first)
    page = first.get("/rate")
    first.post("/rate", data={"csrf": field(page.text, "csrf"), "assignment_id": field(page.text, "assignment_id"),
                              **ANSWER})
    second_item = field(first.get("/rate").text, "assignment_id")
    # same browser: straight back to the next item
    assert first.get("/").headers["location"] == "/rate"
    # another device, same Prolific id and Prolific session: consents again, continues at item 2
    other = client_for(store)
    resp = consent(other, "?PROLIFIC_PID=abcdef0123456789abcdef01&SESSION_ID=S9")
    assert resp.headers["location"] == "/rate"
    page = other.get("/rate")
    assert field(page.text, "assignment_id") == second_item and "Item 2 of 7" in page.text


def test_reply_text_is_escaped_never_executed(study: tuple[RatingStore, str], xss: str) -> None:
    store, _ = study
    seen = False
    for _ in range(6):  # raters until one gets the item whose reply holds a script tag
        client = client_for(store)
        consent(client)
        demographics(client)
        while (page := client.get("/rate")).status_code == 200:
            if "alert(" in page.text:
                assert xss not in page.text and "<b>bold</b>" not in page.text
                assert html.escape(xss, quote=True) in page.text or "&lt;script&gt;" in page.text
                seen = True
            values = re.search(r"please choose (\d)", page.text)
            client.post("/rate", data={"csrf": field(page.text, "csrf"),
                                       "assignment_id": field(page.text, "assignment_id"),
                                       **(dict.fromkeys(ANSWER, values.group(1)) if values else ANSWER),
                                       "comment": xss})
        if seen:
            break
    assert seen
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_forged_csrf_out_of_range_and_foreign_items_are_rejected(study: tuple[RatingStore, str]) -> None:
    store, _ = study
    # consent without the cookie-bound token: refused, nothing stored
    stranger = client_for(store)
    stranger.get("/")
    assert stranger.post("/consent", data={"csrf": "forged", "decision": "agree", "confirm": "yes"}).status_code == 403
    assert stranger.post("/consent", data={"decision": "agree", "confirm": "yes"}).status_code == 403
    assert rating_frame(store).empty and store.counts()["raters"] == []
    alice, bob = client_for(store), client_for(store)
    for c in (alice, bob):
        consent(c)
        demographics(c)
    a_page, b_page = alice.get("/rate").text, bob.get("/rate").text
    a_form = {"csrf": field(a_page, "csrf"), "assignment_id": field(a_page, "assignment_id"), **ANSWER}
    # a token from another session (bob's) does not work for alice
    assert alice.post("/rate", data=a_form | {"csrf": field(b_page, "csrf")}).status_code == 403
    for bad in ({"empathy": "8"}, {"empathy": "0"}, {"distress_normalization": "abc"}, {"supportive_reflection": ""},
                {"comment": "x" * 2001}):
        resp = alice.post("/rate", data=a_form | bad)
        assert resp.status_code == 400 and 'role="alert"' in resp.text
    # bob's item, submitted by alice
    assert alice.post("/rate", data=a_form | {"assignment_id": field(b_page, "assignment_id")}).status_code == 403
    assert alice.post("/rate", data=a_form | {"assignment_id": "-1"}).status_code == 403
    assert rating_frame(store).empty
    assert alice.post("/rate", data=a_form).status_code == 303
    assert len(rating_frame(store)) == 1
    # demographics outside the allowed values
    resp = bob.post("/demographics", data={"csrf": field(b_page, "csrf"), "age_group": "12",
                                           **{k: PREFER_NOT for k in DEMOGRAPHICS if k != "age_group"}})
    assert resp.status_code == 400


def test_decline_stores_nothing_and_withdrawal_deletes(study: tuple[RatingStore, str]) -> None:
    store, _ = study
    client = client_for(store)
    page = client.get("/")
    resp = client.post("/consent", data={"csrf": field(page.text, "csrf"), "decision": "decline"})
    assert resp.status_code == 200 and "Nothing about you was stored" in resp.text
    assert store.counts()["raters"] == []
    page = client.get("/")  # agreeing without ticking the box is not consent
    assert client.post("/consent", data={"csrf": field(page.text, "csrf"), "decision": "agree"}).status_code == 400
    assert store.counts()["raters"] == []
    consent(client)
    demographics(client)
    page = client.get("/rate")
    client.post("/rate", data={"csrf": field(page.text, "csrf"), "assignment_id": field(page.text, "assignment_id"),
                               **ANSWER})
    assert len(rating_frame(store)) == 1
    confirm = client.get("/withdraw")
    assert client.post("/withdraw", data={"csrf": "forged"}).status_code == 403
    resp = client.post("/withdraw", data={"csrf": field(confirm.text, "csrf")})
    assert resp.status_code == 200 and "deleted" in resp.text
    assert rating_frame(store).empty and store.counts()["raters"] == []


def test_submissions_are_rate_limited(study: tuple[RatingStore, str]) -> None:
    store, _ = study
    client = client_for(store, RatingServeConfig(submit_rate=0.01, submit_burst=2))
    consent(client)
    demographics(client)
    codes = []
    for _ in range(3):
        page = client.get("/rate")
        resp = client.post("/rate", data={"csrf": field(page.text, "csrf"),
                                          "assignment_id": field(page.text, "assignment_id"), **ANSWER})
        codes.append(resp.status_code)
    assert codes == [303, 303, 429] and int(resp.headers["retry-after"]) >= 1
    assert len(rating_frame(store)) == 2


def test_admin_needs_the_token(study: tuple[RatingStore, str]) -> None:
    store, token = study
    client = client_for(store)
    assert client.get("/admin").status_code == 401
    assert "Ratings" not in client.get("/admin").text
    assert client.get("/admin/status.json").status_code == 401
    assert client.get("/admin/status.json", headers={"Authorization": "Bearer wrong"}).status_code == 401
    guesser = client_for(store)
    guesser.cookies.set("tk_admin", "guess")
    assert guesser.get("/admin").status_code == 401
    ok = client.get("/admin/status.json", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["items"] == 30
    login = client.get("/admin")
    assert client.post("/admin/login", data={"csrf": field(login.text, "csrf"), "token": "wrong"}).status_code == 401
    login = client.get("/admin")
    resp = client.post("/admin/login", data={"csrf": field(login.text, "csrf"), "token": token})
    assert resp.status_code == 303 and "HttpOnly" in resp.headers["set-cookie"]
    page = client.get("/admin")
    assert page.status_code == 200 and "Study status" in page.text and "I00001" in page.text


def test_a_full_study_turns_raters_away_without_storing(db_url: str,
                                                       make_study: Callable[..., tuple[str, str]]) -> None:
    db, _ = make_study(db_url, conversations=2)  # 6 items x k=2 / 6 per rater = 2 slots
    store = RatingStore.open(db)
    try:
        for _ in range(2):
            assert consent(client_for(store)).status_code == 303
        resp = consent(client_for(store))
        assert resp.status_code == 200 and "study is full" in resp.text
        assert len(store.counts()["raters"]) == 2
    finally:
        store.close()


def test_a_double_clicked_consent_makes_one_rater(study: tuple[RatingStore, str]) -> None:
    store, _ = study
    client = client_for(store)
    page = client.get("/")
    form = {"csrf": field(page.text, "csrf"), "decision": "agree", "confirm": "yes"}
    pre = client.cookies.get("tk_pre")
    first = client.post("/consent", data=form)
    client.cookies.set("tk_pre", pre)  # the second click left before the first answer arrived
    second = client.post("/consent", data=form)
    assert first.status_code == second.status_code == 303
    assert len(store.counts()["raters"]) == 1


@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "\t"])
def test_a_prolific_link_with_trailing_whitespace_claims_no_slot(study: tuple[RatingStore, str], tail: str) -> None:
    """A PROLIFIC_PID ending in a newline used to pass the "$" check and claim a second slot."""
    store, _ = study
    strict = FAST.model_copy(update={"require_prolific": True})
    pid = "abcdef0123456789abcdef01"
    client = client_for(store, strict)
    page = client.get("/?PROLIFIC_PID=" + pid + tail.replace("\n", "%0A").replace("\r", "%0D")
                      .replace(" ", "%20").replace("\t", "%09") + "&SESSION_ID=S9")
    assert 'name="PROLIFIC_PID"' not in page.text  # not carried into the form
    form = {"csrf": field(page.text, "csrf"), "decision": "agree", "confirm": "yes",
            "PROLIFIC_PID": pid + tail, "SESSION_ID": "S9"}
    resp = client.post("/consent", data=form)  # a hand-made form: refused just the same
    assert resp.status_code == 403 and "Please start from Prolific" in resp.text
    assert store.rater_for_session("nothing") is None and rating_frame(store).empty
    resp = consent(client_for(store, strict), f"?PROLIFIC_PID={pid}&SESSION_ID=S9")
    assert resp.status_code == 303 and resp.headers["location"] == "/demographics"
