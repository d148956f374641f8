"""The ceiling analysis: paired gains, slope on log10 parameters, CIs, plots, refusals.

Synthetic score tables with planted effects; the slope and its model-level OLS interval are
checked against numpy.polyfit and statsmodels OLS (independent implementations).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidekit.analysis import ceiling_analysis
from tidekit.errors import DataError

SIZES = {"tiny": 0.135, "small": 0.5, "mid": 1.5, "large": 3.8}


def synthetic_scores(slope: float, *, personas: int = 30, per_persona: int = 8, scenario_bonus: float = 0.0,
                     seed: int = 0) -> pd.DataFrame:
    """Scores where gain = 0.02 + slope * log10(params) + persona effect + noise; scenario s0 gains
    ``scenario_bonus`` more."""
    rng = np.random.default_rng(seed)
    persona_fx = rng.normal(0, 0.02, personas)
    rows = []
    for model, size in SIZES.items():
        x = np.log10(size * 1e9)
        for p in range(personas):
            for k in range(per_persona):
                scenario = f"s{k % 4}"
                zero = rng.normal(0.45, 0.05)
                gain = (0.02 + slope * (x - 9) + persona_fx[p] + rng.normal(0, 0.03)
                        + (scenario_bonus if scenario == "s0" else 0.0))
                base = {"conversation_id": f"{p}-{k:02d}", "persona_id": str(p), "scenario_id": scenario,
                        "model": model, "age": 30 + p, "status": "scored"}
                rows.append({**base, "system": f"{model}:zero_shot", "condition": "zero_shot", "cosine": zero,
                             "rouge_l": zero / 2})
                rows.append({**base, "system": f"{model}:fine_tuned", "condition": "fine_tuned",
                             "cosine": zero + gain, "rouge_l": zero / 2 + gain / 2})
    return pd.DataFrame(rows)


def test_planted_slope_is_recovered_with_both_intervals() -> None:
    scores = synthetic_scores(0.04, scenario_bonus=0.1)
    result = ceiling_analysis(scores, params=SIZES, n_boot=500, seed=1)
    assert result.metrics == ["cosine", "rouge_l"]  # float columns only: 'age' is an int facet
    cos = result.slope("cosine")
    assert cos.slope is not None and abs(cos.slope - 0.04) < 0.006
    assert cos.ci_low is not None and cos.ci_high is not None and cos.ci_low < 0.04 < cos.ci_high
    assert cos.ci_low > 0  # the planted ceiling is detected
    # rouge_l gains are half the cosine gains, so is its slope
    rouge = result.slope("rouge_l")
    assert rouge.slope == pytest.approx(cos.slope / 2, rel=1e-9)

    # independent check: OLS of the model means on log10(params), by numpy and statsmodels
    import statsmodels.api as sm

    gains = result.gains_table()
    g = gains[(gains.metric == "cosine") & (gains.scenario == "all")].sort_values("model")
    pairs = scores.pivot_table(index=["model", "conversation_id"], columns="condition", values="cosine")
    means = (pairs.fine_tuned - pairs.zero_shot).groupby("model").mean()
    assert np.allclose(g.set_index("model").gain.astype(float), means.loc[g.model])
    x = np.log10(np.array([SIZES[m] for m in means.index]) * 1e9)
    assert cos.slope == pytest.approx(np.polyfit(x, means.to_numpy(), 1)[0], rel=1e-9)
    fit = sm.OLS(means.to_numpy(), sm.add_constant(x)).fit()
    lo, hi = fit.conf_int(alpha=0.05)[1]
    assert cos.ols_se == pytest.approx(fit.bse[1], rel=1e-9)
    assert (cos.ols_ci_low, cos.ols_ci_high) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    assert cos.n_models == 4 and cos.n_personas == 30 and cos.n_pairs == 4 * 30 * 8

    # gains per scenario: s0 carries the planted +0.1 for every model
    by = gains[(gains.metric == "cosine") & (gains.scenario != "all")]
    bump = by[by.scenario == "s0"].set_index("model").gain - by[by.scenario == "s1"].set_index("model").gain
    assert np.allclose(bump.astype(float), 0.1, atol=0.03)


def test_bootstrap_interval_covers_a_flat_slope_at_its_nominal_rate() -> None:
    # 60 independent data sets with no size effect: the 95 % persona-bootstrap interval should
    # contain 0 about 57 times (binomial sd ~1.7); fewer than 51 means it is too narrow
    covered = 0
    for rep in range(60):
        scores = synthetic_scores(0.0, personas=12, per_persona=4, seed=100 + rep)
        row = ceiling_analysis(scores, params=SIZES, metrics=["cosine"], n_boot=300, seed=rep,
                               by_scenario=False).slope("cosine")
        assert row.ci_low is not None and row.ci_high is not None
        covered += row.ci_low < 0 < row.ci_high
    assert covered >= 51, covered


def test_hand_computed_pairs_and_unpaired_rows() -> None:
    rows = [
        # model a (registry: smollm2-135m) and b (params column); conversation c3 lacks its fine-tuned row
        ("smollm2-135m", "zero_shot", "c1", 0.2), ("smollm2-135m", "fine_tuned", "c1", 0.3),
        ("smollm2-135m", "zero_shot", "c2", 0.4), ("smollm2-135m", "fine_tuned", "c2", 0.6),
        ("smollm2-135m", "zero_shot", "c3", 0.9),
        ("big", "zero_shot", "c1", 0.2), ("big", "fine_tuned", "c1", 0.7),
        ("big", "zero_shot", "c2", 0.2), ("big", "fine_tuned", "c2", 0.5),
    ]
    table = pd.DataFrame([{"model": m, "condition": c, "conversation_id": cid, "persona_id": cid,
                           "scenario_id": "x", "system": f"{m}:{c}", "cosine": v,
                           "params_b": 1.35 if m == "big" else None} for m, c, cid, v in rows])
    result = ceiling_analysis(table, n_boot=50)
    gains = result.gains_table().set_index(["model", "scenario"])
    # mean gains by hand: smollm2 (0.1 + 0.2) / 2 = 0.15; big (0.5 + 0.3) / 2 = 0.4
    assert gains.loc[("smollm2-135m", "all"), "gain"] == pytest.approx(0.15)
    assert gains.loc[("big", "all"), "gain"] == pytest.approx(0.4)
    assert result.unpaired == 1
    assert result.models == {"big": 1.35, "smollm2-135m": 0.135}
    # two models, one decade apart: slope = (0.4 - 0.15) / 1
    assert result.slope("cosine").slope == pytest.approx(0.25)
    assert result.slope("cosine").ols_se is None  # needs 3 models


def test_write_tables_plots_and_manifest(tmp_path: Path) -> None:
    result = ceiling_analysis(synthetic_scores(0.03, personas=6, per_persona=8), params=SIZES, n_boot=100)
    files = result.write(tmp_path / "ceiling")
    names = {f.name for f in files}
    assert {"slopes.csv", "gains.csv", "ceiling.json", "ceiling.png", "ceiling.svg", "ceiling_scenarios.png",
            "ceiling_scenarios.svg"} <= names
    assert (tmp_path / "ceiling" / "ceiling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "ceiling" / "ceiling.svg").read_text()
    slopes = pd.read_csv(tmp_path / "ceiling" / "slopes.csv")
    assert set(slopes.scenario) == {"all", "s0", "s1", "s2", "s3"}
    from tidekit._manifest import read_manifest

    assert read_manifest(tmp_path / "ceiling").status == "finished"


def test_refusals_name_the_problem() -> None:
    scores = synthetic_scores(0.0, personas=3, per_persona=2)
    with pytest.raises(DataError, match="no parameter count for 'large', 'mid', 'small', 'tiny'"):
        ceiling_analysis(scores)
    with pytest.raises(DataError, match="at least two models"):
        ceiling_analysis(scores[scores.model == "tiny"], params=SIZES)
    with pytest.raises(DataError, match="lack column"):
        ceiling_analysis(scores.drop(columns="persona_id"), params=SIZES)
    with pytest.raises(DataError, match="repeat a"):
        ceiling_analysis(pd.concat([scores, scores.head(1)]), params=SIZES)
    with pytest.raises(DataError, match="not in the scores"):
        ceiling_analysis(scores, params=SIZES, metrics=["bleurt"])


def test_cli_ceiling(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    scores = synthetic_scores(0.04, personas=8, per_persona=4)
    scores["params_b"] = scores.model.map(SIZES)
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    result = run_cli("finetune", "ceiling", path, "--out", tmp_path / "out", "--n-boot", "200", "--metric", "cosine")
    assert result.code == 0, result.err
    assert "cosine" in result.out and (tmp_path / "out" / "ceiling.svg").is_file()
    bad = run_cli("finetune", "ceiling", path, "--out", tmp_path / "o2", "--params", "oops")
    assert bad.code == 2 and "MODEL=BILLIONS" in bad.err and "Traceback" not in bad.err
