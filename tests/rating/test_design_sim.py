"""The study design (balance, order, attention checks) and the simulated-rater model: planted
effects come back out of the export, absent ones do not."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from tidekit.data import Dataset, GenerationRecord
from tidekit.errors import ConfigError
from tidekit.rating import (
    RaterModel,
    RatingStore,
    RatingStudyConfig,
    build_plan,
    create_study,
    emotionally_layered,
    plan_bundles,
    rating_frame,
    simulate_ratings,
    validation_first,
)


@pytest.mark.parametrize(("n_convs", "systems", "k", "m"), [(10, 3, 2, 6), (7, 4, 3, 5), (50, 5, 3, 20), (4, 2, 5, 8)])
def test_every_item_gets_k_ratings_and_no_bundle_repeats_an_item(n_convs: int, systems: int, k: int, m: int) -> None:
    convs = [f"c{c}" for c in range(n_convs) for _ in range(systems)]
    bundles = plan_bundles(convs, k, m, random.Random(0))
    counts = Counter(i for b in bundles for i in b)
    assert set(counts) == set(range(len(convs)))
    assert min(counts.values()) == k and max(counts.values()) <= k + 1
    assert sum(c - k for c in counts.values()) < m  # only the last bundle is padded
    assert all(len(b) == m == len(set(b)) for b in bundles)
    if m <= n_convs:  # enough conversations: a rater never sees one conversation twice
        assert all(len({convs[i] for i in b}) == m for b in bundles[:-1])


def test_too_many_items_per_rater_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="items_per_rater"):
        plan_bundles(["a", "b"], 2, 3, random.Random(0))


def test_plan_is_seeded_orders_differ_and_checks_never_come_first(dataset: Dataset,
                                                                  generations: list[GenerationRecord]) -> None:
    cfg = RatingStudyConfig(items_per_rater=6, ratings_per_item=2, attention_checks=2, seed=5)
    a, b = build_plan(cfg, dataset, generations), build_plan(cfg, dataset, generations)
    assert [x.items for x in a.bundles] == [x.items for x in b.bundles] and a.inputs_hash == b.inputs_hash
    c = build_plan(cfg.model_copy(update={"seed": 6}), dataset, generations)
    assert [x.items for x in c.bundles] != [x.items for x in a.bundles]
    checks = {i.index for i in a.items if i.is_attention_check}
    assert all(sum(i in checks for i in bundle.items) == 2 and bundle.items[0] not in checks for bundle in a.bundles)
    firsts = {bundle.items[0] for bundle in a.bundles}
    assert len(firsts) > 1  # orders are per rater
    for item in a.items:
        if item.is_attention_check:
            assert f"choose {item.expected} for every rating" in item.response


def test_item_features() -> None:
    assert validation_first("That sounds frightening. Have you tried breathing exercises?")
    assert not validation_first("Try breathing exercises. It makes sense to feel scared.")
    assert emotionally_layered("You may feel afraid, ashamed and lonely all at once.")
    assert not emotionally_layered("You may feel afraid.")


def test_simulated_raters_carry_the_planted_effects(dataset: Dataset, tmp_path: Path) -> None:
    """The default model plants +0.6 for raters 55-64 and 65+ on validation-first replies and no gender
    effect; a rater-level comparison of the export recovers the one and not the other."""
    import pandas as pd

    gens = []
    for n, conv in enumerate(dataset.conversations[:40]):
        text = ("That sounds so painful, and it makes sense. Would it help to talk it through?" if n % 2 else
                "Try a breathing exercise tonight. Many people find a routine helps.")
        gens.append(GenerationRecord(conversation_id=conv.id, system="m:zero_shot", model="m",
                                     condition="zero_shot", output=text))
    db = str(tmp_path / "sim.db")
    create_study(RatingStudyConfig(items_per_rater=20, ratings_per_item=30, attention_checks=1, include_reference=False),
                 dataset, gens, db=db)
    model = RaterModel(rater_sd=0.3, noise_sd=0.5, attentive_share=1.0)
    store = RatingStore.open(db)
    try:
        summary = simulate_ratings(store, model=model, seed=11)
        again = simulate_ratings(store, model=model, seed=11)  # the study is full: nothing added
        frame = rating_frame(store)
    finally:
        store.close()
    assert summary.full and summary.raters == 60 and again.raters == 0
    assert frame["simulated"].all() and frame["attention_passed"].all()
    real = frame[~frame["is_attention_check"]].copy()
    real["vf"] = real["item_id"].map(dict(zip(real["item_id"], real["conversation_id"].map(
        {c.id: bool(n % 2) for n, c in enumerate(dataset.conversations[:40])}), strict=False)))
    per_rater = real.groupby(["rater_id", "vf"])["empathy"].mean().unstack()
    gap = (per_rater[True] - per_rater[False]).rename("gap")
    raters = real.drop_duplicates("rater_id").set_index("rater_id")
    older = raters["age_group"].isin(["55-64", "65+"])
    diff_age = gap[older].mean() - gap[~older].mean()
    assert 0.25 < diff_age < 1.0, diff_age  # planted +0.6 (rounding to the scale shrinks it a little)
    woman = raters["gender"] == "woman"
    mean = real.groupby("rater_id")["empathy"].mean()
    assert abs(mean[woman].mean() - mean[~woman].mean()) < 0.4  # no gender effect planted
    assert pd.api.types.is_bool_dtype(frame["simulated"])
