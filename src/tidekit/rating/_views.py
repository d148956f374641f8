"""What the rating store hands out and raises: the study's fixed facts, a rater, an item.

The web app, the simulator and the export read these plain records; none holds a connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidekit.rating._config import RatingStudyConfig
from tidekit.scenarios import EMPATHY_FACTOR_IDS

__all__ = [
    "FACTORS",
    "SCORE_FIELDS",
    "AlreadyStarted",
    "ItemView",
    "NotYourItem",
    "RaterView",
    "StudyFull",
    "StudyInfo",
    "TooManyUnfinished",
]

FACTORS = EMPATHY_FACTOR_IDS  # the DB columns of the ratings table; names come from tidekit.scenarios
SCORE_FIELDS = ("empathy", *FACTORS)


class StudyFull(Exception):
    """Every bundle is taken: no more raters are needed."""


class NotYourItem(Exception):
    """The assignment does not exist or belongs to another rater."""


class AlreadyStarted(Exception):
    """This Prolific id already has a rater, and the request cannot prove it is that person."""


class TooManyUnfinished(Exception):
    """This client address already holds the most unfinished slots it may."""



@dataclass(frozen=True)
class StudyInfo:
    """The immutable facts of a study, read once per process."""

    config: RatingStudyConfig
    secret: str
    salt: str
    completion_code: str
    admin_token_hash: str
    per_rater: int
    created_at: float


@dataclass(frozen=True)
class RaterView:
    """What the app needs to know about the rater behind a session."""

    id: str
    bundle_id: int
    has_demographics: bool
    completed: bool
    from_prolific: bool
    simulated: bool
    consented_here: bool = True  # this session is the one that consented (may withdraw)


@dataclass(frozen=True)
class ItemView:
    """The next item a rater sees."""

    assignment_id: int
    item: int
    position: int
    context: list[dict[str, str]]
    response: str
    is_attention_check: bool
    expected: int | None
    system_code: str | None
