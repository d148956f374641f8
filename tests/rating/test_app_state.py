"""The rating app's parts apart from HTTP: the typed submission outcomes against a real SQLite
store, the app state create_app builds, and the page each outcome becomes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tidekit.rating import DEMOGRAPHICS, RatingServeConfig, RatingStore, create_app
from tidekit.rating._outcomes import Outcome, Submission, admit, store_rating, submit
from tidekit.rating._routes_rater import submission_page
from tidekit.rating._security import RateLimiter
from tidekit.rating._state import AppState

SCORES = {"empathy": 5, "emotion_recognition": 4, "distress_normalization": 6, "supportive_reflection": 3}
ANSWERS = {k: options[0][0] for k, (_, options) in DEMOGRAPHICS.items()}


@pytest.fixture
def store(tmp_path: Path, make_study: Callable[..., tuple[str, str]]) -> Iterator[RatingStore]:
    db, _ = make_study(str(tmp_path / "ratings.db"))
    opened = RatingStore.open(db)
    yield opened
    opened.close()


def test_each_way_a_submission_can_end_is_its_own_outcome(store: RatingStore) -> None:
    limit = RateLimiter(rate=0.001, burst=3)  # three submissions, then a long wait
    assert admit(store, limit, "no-such-session") == Submission(Outcome.NO_SESSION)
    mine, token, _ = store.register_rater(simulated=True)
    theirs, their_token, _ = store.register_rater(simulated=True)
    assert admit(store, limit, token) == Submission(Outcome.NO_DEMOGRAPHICS)
    store.save_demographics(mine, ANSWERS)
    store.save_demographics(theirs, ANSWERS)
    rater = admit(store, limit, token)  # 1st token of the burst
    assert not isinstance(rater, Submission) and rater.id == mine
    their_view = store.rater_for_session(their_token)
    assert their_view is not None
    their_item, my_item = store.next_item(their_view), store.next_item(rater)
    assert their_item is not None and my_item is not None
    assert store_rating(store, rater, their_item.assignment_id, SCORES, "", None) == Submission(Outcome.NOT_YOURS)
    assert store.progress(rater) == 0
    assert submit(store, limit, token, my_item.assignment_id, SCORES, "ok", None) == Submission(Outcome.STORED)
    assert store.progress(rater) == 1
    # a double submission of a stored rating is STORED again, and stores nothing new
    assert submit(store, limit, token, my_item.assignment_id, SCORES, "ok", None) == Submission(Outcome.STORED)
    assert store.progress(rater) == 1
    spent = submit(store, limit, token, my_item.assignment_id, SCORES, "ok", None)  # the 4th: over the burst
    assert spent.outcome is Outcome.SLOW_DOWN and spent.wait_s > 1, spent


def test_every_outcome_has_its_page(store: RatingStore) -> None:
    state = AppState.build(store, RatingServeConfig(), root_path="/study")
    expected = {Outcome.STORED: (303, "/study/rate"), Outcome.NO_SESSION: (401, None),
                Outcome.NO_DEMOGRAPHICS: (303, "/study/demographics"), Outcome.SLOW_DOWN: (429, None),
                Outcome.NOT_YOURS: (403, None)}
    assert set(expected) == set(Outcome), "a new outcome needs its page here and in submission_page"
    for outcome, (status, location) in expected.items():
        resp = submission_page(state, Submission(outcome, wait_s=7.4))
        assert resp.status_code == status, outcome
        assert resp.headers.get("location") == location, outcome
    assert submission_page(state, Submission(Outcome.SLOW_DOWN, 7.4)).headers["Retry-After"] == "7"


def test_create_app_holds_one_state_reached_from_the_app(store: RatingStore) -> None:
    app = create_app(store, RatingServeConfig(secure_cookies=True), root_path="/study")
    state = app.state.rating
    assert isinstance(state, AppState) and state.store is store is app.state.store
    assert (state.session_cookie, state.pre_cookie, state.admin_cookie) == ("__Host-tk_session", "__Host-tk_pre",
                                                                            "__Host-tk_admin")
    assert state.pages.cookie_path == "/"  # __Host- cookies must have Path=/
    plain = AppState.build(store, RatingServeConfig(), root_path="/study")
    assert (plain.session_cookie, plain.pages.cookie_path) == ("tk_session", "/study")
    assert plain.release_after_s == 30 * 60 and plain.inline_db


def test_item_pages_are_stamped_by_the_state_clock(store: RatingStore) -> None:
    state = dataclasses.replace(AppState.build(store, RatingServeConfig()), clock=lambda: 1234.5)
    ticket = state.shown_ticket("tok", 7)
    assert ticket.startswith("1234.500.")
    assert state.shown_at("tok", 7, ticket) == 1234.5
    assert state.shown_at("tok", 8, ticket) is None  # another item's page
    assert state.shown_at("other", 7, ticket) is None  # another rater's page
    assert state.shown_at("tok", 7, "1000.000." + ticket.rpartition(".")[2]) is None  # the time changed
