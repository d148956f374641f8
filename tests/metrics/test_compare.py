"""Paired comparisons: Holm against statsmodels, effect size by hand, the pairs chosen."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tidekit.metrics import compare_systems, holm, paired_test, rank_biserial


def test_holm_equals_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.005, 0.04]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    with_nan = holm([0.01, float("nan"), 0.04])
    assert with_nan[0] == pytest.approx(0.02) and math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.04)


def test_rank_biserial_by_hand() -> None:
    # |d| ranks 1,2,3,4; W+ = 1+2+4 = 7, W- = 3; r = (7 - 3) / 10
    assert rank_biserial([1, 2, -3, 4]) == pytest.approx(0.4)
    assert rank_biserial([0, 1, 2]) == pytest.approx(1.0)  # zeros dropped
    assert math.isnan(rank_biserial([0, 0]))


def test_paired_test_matches_scipy() -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(3)
    a, b = rng.normal(0.6, 0.1, 40), rng.normal(0.55, 0.1, 40)
    stats = paired_test(a, b)
    assert stats["p_value"] == pytest.approx(wilcoxon(a - b).pvalue)
    assert stats["mean_diff"] == pytest.approx(float(np.mean(a - b)))
    assert stats["n_pairs"] == 40


def _table() -> pd.DataFrame:
    rows = []
    for persona in range(1, 9):
        for k in range(2):
            cid = f"{persona}-{k}"
            for system, model, cond, base in (("m:zero_shot", "m", "zero_shot", 0.5),
                                              ("m:fine_tuned", "m", "fine_tuned", 0.6),
                                              ("reference", "reference", "reference", 1.0)):
                rows.append({"conversation_id": cid, "persona_id": str(persona), "system": system, "model": model,
                             "condition": cond, "cosine": base + 0.01 * persona + 0.001 * k,
                             "judge_overall": 3.0 + (cond == "fine_tuned") + 0.1 * persona})
    return pd.DataFrame(rows)


def test_compare_systems_pairs_and_units() -> None:
    table = compare_systems(_table(), ["cosine", "judge_overall"])
    kinds = set(zip(table.comparison, table.system_a, table.system_b, table.metric, strict=True))
    assert ("fine_tuned_vs_zero_shot", "m:fine_tuned", "m:zero_shot", "cosine") in kinds
    assert ("vs_reference", "m:fine_tuned", "reference", "judge_overall") in kinds
    # a reference scored against itself is not compared on reference-based metrics
    assert not any(c == "vs_reference" and m == "cosine" for c, _, _, m in kinds)
    ft = table[(table.comparison == "fine_tuned_vs_zero_shot") & (table.metric == "cosine")].iloc[0]
    assert ft.n_pairs == 8 and ft.mean_diff == pytest.approx(0.1) and ft.rank_biserial == 1.0
    by_conv = compare_systems(_table(), ["cosine"], unit="conversation")
    assert by_conv.iloc[0].n_pairs == 16
    tested = table.dropna(subset=["p_value"])
    assert len(tested) == 3 and (tested.p_holm >= tested.p_value).all()
