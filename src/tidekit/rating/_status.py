"""Study progress: per item and per rater, with attention-check failures (admin page, CLI)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from pydantic import BaseModel, Field

from tidekit.rating._store import RatingStore

__all__ = ["RaterProgress", "StudyStatus", "study_status"]


class RaterProgress(BaseModel):
    """One rater's progress (pseudonymous id only)."""

    rater_id: str
    rated: int = Field(description="Items rated so far, attention checks included.")
    total: int = Field(description="Items assigned.")
    demographics: bool = Field(description="Demographics answered.")
    completed: bool
    attention_failures: int = Field(description="Attention checks failed.")
    simulated: bool
    idle_min: float | None = Field(default=None, description="Minutes since the last progress (consent, demographics or a rating); None once completed.")


class StudyStatus(BaseModel):
    """Where a study stands."""

    title: str
    items: int = Field(description="Items to rate (attention checks excluded).")
    ratings_per_item: int = Field(description="Target k.")
    ratings: int = Field(description="Ratings of real items stored.")
    target_ratings: int = Field(description="items x k.")
    items_complete: int = Field(description="Items with at least k ratings.")
    item_ratings_min: int
    item_ratings_median: float
    item_ratings_max: int
    bundles: int = Field(description="Rater slots in the design.")
    bundles_claimed: int
    slots_free: int = Field(description="Rater slots nobody holds.")
    slots_unfinished: int = Field(description="Slots held by raters who have not finished.")
    slots_idle: int = Field(description="Unfinished slots with no progress for idle_after_min minutes.")
    slots_idle_without_ratings: int = Field(description="Of those, slots with no rating (the server frees these when full).")
    slots_released: int = Field(description="Slots freed so far because they were abandoned (automatically or by 'tidekit rate release').")
    idle_after_min: float = Field(description="The idle threshold used above, in minutes.")
    raters_active: int
    raters_completed: int
    raters_withdrawn: int
    raters_failed_attention: int
    simulated_raters: int
    per_item: dict[str, int] = Field(description="Ratings per item id.")
    per_rater: list[RaterProgress]


def study_status(db: str | RatingStore, idle_after_min: float = 30.0) -> StudyStatus:
    """Progress of the study in ``db``; slots without progress for ``idle_after_min`` count as idle."""
    store = db if isinstance(db, RatingStore) else RatingStore.open(db)
    try:
        info = store.info
        c = store.counts()
    finally:
        if not isinstance(db, RatingStore):
            store.close()
    k = info.config.ratings_per_item
    per_item: dict[str, int] = dict(sorted(c["per_item"].items()))
    counts = list(per_item.values()) or [0]
    now = time.time()

    def idle(r: Any) -> float | None:
        if r.completed_at is not None:
            return None
        last = max(x for x in (r.consented_at, r.demographics_at, c["last_rating"].get(r.id)) if x is not None)
        return round((now - last) / 60, 1)

    raters = [RaterProgress(rater_id=r.id, rated=int(c["per_rater"].get(r.id, 0)), total=info.per_rater,
                            demographics=r.demographics_at is not None, completed=r.completed_at is not None,
                            attention_failures=int(c["failures"].get(r.id, 0)), simulated=bool(r.simulated),
                            idle_min=idle(r))
              for r in sorted(c["raters"], key=lambda r: r.consented_at)]
    idle_slots = [r for r in raters if r.idle_min is not None and r.idle_min >= idle_after_min]
    return StudyStatus(
        title=info.config.title, items=len(per_item), ratings_per_item=k, ratings=sum(counts),
        target_ratings=len(per_item) * k, items_complete=sum(1 for n in counts if n >= k),
        item_ratings_min=min(counts), item_ratings_median=float(statistics.median(counts)),
        item_ratings_max=max(counts), bundles=int(c["bundles"]), bundles_claimed=int(c["claimed"]),
        slots_free=int(c["bundles"]) - int(c["claimed"]), slots_unfinished=sum(1 for r in raters if not r.completed),
        slots_idle=len(idle_slots), slots_idle_without_ratings=sum(1 for r in idle_slots if r.rated == 0),
        slots_released=c["released"], idle_after_min=idle_after_min,
        raters_active=sum(1 for r in raters if not r.completed), raters_completed=sum(1 for r in raters if r.completed),
        raters_withdrawn=c["withdrawals"], raters_failed_attention=sum(1 for r in raters if r.attention_failures),
        simulated_raters=sum(1 for r in raters if r.simulated), per_item=per_item, per_rater=raters)
