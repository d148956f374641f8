"""The sampling design behind a set of ratings, as the prediction-powered estimates need it.

Prediction-powered intervals are valid when the rated conversations are a probability sample of
the scored ones with known inclusion probabilities. ``tidekit rate export`` writes the rating
study's design on every row (``sampling``, ``stratum``, ``inclusion_probability``,
``frame_size``; see :mod:`tidekit.rating`); :func:`read_design` checks it against the scores:

- ``census`` / ``simple_random``: one stratum, the plain PPI++ mean;
- ``stratified:<field>``: each scored conversation's stratum is its ``<field>`` in the scores
  table; the estimates weight each stratum by its share of the scored conversations, which
  undoes the unequal inclusion probabilities of an even allocation;
- no design columns (ratings from elsewhere): the rated conversations are assumed to be a simple
  random sample of the scored ones, and the result says so;
- scores that cover more conversations than the study's sampling frame (or a stratum's frame)
  are an error: the rated ones could not have been drawn from them, so the unrated ones would
  pull the estimate toward conversations the sample does not represent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tidekit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Design", "read_design"]

_PREFIX = "design:"


@dataclass
class Design:
    """How the rated conversations were drawn: the method and, when stratified, each scored
    conversation's stratum."""

    method: str  # census | simple_random | stratified:<field> | assumed simple_random
    text: str
    stratum_of: dict[str, str] | None = None  # conversation -> stratum (stratified only)
    flags: list[str] = field(default_factory=list)

    def strata(self, conversations: pd.Index) -> np.ndarray | None:
        """The strata of ``conversations`` (None for one stratum)."""
        if self.stratum_of is None:
            return None
        return np.array([self.stratum_of[str(c)] for c in conversations], dtype=object)


def _per_conversation(df: pd.DataFrame, column: str) -> pd.Series:
    """The value of a design column per rated conversation; an error when one conversation has two."""
    values = df[["conversation", _PREFIX + column]].dropna().drop_duplicates()
    twice = values["conversation"][values["conversation"].duplicated()]
    if len(twice):
        raise ConfigError(f"the ratings give conversation {twice.iloc[0]!r} two different '{column}' values: "
                          "they mix rating studies; analyse one study's export at a time")
    return values.set_index("conversation")[_PREFIX + column]


def read_design(df: pd.DataFrame, raw_scores: pd.DataFrame, scored: pd.Index, assume: str) -> Design:
    """The design of the prepared ratings ``df`` (with ``design:*`` columns when the export had
    them), checked against the scored conversations ``scored`` (raw score rows in
    ``raw_scores``, for the stratum field). ``assume='simple_random'`` (config) skips the record."""
    column = _PREFIX + "sampling"
    if assume == "simple_random":
        return Design("assumed simple_random", "assumed by analysis.ppi.sampling: a simple random sample of the "
                                               "scored conversations")
    if column not in df.columns or df[column].isna().all():
        return Design("assumed simple_random",
                      "not recorded (the ratings carry no 'sampling' column): assumed a simple random sample",
                      flags=["the ratings record no sampling design (exports of 'tidekit rate create' studies do): "
                             "the intervals assume the rated conversations are a simple random sample of the scored "
                             "ones; set analysis.ppi.sampling: simple_random to state that this is so"])
    methods = sorted(set(df[column].dropna().astype(str)))
    if len(methods) > 1:
        raise ConfigError(f"the ratings mix sampling designs ({', '.join(methods)}): they come from several rating "
                          "studies; analyse one study's export at a time")
    method = methods[0]
    frames = _per_conversation(df, "frame_size") if _PREFIX + "frame_size" in df.columns else None
    if method in ("census", "simple_random"):
        frame = int(frames.max()) if frames is not None and len(frames) else None
        if frame is not None and len(scored) > frame:
            raise ConfigError(
                f"the scores cover {len(scored)} conversations but the rating study sampled from {frame} (the "
                "conversations that had a reply to rate, in its split): the unrated ones outside that frame are "
                "not represented by the sample. Score only the conversations the rating study drew from (the same "
                "split and generations), or set analysis.ppi.sampling: simple_random if the frame was wider")
        text = ("every conversation of the frame rated (census)" if method == "census" else
                f"a simple random sample of {frame} conversations (recorded by 'tidekit rate create')")
        return Design(method, text)
    if not method.startswith("stratified:"):
        raise ConfigError(f"the ratings record the sampling design {method!r}, which this version cannot analyse "
                          "(known: census, simple_random, stratified:<field>)")
    return _stratified(df, raw_scores, scored, method, frames)


def _stratified(df: pd.DataFrame, raw_scores: pd.DataFrame, scored: pd.Index, method: str,
                frames: pd.Series | None) -> Design:
    by = method.split(":", 1)[1]
    if by not in raw_scores.columns:
        raise ConfigError(f"the ratings were sampled within strata of '{by}', but the scores table has no '{by}' "
                          "column to place the unrated conversations; score with a table that keeps it")
    rated_stratum = _per_conversation(df, "stratum").astype(str)
    s = raw_scores.assign(conversation_id=raw_scores["conversation_id"].astype(str))
    scored_stratum = s.dropna(subset=[by]).groupby("conversation_id")[by].first().astype(str)
    stratum_of = {**scored_stratum.to_dict(), **rated_stratum.to_dict()}
    missing = [c for c in scored if str(c) not in stratum_of]
    if missing:
        raise ConfigError(f"{len(missing)} scored conversation(s) have no '{by}' (e.g. {missing[0]!r}): the "
                          "stratified estimate cannot place them")
    flags = []
    if frames is not None:
        frame_of = {str(rated_stratum[c]): int(v) for c, v in frames.items() if c in rated_stratum.index}
        counts = {h: 0 for h in frame_of}
        for c in scored:
            h = stratum_of[str(c)]
            if h in counts:
                counts[h] += 1
        over = [h for h in counts if counts[h] > frame_of[h]]
        if over:
            raise ConfigError(f"the scores hold more conversations of {by} {over[0]!r} ({counts[over[0]]}) than the "
                              f"rating study sampled from ({frame_of[over[0]]}): score only the conversations the "
                              "study drew from")
    empty = sorted({stratum_of[str(c)] for c in scored} - set(rated_stratum))
    if empty:
        flags.append(f"{len(empty)} stratum/strata of {by} have scored but no rated conversations ({empty[0]!r}...): "
                     "they are left out of the estimates, which then describe the sampled strata only")
    return Design(method, f"a stratified random sample within {by} (inclusion probabilities recorded by 'tidekit "
                          f"rate create'; strata weighted by their share of the scored conversations)",
                  stratum_of=stratum_of, flags=flags)
