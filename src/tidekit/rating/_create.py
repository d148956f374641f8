"""``create_study``: build a blinded rating study from a dataset and generations, into a store.

Idempotent: rerunning with the same config and inputs reports the existing study; different
inputs against an existing database are refused (a study's design must not change under raters).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from tidekit.data import GENERATIONS_FILE, Dataset, GenerationRecord, load_dataset, read_generations
from tidekit.errors import ConfigError, DataError
from tidekit.rating._config import RatingStudyConfig
from tidekit.rating._design import build_plan
from tidekit.rating._sampling import record_sampling
from tidekit.rating._security import new_token
from tidekit.rating._store import RatingStore

__all__ = ["StudySummary", "create_study", "generation_paths"]


class StudySummary(BaseModel):
    """What ``tidekit rate create`` made."""

    db: str = Field(description="The study database (password hidden).")
    created: bool = Field(description="False when the same study already existed (rerun).")
    items: int = Field(description="Items to rate (attention checks excluded).")
    conversations: int = Field(description="Conversations the items come from.")
    systems: dict[str, int] = Field(description="Items per system (names; raters see none of this).")
    raters_needed: int = Field(description="Bundles, i.e. raters needed to give every item k ratings.")
    items_per_rater: int = Field(description="Items each rater rates, attention checks included.")
    ratings_per_item: int = Field(description="k.")
    skipped: dict[str, int] = Field(default_factory=dict, description="Inputs left out, by reason.")
    admin_token: str | None = Field(default=None, description="Admin token; shown once, at creation.")
    completion_code: str = Field(description="The code raters get at the end.")


def create_study(
    config: RatingStudyConfig,
    dataset: Dataset | str | Path,
    generations: Sequence[GenerationRecord] | Sequence[str | Path] = (),
    db: str | Path = "ratings.db",
    admin_token: str | None = None,
) -> StudySummary:
    """Create the study in ``db`` (a SQLite path or URL, or a PostgreSQL URL).

    Items are (conversation context, one system's reply); systems are blinded behind random
    codes; each item gets ``ratings_per_item`` ratings spread over raters, each rater gets
    ``items_per_rater`` items plus attention checks in their own seeded order.
    """
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    records: list[GenerationRecord] = []
    for g in generations:
        if isinstance(g, GenerationRecord):
            records.append(g)
        else:
            for path in generation_paths(g):
                records.extend(read_generations(path))
    plan = build_plan(config, ds, records)
    store = RatingStore.open(db, create=True)
    try:
        created = False
        token = None
        if store.has_study():
            if store.inputs_hash() != plan.inputs_hash:
                raise ConfigError(f"{_shown(store)} already holds a study built from other inputs or "
                                  "another config; give a new --db for a new study")
        else:
            token = admin_token or new_token(24)
            store.create_study(config, plan, token)
            created = True
        if plan.sampling is not None:
            record_sampling(store, plan.sampling)  # also fills it in for a study made before it was recorded
        systems = {s.system: 0 for s in plan.systems}
        by_code = {s.code: s.system for s in plan.systems}
        for item in plan.rated_items:
            systems[by_code[item.system_code or ""]] += 1
        return StudySummary(
            db=_shown(store), created=created, items=len(plan.rated_items),
            conversations=len({i.conversation_id for i in plan.rated_items}), systems=systems,
            raters_needed=len(plan.bundles), items_per_rater=store.info.per_rater,
            ratings_per_item=config.ratings_per_item, skipped=dict(plan.skipped),
            admin_token=token, completion_code=store.info.completion_code)
    finally:
        store.close()


def generation_paths(path: str | Path) -> list[Path]:
    """The generations ``path`` names: itself (a ``generations.jsonl`` file or a folder holding
    one), or each sub-folder holding one, as a study's ``generations/`` folder has one folder per
    system (``runs/quickstart/generations/smollm2-135m__zero_shot/``)."""
    path = Path(path)
    if path.is_dir() and not (path / GENERATIONS_FILE).is_file():
        systems = sorted(p for p in path.iterdir() if p.is_dir() and (p / GENERATIONS_FILE).is_file())
        if systems:
            return systems
        raise DataError(f"{path}: no {GENERATIONS_FILE} in this folder or in its sub-folders; give the folder "
                        "'tidekit generate' wrote (or a folder of such folders, one per system), or run "
                        "'tidekit generate' first")
    return [path]


def _shown(store: RatingStore) -> str:
    return store.engine.url.render_as_string(hide_password=True)
