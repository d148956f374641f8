"""Each statistic against an independent computation on fixed data, by hand or with R.

R reference values were computed once with R 4.2.2 (Debian r-base-core), lme4 1.1.31,
lmerTest 3.1.3 and ordinal (r-cran-ordinal) on the CSV files in tests/analysis/data; each
test names the R call. CI does not need R.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tidekit.analysis import AnalysisConfig, agreement, fit_lmm
from tidekit.analysis._demographics import _split_plot
from tidekit.analysis._design import build_design, codes
from tidekit.analysis._effects import (
    adjust,
    cliffs_delta,
    cramers_v,
    epsilon_squared,
    matched_rank_biserial,
    rank_biserial,
    spearman_ci,
    wilson,
)
from tidekit.analysis._ordinal import fit_ordinal

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def crossed() -> pd.DataFrame:
    return pd.read_csv(DATA / "crossed.csv")


@pytest.fixture(scope="module")
def balanced() -> pd.DataFrame:
    return pd.read_csv(DATA / "balanced.csv")


def _fit(d: pd.DataFrame, factors: list[str], inter: list[tuple[str, str]] = ()):  # type: ignore[assignment]
    D = build_design(d, factors, inter, reference={"age": "mid"})
    return D, fit_lmm(d["y"].to_numpy(float), D.X, D.names,
                      {"rater": codes(d["rater"])[0], "item": codes(d["item"])[0]})


def test_lmm_matches_lme4_and_lmertest(crossed: pd.DataFrame) -> None:
    # R: m <- lmer(y ~ system + age + (1|rater) + (1|item), data=d, REML=TRUE)
    #    (age levels mid, old, young); summary(m)$coefficients; VarCorr(m); REMLcrit(m)
    D, f = _fit(crossed, ["system", "age"])
    ref = {  # estimate, SE, Satterthwaite df
        "(Intercept)": (3.9965595750, 0.2669490849, 48.87393647),
        "system[b]": (0.2690250217, 0.2250064435, 36.22507558),
        "system[c]": (0.0244936359, 0.2248250551, 36.30775181),
        "age[old]": (0.1228485038, 0.3125542377, 26.96161023),
        "age[young]": (-0.4443003247, 0.3125619239, 26.96439615),
    }
    for name, (est, se, df) in ref.items():
        L = np.zeros(len(f.beta))
        L[f.names.index(name)] = 1
        e, s, d = f.contrast(L)
        assert e == pytest.approx(est, abs=2e-6), name
        assert s == pytest.approx(se, rel=2e-5), name
        assert d == pytest.approx(df, rel=1e-4), name
    assert f.variances["rater"] == pytest.approx(0.4185334648, rel=1e-4)
    assert f.variances["item"] == pytest.approx(0.2395582381, rel=1e-4)
    assert f.sigma2 == pytest.approx(1.0092357964, rel=1e-5)
    assert f.deviance == pytest.approx(1390.634186, abs=1e-4)
    # R: anova(m, ddf="Satterthwaite"): system F 0.86930 (2, 35.67640465), age F 1.82518 (2, 26.93288411)
    sysf = f.f_test(np.eye(len(f.beta))[D.columns("system")])
    assert sysf["F"] == pytest.approx(0.86930, abs=1e-5)
    assert sysf["df2"] == pytest.approx(35.67640465, rel=1e-4)
    assert sysf["p"] == pytest.approx(0.42794, abs=1e-5)
    agef = f.f_test(np.eye(len(f.beta))[D.columns("age")])
    assert agef["df2"] == pytest.approx(26.93288411, rel=1e-4)
    assert agef["p"] == pytest.approx(0.18057, abs=1e-5)


def test_system_lmm_with_conversation_and_reply_effects_matches_lmertest() -> None:
    # tests/analysis/data/systems.csv: 24 raters x 15 of 60 replies (20 conversations x 3 systems),
    # simulated with tidekit.analysis._calibration.simulate_design (seed 13). R 4.2.2, lme4 1.1.31,
    # lmerTest 3.1.3:
    #   d$system <- factor(d$system, levels=c("zero_shot","fine_tuned","reference"))
    #   m <- lmer(y ~ system + (1|rater) + (1|conversation) + (1|item) + (1|rater:system), d)
    #   summary(m)$coefficients; as.data.frame(VarCorr(m)); REMLcrit(m)
    #   anova(m, ddf="Satterthwaite"); contest(m, c(0, -1, 1), ddf="Satterthwaite")
    from tidekit.analysis._models import fit_mixed

    d = pd.read_csv(DATA / "systems.csv").rename(columns={"y": "rating"})
    mm = fit_mixed(d, ["system"], reference={"system": "zero_shot"}, rater_by="system", conversation=True)
    assert mm.formula == "rating ~ system + (1|rater) + (1|conversation) + (1|item) + (1|rater:system)"
    f = mm.fit
    ref = {  # estimate, SE, Satterthwaite df
        "(Intercept)": (4.2925160745, 0.2258981122, 60.12315658),
        "system[fine_tuned]": (0.1513627914, 0.2306619623, 40.94673574),
        "system[reference]": (-0.2194406939, 0.2302716524, 40.68345666),
    }
    for name, (est, se, df) in ref.items():
        i = f.names.index(name)
        e, s, nu = f.contrast(np.eye(len(f.beta))[i])
        assert e == pytest.approx(est, abs=1e-6) and s == pytest.approx(se, rel=1e-4)
        assert nu == pytest.approx(df, rel=1e-3)
    variances = {"rater_by": 0.09234825009, "item": 0.26413351051, "rater": 0.49146879541,
                 "conversation": 0.07654313799}
    for g, v in variances.items():
        assert f.variances[g] == pytest.approx(v, rel=1e-3, abs=1e-5)
    assert f.sigma2 == pytest.approx(0.96625221942, rel=1e-5)
    assert f.deviance == pytest.approx(1141.871621, abs=1e-4)
    omni = f.f_test(mm.term_matrix("system"))
    assert omni["F"] == pytest.approx(1.31601, rel=1e-4) and omni["df2"] == pytest.approx(40.721133, rel=1e-3)
    assert omni["p"] == pytest.approx(0.27937, abs=1e-4)
    c = f.t_test(mm.vector({"system[reference]": 1.0, "system[fine_tuned]": -1.0}))
    assert c["t"] ** 2 == pytest.approx(2.601900819, rel=1e-4) and c["df"] == pytest.approx(40.53632251, rel=1e-3)
    assert c["p"] == pytest.approx(0.1144948575, abs=1e-5)


def test_f_denominator_df_follows_lmertest_rule() -> None:
    # lmerTest:::get_Fstat_ddf: one t -> its df; equal dfs -> their mean; any df <= 2 -> 2;
    # else 2E / (E - q), E = sum(nu / (nu - 2)). By hand: nu = (10, 20): E = 1.25 + 1.1111 = 2.3611,
    # 2E / (E - 2) = 13.0769...
    from tidekit.analysis._lmm import fstat_ddf

    assert fstat_ddf(np.array([7.5])) == 7.5
    assert fstat_ddf(np.array([12.0, 12.0, 12.0])) == 12.0
    assert fstat_ddf(np.array([1.5, 30.0])) == 2.0
    assert fstat_ddf(np.array([10.0, 20.0])) == pytest.approx(2 * (1.25 + 20 / 18) / (1.25 + 20 / 18 - 2))


def test_lmm_interaction_f_matches_lmertest(crossed: pd.DataFrame) -> None:
    # R: m2 <- lmer(y ~ age*system + (1|rater) + (1|item)); anova(m2, ddf="Satterthwaite")
    #    age:system  NumDF 4  DenDF 394.8409217  F 1.80412  Pr(>F) 0.12720
    D, f = _fit(crossed, ["age", "system"], [("age", "system")])
    r = f.f_test(np.eye(len(f.beta))[D.columns("age:system")])
    assert r["df1"] == 4
    assert r["F"] == pytest.approx(1.80412, abs=1e-5)
    assert r["df2"] == pytest.approx(394.8409217, rel=1e-4)
    assert r["p"] == pytest.approx(0.12720, abs=1e-5)


def test_lmm_agrees_with_statsmodels_mixedlm(crossed: pd.DataFrame) -> None:
    """A second independent implementation: statsmodels MixedLM with variance components."""
    import statsmodels.formula.api as smf

    d = crossed.assign(one=1)
    sm = smf.mixedlm("y ~ C(system)", d, groups="one", re_formula="0",
                     vc_formula={"rater": "0 + C(rater)", "item": "0 + C(item)"}).fit(reml=True)
    _, f = _fit(crossed, ["system"])
    assert f.beta[f.names.index("system[b]")] == pytest.approx(sm.fe_params["C(system)[T.b]"], abs=1e-4)
    assert f.sigma2 == pytest.approx(sm.scale, rel=1e-3)


def test_split_plot_anova_matches_r_aov(balanced: pd.DataFrame) -> None:
    # R: cm <- aggregate(y ~ rater + age + system, data=b, FUN=mean)
    #    summary(aov(y ~ age*system + Error(rater/system), data=cm))
    #    age:system Df 2, residual Df 44, F 2.82432, Pr(>F) 0.07014478
    cell = balanced.groupby(["rater", "system"])["y"].mean().unstack("system")
    attr = balanced.groupby("rater")["age"].first()
    r = _split_plot(cell, attr)
    assert r is not None
    assert (r["df1"], r["df2"]) == (2, 44)
    assert r["F"] == pytest.approx(2.82432, abs=1e-5)
    assert r["p"] == pytest.approx(0.07014478, abs=1e-7)
    # partial eta^2 = SS_ab / (SS_ab + SS_err) = 2.770833 / (2.770833 + 21.583333)
    assert r["partial_eta_squared"] == pytest.approx(2.770833333 / (2.770833333 + 21.583333333), rel=1e-8)


def test_rank_tests_match_r(balanced: pd.DataFrame) -> None:
    # R: wilcox.test(y ~ age, data=rm, exact=FALSE, correct=TRUE): W = 106, p = 0.05067837
    rm = balanced.groupby(["rater", "age"])["y"].mean().reset_index()
    older, younger = rm.loc[rm.age == "older", "y"], rm.loc[rm.age == "younger", "y"]
    mw = stats.mannwhitneyu(older, younger, alternative="two-sided")  # R's W is U of the first level
    assert float(mw.statistic) == 106
    assert mw.pvalue == pytest.approx(0.05067837, abs=1e-8)
    # rank-biserial = 2U/(n1 n2) - 1 = 2*106/144 - 1 by hand; it equals Cliff's delta
    assert rank_biserial(106, 12, 12) == pytest.approx(2 * 106 / 144 - 1)
    assert cliffs_delta(older, younger) == pytest.approx(2 * 106 / 144 - 1)
    # R: kruskal.test(y ~ system, data=b): chi-squared = 8.6635162, df 2, p = 0.01314442
    kw = stats.kruskal(*[g["y"] for _, g in balanced.groupby("system")])
    assert kw.statistic == pytest.approx(8.6635162, abs=1e-6)
    assert epsilon_squared(kw.statistic, len(balanced)) == pytest.approx(8.6635162 / (len(balanced) - 1))


def test_effect_sizes_by_hand() -> None:
    # Cliff's delta of x=[1,2,3], y=[2,2]: pairs > : 3 vs 2 twice = 2; < : 1 vs 2 twice = 2 -> 0
    assert cliffs_delta([1, 2, 3], [2, 2]) == 0
    assert cliffs_delta([3, 4], [1, 2]) == 1
    # matched rank-biserial of d = [1, -2, 3]: ranks 1, 2, 3; T+ = 4, T- = 2 -> (4 - 2) / 6
    assert matched_rank_biserial([1, -2, 3, 0]) == pytest.approx(1 / 3)
    # Cramer's V: chi2 = 10, n = 100, 3x2 table -> sqrt(10 / (100 * 1))
    assert cramers_v(10, 100, (3, 2)) == pytest.approx(np.sqrt(0.1))
    # Wilson 95% for 5/10: (0.2366, 0.7634) (Newcombe 1998, table I)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    # Fisher z CI, Bonett-Wright: rho 0.5, n 28 -> se = sqrt((1 + .125)/25) = 0.212132
    lo, hi = spearman_ci(0.5, 28)
    z, q = np.arctanh(0.5), 1.959963985
    assert lo == pytest.approx(np.tanh(z - q * 0.2121320344), abs=1e-9)
    assert hi == pytest.approx(np.tanh(z + q * 0.2121320344), abs=1e-9)


def test_corrections_by_hand() -> None:
    p = [0.01, 0.04, 0.03, None]
    # Holm: sorted .01 .03 .04 times 3, 2, 1 -> .03, .06, .06 (monotone)
    assert adjust(p, "holm") == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06), None]
    # BH: .01*3/1 = .03, .03*3/2 = .045, .04*3/3 = .04 -> step-up min: .03, .04, .04
    assert adjust(p, "fdr_bh") == [pytest.approx(0.03), pytest.approx(0.04), pytest.approx(0.04), None]


def test_ordinal_point_estimates_match_r_clm(balanced: pd.DataFrame) -> None:
    # R: coef(summary(clm(factor(y) ~ system, data=b))): systemb 1.06046057456, systemc 0.68077508935,
    #    model-based SEs 0.3688988490, 0.3641875222
    y = np.searchsorted(np.unique(balanced["y"]), balanced["y"].to_numpy())
    D = build_design(balanced, ["system"])
    fit = fit_ordinal(y, D.X[:, 1:], D.names[1:], [codes(balanced["rater"])[0], codes(balanced["item"])[0]])
    assert fit.beta == pytest.approx([1.06046057456, 0.68077508935], abs=2e-4)
    assert np.sqrt(np.diag(fit.vcov_naive)) == pytest.approx([0.3688988490, 0.3641875222], rel=2e-3)
    assert np.all(np.diag(fit.vcov) > 0)


def test_krippendorff_alpha_matches_the_published_example() -> None:
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", section C: 4 observers x 12
    # units; alpha interval 0.849, ordinal 0.815 (rounded to 3 decimals in the paper).
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
            [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    rows = [{"rater": f"c{i}", "item": f"u{j}", "rating": v} for i, row in enumerate(data)
            for j, v in enumerate(row) if v is not None]
    df = pd.DataFrame(rows)
    inter = agreement(df, "rating", "x", (1, 5), "interval", n_boot=300, seed=0)
    ordi = agreement(df, "rating", "x", (1, 5), "ordinal", n_boot=0, seed=0)
    assert inter.alpha == pytest.approx(0.849, abs=5e-4)
    assert ordi.alpha == pytest.approx(0.815, abs=5e-4)
    assert inter.n_items == 11  # unit 12 has a single value: not pairable
    assert inter.ci_low is not None and inter.ci_high is not None
    assert inter.ci_low < inter.alpha < inter.ci_high


def test_bootstrap_alpha_matches_the_package_on_a_resample() -> None:
    """The vectorised coincidence path gives krippendorff's value for an arbitrary weighting."""
    import krippendorff

    from tidekit.analysis._agreement import alpha_from_coincidences, unit_coincidences

    rng = np.random.default_rng(1)
    vc = rng.integers(0, 4, size=(30, 7)).astype(float)
    vc = vc[vc.sum(1) >= 2]
    w = rng.multinomial(len(vc), np.full(len(vc), 1 / len(vc)))
    resampled = np.repeat(vc, w, axis=0)
    for metric in ("ordinal", "interval"):
        mine = alpha_from_coincidences((w @ unit_coincidences(vc)).reshape(7, 7), metric)
        ref = krippendorff.alpha(value_counts=resampled, value_domain=list(range(1, 8)), level_of_measurement=metric)
        assert float(mine) == pytest.approx(ref, abs=1e-10)


def test_config_rejects_unknown_keys() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        AnalysisConfig.model_validate({"corection": "holm"})
