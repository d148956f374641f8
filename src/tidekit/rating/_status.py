"""Study progress: per item and per rater, with attention-check failures (admin page, CLI)."""

from __future__ import annotations

import statistics

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
    raters_active: int
    raters_completed: int
    raters_withdrawn: int
    raters_failed_attention: int
    simulated_raters: int
    per_item: dict[str, int] = Field(description="Ratings per item id.")
    per_rater: list[RaterProgress]


def study_status(db: str | RatingStore) -> StudyStatus:
    """Progress of the study in ``db``."""
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
    raters = [RaterProgress(rater_id=r.id, rated=int(c["per_rater"].get(r.id, 0)), total=info.per_rater,
                            demographics=r.demographics_at is not None, completed=r.completed_at is not None,
                            attention_failures=int(c["failures"].get(r.id, 0)), simulated=bool(r.simulated))
              for r in sorted(c["raters"], key=lambda r: r.consented_at)]
    return StudyStatus(
        title=info.config.title, items=len(per_item), ratings_per_item=k, ratings=sum(counts),
        target_ratings=len(per_item) * k, items_complete=sum(1 for n in counts if n >= k),
        item_ratings_min=min(counts), item_ratings_median=float(statistics.median(counts)),
        item_ratings_max=max(counts), bundles=int(c["bundles"]), bundles_claimed=int(c["claimed"]),
        raters_active=sum(1 for r in raters if not r.completed), raters_completed=sum(1 for r in raters if r.completed),
        raters_withdrawn=c["withdrawals"], raters_failed_attention=sum(1 for r in raters if r.attention_failures),
        simulated_raters=sum(1 for r in raters if r.simulated), per_item=per_item, per_rater=raters)
