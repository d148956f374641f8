"""How a rating study chose its conversations, recorded so the analysis can check and use it.

Prediction-powered estimates (docs/analysis.md) combine the ratings of the rated conversations
with automatic scores on every scored one. That is valid only when the rated conversations are a
probability sample of the scored ones with known inclusion probabilities, so ``tidekit rate
create`` records its sampling design in the study database (the ``meta`` key ``sampling``) and
``tidekit rate export`` writes it on every row (:data:`SAMPLING_COLUMNS`):

- ``census``: every conversation of the frame (inclusion probability 1);
- ``simple_random``: ``conversations`` drawn without replacement from the frame, seeded
  (probability n / N);
- ``stratified:<field>``: the frame split by ``<field>`` (``scenario_id`` or ``persona_id``),
  ``conversations`` spread evenly over the strata and a simple random sample drawn in each
  (probability n_h / N_h, unequal when strata differ in size; the analysis weights by it).

The frame is every conversation that has a reply to rate (in ``split``, when set). A study made
before the design was recorded gets it on the next ``tidekit rate create`` with the same inputs
(the plan is deterministic, so the record is the one the study was built with).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from tidekit.rating import _schema as t

if TYPE_CHECKING:
    from tidekit.rating._store import RatingStore

__all__ = ["SAMPLING_COLUMNS", "SamplingRecord", "draw_sample", "read_sampling", "record_sampling"]

SAMPLING_COLUMNS: tuple[str, ...] = ("sampling", "stratum", "inclusion_probability", "frame_size")
_META_KEY = "sampling"


class SamplingRecord(BaseModel):
    """The sampling design of one rating study."""

    method: str = Field(description="'census', 'simple_random' or 'stratified:<field>'.")
    frame_size: int = Field(description="Conversations that had a reply to rate (the sampling frame).")
    sample_size: int = Field(description="Conversations sampled.")
    seed: int = Field(description="The study's seed.")
    strata: dict[str, list[int]] = Field(
        default_factory=dict, description="Per stratum value: [frame size N_h, sampled n_h] (one stratum "
                                          "'all' unless stratified).")
    stratum_of: dict[str, str] = Field(default_factory=dict, description="Sampled conversation id -> stratum.")

    def probability(self, stratum: str) -> float:
        """Inclusion probability of a conversation of ``stratum``."""
        frame, sampled = self.strata[stratum]
        return sampled / frame

    def row_values(self, conversation_id: str | None) -> dict[str, Any]:
        """The :data:`SAMPLING_COLUMNS` of an exported rating of ``conversation_id``."""
        stratum = self.stratum_of.get(conversation_id or "")
        if stratum is None:  # an attention check, or a conversation the plan did not sample
            return {"sampling": self.method, "stratum": None, "inclusion_probability": None, "frame_size": None}
        return {"sampling": self.method, "stratum": stratum, "inclusion_probability": self.probability(stratum),
                "frame_size": self.strata[stratum][0]}


def _allocate(sizes: Mapping[str, int], total: int, rng: random.Random) -> dict[str, int]:
    """Spread ``total`` as evenly as the stratum sizes allow: each stratum gets an equal share
    (capped at its size), the remainder going to strata chosen at random among those with room."""
    take = {h: 0 for h in sizes}
    left = total
    while left > 0:
        room = sorted(h for h in sizes if take[h] < sizes[h])
        if not room:
            break
        share = left // len(room)
        if share == 0:
            for h in rng.sample(room, left):
                take[h] += 1
            break
        for h in room:
            add = min(share, sizes[h] - take[h])
            take[h] += add
            left -= add
    return take


def draw_sample(frame: Sequence[str], n: int | None, seed_rng: random.Random,
                strata_of: Mapping[str, str] | None, strata_field: str | None, seed: int
                ) -> tuple[list[str], SamplingRecord]:
    """The sampled conversation ids (sorted) and their design, from the sorted ``frame``.

    Without strata this draws exactly what earlier versions drew (``rng.sample`` on the sorted
    frame), so studies keep their items."""
    if strata_field is None or strata_of is None:
        if n is None or n >= len(frame):
            chosen, method = list(frame), "census"
        else:
            chosen, method = sorted(seed_rng.sample(list(frame), n)), "simple_random"
        return chosen, SamplingRecord(method=method, frame_size=len(frame), sample_size=len(chosen), seed=seed,
                                      strata={"all": [len(frame), len(chosen)]},
                                      stratum_of={c: "all" for c in chosen})
    groups: dict[str, list[str]] = {}
    for cid in frame:
        groups.setdefault(strata_of[cid], []).append(cid)
    sizes = {h: len(v) for h, v in sorted(groups.items())}
    take = _allocate(sizes, len(frame) if n is None else min(n, len(frame)), seed_rng)
    picked: list[str] = []
    for h in sizes:
        picked += seed_rng.sample(groups[h], take[h])
    record = SamplingRecord(method=f"stratified:{strata_field}", frame_size=len(frame), sample_size=len(picked),
                            seed=seed, strata={h: [sizes[h], take[h]] for h in sizes if take[h] > 0},
                            stratum_of={c: strata_of[c] for c in picked})
    return sorted(picked), record


def record_sampling(store: RatingStore, record: SamplingRecord) -> None:
    """Store the design in the study's ``meta`` table, in one transaction; a no-op when a record
    is there (reruns), an upgrade when a study made before designs were recorded lacks it."""
    value = json.dumps(record.model_dump(mode="json"), sort_keys=True)
    with store.write() as conn:
        row = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == _META_KEY)).first()
        if row is None:
            conn.execute(t.meta.insert().values(key=_META_KEY, value=value))


def read_sampling(store: RatingStore) -> SamplingRecord | None:
    """The recorded design, or None for a study made before designs were recorded."""
    with store.read() as conn:
        row = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == _META_KEY)).first()
    return None if row is None else SamplingRecord.model_validate(json.loads(row[0]))
