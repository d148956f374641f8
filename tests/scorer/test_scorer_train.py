"""``tidekit scorer train``: grouped folds, learning a known function, not learning noise, bad labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scorer_synthetic import FAST, synthetic_rows, write_labels

from tidekit.errors import ConfigError, DataError
from tidekit.scorer import ScorerTrainConfig, grouped_folds, load_scorer, train_scorer


@pytest.mark.parametrize("seed", range(5))
def test_grouped_folds_never_put_one_group_in_two_folds(seed: int) -> None:
    import random

    rng = random.Random(seed)
    groups = [f"g{rng.randint(0, 60)}" for _ in range(400)]
    folds = grouped_folds(groups, 5, seed)
    where: dict[str, set[int]] = {}
    for g, f in zip(groups, folds, strict=True):
        where.setdefault(g, set()).add(f)
    assert all(len(f) == 1 for f in where.values())
    sizes = [folds.count(k) for k in range(5)]
    assert min(sizes) > 0 and max(sizes) - min(sizes) <= max(groups.count(g) for g in set(groups))
    assert folds == grouped_folds(groups, 5, seed)  # seeded
    assert folds != grouped_folds(groups, 5, seed + 100)


def test_more_folds_than_groups_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="folds=4 but the labels hold only 3 group"):
        grouped_folds(["a", "b", "c", "a"], 4, 0)


@pytest.mark.slow
def test_the_scorer_learns_a_known_function_of_the_text(trained_scorer: Path) -> None:
    meta = json.loads((trained_scorer / "scorer.json").read_text())
    cv = {a["label"]: a for a in meta["cv"]["agreement"]}
    assert cv["warmth"]["spearman"] >= 0.8, cv
    assert cv["warmth"]["ci_low"] is not None and cv["warmth"]["ci_low"] < cv["warmth"]["spearman"]
    for name in ("card.md", "calibration.png", "cv_predictions.csv", "manifest.json", "head.safetensors"):
        assert (trained_scorer / name).is_file(), name
    card = (trained_scorer / "card.md").read_text()
    assert "not therapy" in card and "Spearman" in card and meta["labels_sha256"] in card
    scorer = load_scorer(trained_scorer)
    warm = scorer.predict(["I feel numb."] * 2, ["I'm so sorry you're going through this. That sounds really "
                                                 "painful. You are not alone in this.",
                                                 "The shop closes at six. Rain is expected later. The form needs "
                                                 "a signature."])["warmth"]
    assert warm[0] > warm[1] + 1.0
    assert warm.min() >= 0.0 and warm.max() <= 3.0  # clipped to the training scale


@pytest.mark.slow
def test_shuffled_labels_give_no_agreement(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "shuffled.csv", synthetic_rows(240, shuffle_labels=True))
    result = train_scorer(ScorerTrainConfig(labels=str(labels), label=["warmth"], group="post", **FAST),
                          out=tmp_path / "noise", progress=False)
    rho = result.cv[0].spearman
    assert rho is not None and -0.15 <= rho <= 0.15, rho


@pytest.mark.slow
def test_a_rerun_resumes_and_a_finished_scorer_is_not_retrained(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "l.csv", synthetic_rows(60))
    config = ScorerTrainConfig(labels=str(labels), label=["warmth"], group="post", **{**FAST, "epochs": 1})
    first = train_scorer(config, out=tmp_path / "s", progress=False)
    assert not first.skipped and len(list((tmp_path / "s" / ".cv").glob("*.npy"))) == 3
    again = train_scorer(config, out=tmp_path / "s", progress=False)
    assert again.skipped and again.cv == first.cv
    (tmp_path / "s" / "scorer.json").unlink()  # a run killed before the end: the folds are kept
    resumed = train_scorer(config, out=tmp_path / "s", progress=False)
    assert not resumed.skipped and resumed.cv == first.cv  # out-of-fold predictions read back, not refitted
    changed = train_scorer(config.model_copy(update={"seed": 1}), out=tmp_path / "s", progress=False)
    assert not changed.skipped


def _bad(tmp_path: Path, rows: list[dict[str, object]], **kw: object) -> None:
    labels = write_labels(tmp_path / "bad.csv", rows)
    train_scorer(ScorerTrainConfig(labels=str(labels), label=["warmth"], **{**FAST, **kw}), out=tmp_path / "o",
                 progress=False)


def test_bad_labels_files_get_clear_errors(tmp_path: Path) -> None:
    rows = synthetic_rows(40)
    with pytest.raises(DataError, match="no column 'warmth'"):
        _bad(tmp_path, [{k: v for k, v in r.items() if k != "warmth"} for r in rows])
    with pytest.raises(DataError, match=r"line 3.*warmth='high' is not a number"):
        _bad(tmp_path, [{**r, "warmth": "high"} if i == 1 else r for i, r in enumerate(rows)])
    with pytest.raises(DataError, match="holds one value only"):
        _bad(tmp_path, [{**r, "warmth": 2} for r in rows])
    with pytest.raises(DataError, match="only 12 labelled pair"):
        _bad(tmp_path, rows[:12])
    with pytest.raises(ConfigError, match="label column"):
        train_scorer(ScorerTrainConfig(labels=str(tmp_path / "bad.csv")), out=tmp_path / "o", progress=False)
    with pytest.raises(DataError, match="no such labels file"):
        train_scorer(ScorerTrainConfig(labels=str(tmp_path / "none.csv"), label=["warmth"]), out=tmp_path / "o",
                     progress=False)


def test_conflicting_duplicates_are_a_named_warning() -> None:
    from tidekit.metrics import LabelRow
    from tidekit.scorer._train import _merge_duplicates

    rows = [LabelRow(id="a", context="c", response="r", human={"x": 1.0}),
            LabelRow(id="b", context="c", response="r", human={"x": 3.0}, weight=3.0),
            LabelRow(id="c", context="c", response="other", human={"x": 2.0})]
    merged, warnings = _merge_duplicates(rows, ["x"])
    assert len(merged) == 2 and merged[0].human["x"] == pytest.approx(2.5) and merged[0].weight == 4.0
    assert any(w.startswith("conflicting duplicates: 1 duplicated") and "a/b" in w for w in warnings)


def test_cli_errors_have_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tidekit.cli import main

    labels = write_labels(tmp_path / "l.csv", synthetic_rows(10))
    code = main(["scorer", "train", "--labels", str(labels), "--label", "warmth", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "only 10 labelled pair" in err


def test_epitome_files_join_into_a_labels_file(tmp_path: Path) -> None:
    import pandas as pd

    from tidekit.metrics import load_labels
    from tidekit.scorer import EPITOME_FILES, epitome_labels

    # synthetic rows in EPITOME's published column layout (not EPITOME data)
    pairs = [("s1", "r1", "I feel lost.", "What happened?"), ("s1", "r2", "I feel lost.", "So sorry."),
             ("s2", "r3", "Nobody calls.", "Same here, it passes.")]
    for i, name in enumerate(EPITOME_FILES.values()):
        rows = [{"sp_id": s, "rp_id": r, "seeker_post": p, "response_post": q, "level": (j + i) % 3,
                 "rationales": ""} for j, (s, r, p, q) in enumerate(pairs) if not (i == 2 and r == "r3")]
        pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
    assert epitome_labels(tmp_path, tmp_path / "labels.csv") == 2  # r3 has no explorations level
    rows = load_labels(tmp_path / "labels.csv", ["er", "ip", "ex", "total"], group="seeker_id")
    assert [r.id for r in rows] == ["s1-r1", "s1-r2"] and {r.group for r in rows} == {"s1"}
    assert rows[1].human == {"er": 1.0, "ip": 2.0, "ex": 0.0, "total": 3.0}
    pd.DataFrame([{"sp_id": "s", "rp_id": "r", "seeker_post": "a", "response_post": "b", "level": 7}]).to_csv(
        tmp_path / EPITOME_FILES["er"], index=False)
    with pytest.raises(DataError, match="level '7' is not 0, 1 or 2"):
        epitome_labels(tmp_path, tmp_path / "x.csv")
