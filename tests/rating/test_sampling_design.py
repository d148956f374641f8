"""A rating study records how it sampled its conversations, and the export carries it."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tidekit.analysis import AnalysisConfig, analyze
from tidekit.data import Dataset, GenerationRecord
from tidekit.rating import (
    RatingStore,
    RatingStudyConfig,
    create_study,
    rating_frame,
    simulate_ratings,
)
from tidekit.rating import _schema as schema
from tidekit.rating._sampling import read_sampling

BASE = {"items_per_rater": 6, "ratings_per_item": 2, "attention_checks": 1, "seed": 3, "split": None}


def _uneven(dataset: Dataset) -> tuple[Dataset, list[GenerationRecord]]:
    """Replies to 5, 3 and 2 conversations of three scenarios: strata of unequal size."""
    by_scenario: dict[str, list[str]] = defaultdict(list)
    for c in dataset.conversations:
        by_scenario[c.scenario_id].append(c.id)
    scenarios = sorted(by_scenario)[:3]
    chosen = [cid for s, k in zip(scenarios, (5, 3, 2), strict=True) for cid in by_scenario[s][:k]]
    gens = [GenerationRecord(conversation_id=cid, system=f"smollm2-135m:{cond}", model="smollm2-135m",
                             condition=cond, output=f"It makes sense you feel this way ({cond}).")
            for cid in chosen for cond in ("zero_shot", "fine_tuned")]
    return Dataset(personas=dataset.personas, conversations=dataset.conversations), gens


def test_a_stratified_study_records_unequal_inclusion_probabilities(tmp_path: Path, dataset: Dataset) -> None:
    ds, gens = _uneven(dataset)
    config = RatingStudyConfig.model_validate({**BASE, "conversations": 6, "strata": "scenario_id",
                                               "include_reference": False})
    db = str(tmp_path / "r.db")
    create_study(config, ds, gens, db=db, admin_token="t" * 24)
    store = RatingStore.open(db)
    try:
        record = read_sampling(store)
        assert record is not None and record.method == "stratified:scenario_id"
        assert record.frame_size == 10 and record.sample_size == 6
        assert sorted(record.strata.values()) == [[2, 2], [3, 2], [5, 2]]  # 6 spread evenly over 3 strata
        frame = rating_frame(store)
    finally:
        store.close()
    assert frame.empty  # nobody has rated yet; the columns are there
    assert {"sampling", "stratum", "inclusion_probability", "frame_size"} <= set(frame.columns)
    simulate_ratings(db, seed=1)
    store = RatingStore.open(db)
    try:
        frame = rating_frame(store)
    finally:
        store.close()
    real = frame[~frame["is_attention_check"]]
    assert set(real["sampling"]) == {"stratified:scenario_id"}
    probs = real.groupby("frame_size")["inclusion_probability"].first().to_dict()
    assert probs == {2: 1.0, 3: pytest.approx(2 / 3), 5: pytest.approx(2 / 5)}
    checks = frame[frame["is_attention_check"]]
    assert checks["inclusion_probability"].isna().all() and checks["stratum"].isna().all()


def test_simple_random_and_census_are_recorded_and_draw_what_earlier_versions_drew(
        tmp_path: Path, dataset: Dataset, generations: list[GenerationRecord]) -> None:
    ds = Dataset(personas=dataset.personas, conversations=dataset.conversations)
    config = RatingStudyConfig.model_validate({**BASE, "conversations": 4})
    db = str(tmp_path / "srs.db")
    create_study(config, ds, generations, db=db, admin_token="t" * 24)
    store = RatingStore.open(db)
    try:
        record = read_sampling(store)
        with store.read() as conn:
            convs = sorted({r.conversation_id for r in conn.execute(sa.select(schema.items.c.conversation_id))
                            if r.conversation_id})
    finally:
        store.close()
    assert record is not None and (record.method, record.frame_size, record.sample_size) == ("simple_random", 10, 4)
    assert record.probability("all") == pytest.approx(0.4)
    frame_ids = sorted({g.conversation_id for g in generations})
    assert convs == sorted(random.Random(3).sample(frame_ids, 4))  # the seeded draw is unchanged
    census = str(tmp_path / "all.db")
    create_study(RatingStudyConfig.model_validate(BASE), ds, generations, db=census, admin_token="t" * 24)
    store = RatingStore.open(census)
    try:
        record = read_sampling(store)
    finally:
        store.close()
    assert record is not None and record.method == "census" and record.probability("all") == 1.0


def test_a_study_made_before_designs_were_recorded_gets_it_on_rerun(
        tmp_path: Path, dataset: Dataset, generations: list[GenerationRecord]) -> None:
    ds = Dataset(personas=dataset.personas, conversations=dataset.conversations)
    config = RatingStudyConfig.model_validate({**BASE, "conversations": 5})
    db = str(tmp_path / "old.db")
    create_study(config, ds, generations, db=db, admin_token="t" * 24)
    store = RatingStore.open(db)
    try:
        with store.write() as conn:  # what a study made by an earlier version looks like
            conn.execute(schema.meta.delete().where(schema.meta.c.key == "sampling"))
        assert read_sampling(store) is None
        assert rating_frame(store)["sampling"].isna().all()
    finally:
        store.close()
    again = create_study(config, ds, generations, db=db)
    assert not again.created
    store = RatingStore.open(db)
    try:
        record = read_sampling(store)
    finally:
        store.close()
    assert record is not None and record.method == "simple_random" and record.sample_size == 5


def test_the_analysis_of_a_stratified_study_weights_its_strata(tmp_path: Path, dataset: Dataset) -> None:
    ds, gens = _uneven(dataset)
    config = RatingStudyConfig.model_validate({**BASE, "conversations": 6, "strata": "scenario_id",
                                               "include_reference": False, "ratings_per_item": 3})
    db = str(tmp_path / "s.db")
    create_study(config, ds, gens, db=db, admin_token="t" * 24)
    simulate_ratings(db, seed=2)
    store = RatingStore.open(db)
    try:
        ratings = rating_frame(store)
    finally:
        store.close()
    scenario = {c.id: c.scenario_id for c in ds.conversations}
    rng = np.random.default_rng(0)
    scores = pd.DataFrame([{"conversation_id": g.conversation_id, "system": g.system,
                            "scenario_id": scenario[g.conversation_id], "judge_overall": float(rng.normal())}
                           for g in gens])
    result = analyze(AnalysisConfig(by=[], bootstrap=0, ordinal="none", rating_level_tests=False),
                     ratings=ratings, scores=scores, out=tmp_path / "analysis")
    assert result.ppi is not None
    assert result.ppi.sampling.startswith("a stratified random sample within scenario_id")
    assert (result.ppi.rated_conversations, result.ppi.unrated_conversations) == (6, 4)
    assert {e.target for e in result.ppi.estimates if e.kind == "system"} == {g.system for g in gens}


def test_the_analysis_reads_the_columns_the_export_writes() -> None:
    from tidekit.analysis._ratings import SAMPLING_COLUMNS as READ
    from tidekit.rating._sampling import SAMPLING_COLUMNS as WRITTEN

    assert READ == WRITTEN
