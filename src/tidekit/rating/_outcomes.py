"""What a rating submission or an admin check comes to: typed outcomes, decided apart from the pages.

A POST ``/rate`` is decided by :func:`admit` and :func:`store_rating` (plain store calls, run on
the event loop or in a worker thread by ``AppState.call_db``), which answer a :class:`Submission`;
the route turns its :class:`Outcome` into a page. An admin check answers an :class:`AdminAccess`.
The seconds to wait travel as a number beside the outcome, never inside a string.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from tidekit.rating._security import RateLimiter
from tidekit.rating._store import NotYourItem, RaterView, RatingStore

__all__ = ["Access", "AdminAccess", "Outcome", "Submission", "admit", "store_rating", "submit"]


class Outcome(enum.Enum):
    """Where a submitted rating went."""

    STORED = "stored"  # saved, or already saved (a double submission): on to the next item
    NO_SESSION = "no-session"  # the session cookie names no rater (expired, withdrawn, forged)
    NO_DEMOGRAPHICS = "no-demographics"  # the rater has not answered the demographics yet
    SLOW_DOWN = "slow-down"  # the rater's submission rate is spent; ``wait_s`` says for how long
    NOT_YOURS = "not-yours"  # the assignment does not exist or belongs to another rater


@dataclass(frozen=True)
class Submission:
    """A submission's outcome; ``wait_s`` is the seconds to wait with ``Outcome.SLOW_DOWN``."""

    outcome: Outcome
    wait_s: float = 0.0


class Access(enum.Enum):
    """Whether a request may see the admin pages."""

    GRANTED = "granted"
    DENIED = "denied"  # no valid admin session or Bearer token
    SLOW_DOWN = "slow-down"  # too many wrong Bearer tokens from this address; ``wait_s`` says how long


@dataclass(frozen=True)
class AdminAccess:
    """An admin check's answer; ``wait_s`` is the seconds to wait with ``Access.SLOW_DOWN``."""

    access: Access
    wait_s: float = 0.0


def admit(store: RatingStore, limit: RateLimiter, token: str) -> RaterView | Submission:
    """The rater who may submit now, or the Submission saying why not (a spent rate: SLOW_DOWN)."""
    rater = store.rater_for_session(token)
    if rater is None:
        return Submission(Outcome.NO_SESSION)
    if not rater.has_demographics:
        return Submission(Outcome.NO_DEMOGRAPHICS)
    wait = limit.allow(rater.id)
    return Submission(Outcome.SLOW_DOWN, wait) if wait else rater


def store_rating(store: RatingStore, rater: RaterView, assignment_id: int, scores: Mapping[str, int],
                 comment: str, shown: float | None) -> Submission:
    """Store an admitted rater's validated rating (one transaction)."""
    try:
        store.submit_rating(rater, assignment_id, scores, comment, shown_at=shown)
    except NotYourItem:
        return Submission(Outcome.NOT_YOURS)
    return Submission(Outcome.STORED)


def submit(store: RatingStore, limit: RateLimiter, token: str, assignment_id: int, scores: Mapping[str, int],
           comment: str, shown: float | None) -> Submission:
    """:func:`admit` then :func:`store_rating` in one call (one trip to a worker thread)."""
    admitted = admit(store, limit, token)
    if isinstance(admitted, Submission):
        return admitted
    return store_rating(store, admitted, assignment_id, scores, comment, shown)
