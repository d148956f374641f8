"""The study configuration: what raters see, how many ratings each item gets, and the scale.

A study config is YAML validated by :class:`RatingStudyConfig` (unknown keys are errors); the shipped
example is ``src/tidekit/rating/study.example.yaml``. Serving knobs that do not change the
study's design (rate limits, cookie flags) live in :class:`RatingServeConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidekit._config import StrictModel
from tidekit.rating._demographics import (  # the questions: one vocabulary there
    DEMOGRAPHICS,
    PREFER_NOT,
)

__all__ = ["DEMOGRAPHICS", "PREFER_NOT", "ConsentInfo", "RatingServeConfig", "RatingStudyConfig", "ScaleConfig"]

class ScaleConfig(StrictModel):
    """The rating scale shown for overall empathy and for each of the three factors."""

    points: int = Field(default=7, ge=3, le=11, description="Number of points; ratings are 1..points (7 as chosen for tidekit).")
    low_label: str = Field(default="Not at all", description="Label under the lowest point.")
    high_label: str = Field(default="Extremely", description="Label under the highest point.")


class ConsentInfo(StrictModel):
    """What the information-and-consent page tells raters. Fill it in from your ethics approval."""

    researcher: str = Field(default="The research team", description="Who runs the study.")
    contact: str = Field(default="", description="How raters reach the researchers (email), shown on every page.")
    ethics_reference: str = Field(default="", description="Ethics board / IRB protocol number, if any.")
    estimated_minutes: int = Field(default=20, ge=1, description="Expected time to finish, shown before consent.")
    payment: str = Field(default="", description="Payment text (e.g. 'GBP 3.00 via Prolific'); empty hides it.")
    support_resources: str = Field(
        default=("If reading about trauma upsets you, you may stop at any time. In the US you can call "
                 "or text 988; elsewhere, contact your local emergency number or a crisis line."),
        description="Crisis and support resources shown on the consent page and in the footer.")


class RatingStudyConfig(StrictModel):
    """The design of one rating study (``tidekit rate create``)."""

    title: str = Field(default="How supportive is this reply?", description="Study title shown to raters.")
    ratings_per_item: int = Field(default=3, ge=1, description="k: raters per item; every item gets k (at most k+1 when padding the last bundle).")
    items_per_rater: int = Field(default=20, ge=1, description="Items each rater rates (attention checks come on top).")
    attention_checks: int = Field(default=2, ge=0, le=10, description="Attention-check items per rater, with a known answer.")
    seed: int = Field(default=0, description="Seed for item sampling, blinding codes, bundles and per-rater order.")
    systems: list[str] | None = Field(default=None, description="Systems to include (e.g. 'smollm2-135m:zero_shot', 'reference'); None = all found.")
    include_reference: bool = Field(default=True, description="Add the dataset's reference replies as system 'reference' when the generations lack them.")
    conversations: int | None = Field(default=None, ge=1, description="Sample this many conversations (seeded); None = every conversation with a reply.")
    split: Literal["train", "validation", "test"] | None = Field(default=None, description="Only conversations of this split (usually 'test').")
    strata: Literal["scenario_id", "persona_id"] | None = Field(default=None, description="Sample 'conversations' within strata of this field, spread evenly over them (a simple random sample in each); the inclusion probabilities (n_h / N_h) are recorded and the prediction-powered estimates weight by them. None: one simple random sample.")
    scale: ScaleConfig = Field(default_factory=ScaleConfig, description="The rating scale.")
    completion_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{4,40}$", description="Prolific completion code; None = a random one is made and stored.")
    completion_url: str = Field(default="https://app.prolific.com/submissions/complete?cc={code}", description="Where a Prolific rater is sent at the end ({code} is replaced).")
    consent: ConsentInfo = Field(default_factory=ConsentInfo, description="Text of the information-and-consent page.")

    @model_validator(mode="after")
    def _check(self) -> RatingStudyConfig:
        if "{code}" not in self.completion_url:
            raise ValueError("completion_url must contain '{code}'")
        return self


class RatingServeConfig(StrictModel):
    """Runtime knobs of ``tidekit rate serve`` (they do not change the study)."""

    submit_rate: float = Field(default=1.0, gt=0, description="Sustained rating submissions per second per rater (humans need several seconds an item).")
    submit_burst: int = Field(default=10, ge=1, description="Submissions a rater may make in a burst before the rate applies.")
    join_rate: float = Field(default=0.5, gt=0, description="New consents per second per client IP (raters joining).")
    join_burst: int = Field(default=30, ge=1, description="Burst of new consents per client IP.")
    secure_cookies: bool = Field(default=False, description="Serve over HTTPS only (behind a TLS proxy): cookies become Secure '__Host-' cookies and responses carry Strict-Transport-Security.")
    trust_proxy: bool = Field(default=False, description="Take the client IP from X-Forwarded-For when the request comes from one of trusted_proxies (only behind your own proxy).")
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"], description="Addresses or networks of your proxies (with trust_proxy): the client is the right-most X-Forwarded-For entry not in this list.")
    require_prolific: bool = Field(default=False, description="Only let in raters whose link carries a valid PROLIFIC_PID (24 hex characters); others see a page asking them to start from Prolific.")
    max_unfinished_per_client: int = Field(default=3, ge=1, description="Unfinished rater slots one client address may hold at once (people behind one network share an address).")
    slot_timeout_min: float = Field(default=30.0, ge=0, description="Release a slot whose rater consented but rated nothing for this many minutes, when the study is otherwise full (0 = never). Slots with ratings are freed only by 'tidekit rate release'.")
    max_body_kib: int = Field(default=64, ge=4, le=10240, description="Largest request body accepted, in KiB (a rating form with a full comment is under 25 KiB); larger ones get 413 before they are read.")
    write_wait_s: float = Field(default=20.0, gt=0, le=300, description="SQLite: how long a call is retried while another process holds the lock before the rater sees a 'not saved, try again' page (503); the server keeps answering meanwhile.")
    admin_session_hours: float = Field(default=8.0, gt=0, le=168, description="How long an admin sign-in lasts; signing out ends it at once.")

    @model_validator(mode="after")
    def _check_proxies(self) -> RatingServeConfig:
        from tidekit.rating._security import parse_networks

        parse_networks(self.trusted_proxies)  # raises ValueError naming the bad entry
        return self
