"""The ceiling analysis: how much fine-tuning gains, per metric and scenario, against model size.

The TIDE paper reports that the smallest models hit a "knowledge transfer ceiling": they gain
less from fine-tuning. This module measures that on scores (``scores.parquet`` from
``tidekit score``, or any table with the same columns) holding ``zero_shot`` and
``fine_tuned`` rows of several models:

1. **Gain**: per model and conversation, fine-tuned minus zero-shot score (paired by
   ``conversation_id``; unpaired rows are counted and left out).
2. **Model gain**: the mean gain of each model, overall and per scenario, with a persona
   bootstrap CI.
3. **Slope**: OLS of the model gains on ``log10(parameters)``, one point per model, equal
   weights; the slope is the gain per tenfold increase in size. A positive slope with a CI
   above zero is the ceiling pattern.

Two confidence intervals are reported for each slope, because they answer different questions
(chosen here, documented in docs/analysis.md):

- ``ci_low``/``ci_high``: **persona bootstrap** (percentile, personas resampled with
  replacement jointly for all models, so the pairing across models is kept). Uncertainty from
  which personas and conversations were sampled, *for these models*.
- ``ols_ci_low``/``ols_ci_high``/``ols_p``: the **model-level OLS** t-interval (n_models - 2
  degrees of freedom). Parameter count is an attribute of a model, so generalising to other
  models of similar size must treat models, not conversations, as the units; with 8 models this
  interval is wide by design. A conversation-level regression would pool thousands of
  correlated rows and overstate certainty (the same trap as rater attributes in ratings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tidekit._io import atomic_path, write_text
from tidekit._manifest import RunRecorder
from tidekit.backends import MODELS
from tidekit.data import MODEL_CONDITIONS
from tidekit.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["ALL_SCENARIOS", "CeilingResult", "GainRow", "SlopeRow", "ceiling_analysis", "plot_ceiling"]

ALL_SCENARIOS = "all"
# never metrics, even when stored as floats (an age column with gaps is float)
_ID_COLUMNS = {"conversation_id", "persona_id", "scenario_id", "system", "model", "condition", "split", "params_b",
               "schema_version", "seed", "status", "exclusion_reason", "age", "prompt_tokens", "completion_tokens",
               "latency_s", "judge_n"}
_CONDITIONS = MODEL_CONDITIONS


class SlopeRow(BaseModel):
    """The fitted gain-vs-size line of one metric over all scenarios or one scenario."""

    metric: str = Field(description="Metric column.")
    scenario: str = Field(description="Scenario id, or 'all'.")
    slope: float | None = Field(description="Gain per tenfold parameters (OLS on model means); None if < 2 models.")
    intercept: float | None = Field(description="Gain at log10(params) = 0 on the fitted line.")
    ci_low: float | None = Field(description="Persona-bootstrap percentile CI, lower end.")
    ci_high: float | None = Field(description="Persona-bootstrap percentile CI, upper end.")
    ols_se: float | None = Field(description="Model-level OLS standard error of the slope (>= 3 models).")
    ols_ci_low: float | None = Field(description="Model-level OLS t-interval, lower end.")
    ols_ci_high: float | None = Field(description="Model-level OLS t-interval, upper end.")
    ols_p: float | None = Field(description="Model-level OLS two-sided p for slope = 0.")
    n_models: int = Field(description="Models with at least one pair.")
    n_personas: int = Field(description="Personas among the pairs.")
    n_pairs: int = Field(description="Model x conversation pairs.")
    n_boot_valid: int | None = Field(description="Resamples in which every model kept a pair.")


class GainRow(BaseModel):
    """The mean fine-tuning gain of one model on one metric, overall or in one scenario."""

    model: str = Field(description="Model label.")
    params_b: float = Field(description="Parameters, billions.")
    log10_params: float = Field(description="log10 of the parameter count.")
    metric: str = Field(description="Metric column.")
    scenario: str = Field(description="Scenario id, or 'all'.")
    n: int = Field(description="Pairs (conversations scored in both conditions).")
    zero_shot: float | None = Field(description="Mean zero-shot score.")
    fine_tuned: float | None = Field(description="Mean fine-tuned score.")
    gain: float | None = Field(description="Mean gain, fine-tuned minus zero-shot.")
    gain_ci_low: float | None = Field(description="Persona-bootstrap CI of the gain, lower end.")
    gain_ci_high: float | None = Field(description="Persona-bootstrap CI of the gain, upper end.")


class CeilingResult(BaseModel):
    """Gains and slopes as typed rows (``slopes_table()`` / ``gains_table()`` give DataFrames);
    :meth:`write` saves them with the plots and a manifest."""

    slopes: list[SlopeRow] = Field(description="One row per metric x scenario ('all' = every scenario).")
    gains: list[GainRow] = Field(description="One row per model x metric x scenario.")
    metrics: list[str] = Field(description="Metrics analysed.")
    models: dict[str, float] = Field(description="Parameter count (billions) of each model analysed.")
    unpaired: int = Field(description="Rows without a partner in the other condition, left out.")
    settings: dict[str, Any] = Field(description="n_boot, confidence, seed, metrics, by_scenario.")

    def slopes_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([r.model_dump() for r in self.slopes], columns=list(SlopeRow.model_fields))

    def gains_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([r.model_dump() for r in self.gains], columns=list(GainRow.model_fields))

    def slope(self, metric: str, scenario: str = "all") -> SlopeRow:
        """The slope row of ``metric`` (overall by default)."""
        for row in self.slopes:
            if row.metric == metric and row.scenario == scenario:
                return row
        raise KeyError((metric, scenario))

    def write(self, out: str | Path, *, source: str | None = None) -> list[Path]:
        """Write slopes.csv, gains.csv, ceiling.json, ceiling.png/.svg, ceiling_scenarios.png/.svg
        (when there are scenarios) and manifest.json."""
        out = Path(out)
        files: list[Path] = []
        with RunRecorder(out, command="finetune ceiling", config=self.settings, seed=self.settings.get("seed"),
                         inputs={"scores": source} if source else None) as run:
            with run.step("write tables"):
                for name, table in (("slopes.csv", self.slopes_table()), ("gains.csv", self.gains_table())):
                    write_text(out / name, table.to_csv(index=False))
                    files.append(out / name)
                write_text(out / "ceiling.json", self.model_dump_json(indent=2) + "\n")
                files.append(out / "ceiling.json")
            with run.step("plot"):
                files += plot_ceiling(self, out / "ceiling")
                if len({g.scenario for g in self.gains}) > 2:
                    files += _plot_scenarios(self, out / "ceiling_scenarios")
            run.counts.update(models=len(self.models), metrics=len(self.metrics), unpaired=self.unpaired)
            run.extra["slopes"] = [r.model_dump() for r in self.slopes if r.scenario == ALL_SCENARIOS]
            run.extra["models"] = self.models
        return files


def _load(scores: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, str | None]:
    import pandas as pd

    if isinstance(scores, pd.DataFrame):
        return scores, None
    from tidekit.analysis._metric_human import load_scores

    return load_scores(scores), str(scores)


def _default_metrics(table: pd.DataFrame) -> list[str]:
    import pandas as pd

    # metric values are floats; integer columns are ids or facets (age), booleans are safety flags
    return [c for c in table.columns if c not in _ID_COLUMNS and pd.api.types.is_float_dtype(table[c])]


def _params(table: pd.DataFrame, models: list[str], given: Mapping[str, float] | None) -> dict[str, float]:
    found: dict[str, float] = {}
    missing = []
    for model in models:
        if given and model in given:
            found[model] = float(given[model])
        elif "params_b" in table.columns and table.loc[table.model == model, "params_b"].notna().any():
            values = table.loc[table.model == model, "params_b"].dropna().unique()
            if len(values) > 1:
                raise DataError(f"params_b of model {model!r} is not constant ({', '.join(map(str, values[:5]))})")
            found[model] = float(values[0])
        elif model in MODELS:
            found[model] = MODELS[model].params_b
        else:
            missing.append(model)
    if missing:
        raise DataError(f"no parameter count for {', '.join(map(repr, missing))}: not registry aliases. Add a "
                        "'params_b' column (billions) to the scores, or pass params={model: billions} "
                        "(CLI: --params MODEL=BILLIONS).")
    bad = [m for m, v in found.items() if not v > 0]
    if bad:
        raise DataError(f"parameter counts must be positive: {', '.join(f'{m}={found[m]}' for m in bad)}")
    return found


def _pairs(table: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, int]:
    """Long table: model, conversation, persona, scenario, metric, zero_shot, fine_tuned, gain."""
    import pandas as pd

    dup = table.duplicated(["model", "condition", "conversation_id"], keep=False)
    if dup.any():
        example = table.loc[dup, ["model", "condition", "conversation_id"]].iloc[0].tolist()
        raise DataError(f"{int(dup.sum())} rows repeat a (model, condition, conversation): e.g. {example}. Give each "
                        "fine-tuned variant its own model label, or filter the scores first.")
    keys = ["model", "conversation_id", "persona_id", "scenario_id"]
    zs = table[table.condition == "zero_shot"].set_index(keys)[metrics]
    ft = table[table.condition == "fine_tuned"].set_index(keys)[metrics]
    joined = zs.add_suffix("@zero_shot").join(ft.add_suffix("@fine_tuned"), how="inner")
    unpaired = len(zs) + len(ft) - 2 * len(joined)
    frames = []
    for metric in metrics:
        part = pd.DataFrame({"zero_shot": joined[f"{metric}@zero_shot"].astype(float),
                             "fine_tuned": joined[f"{metric}@fine_tuned"].astype(float)}).dropna()
        part["gain"] = part.fine_tuned - part.zero_shot
        part["metric"] = metric
        frames.append(part.reset_index())
    return pd.concat(frames, ignore_index=True), unpaired


def _bootstrap_means(pairs: pd.DataFrame, models: list[str], personas: list[str], weights: np.ndarray,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Model mean gains: the point estimate [M] and per bootstrap resample [B, M] (NaN where a
    resample holds none of a model's personas)."""
    import numpy as np

    p_index = {p: i for i, p in enumerate(personas)}
    m_index = {m: i for i, m in enumerate(models)}
    sums = np.zeros((len(personas), len(models)))
    counts = np.zeros_like(sums)
    rows = pairs.persona_id.map(p_index).to_numpy()
    cols = pairs.model.map(m_index).to_numpy()
    np.add.at(sums, (rows, cols), pairs.gain.to_numpy())
    np.add.at(counts, (rows, cols), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = sums.sum(0) / counts.sum(0)
        boot = (weights @ sums) / (weights @ counts)
    return point, boot


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """OLS slope of each row of ``y`` [..., M] on ``x`` [M]."""
    xc = x - x.mean()
    return ((y - y.mean(axis=-1, keepdims=True)) @ xc) / (xc @ xc)


def ceiling_analysis(
    scores: pd.DataFrame | str | Path,
    *,
    metrics: Sequence[str] | None = None,
    params: Mapping[str, float] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    by_scenario: bool = True,
) -> CeilingResult:
    """Fine-tuning gain per metric (and scenario) against log10 parameter count.

    ``scores``: a DataFrame or a scores.parquet / scores folder with columns conversation_id,
    persona_id, scenario_id, model, condition (zero_shot / fine_tuned) and metric columns.
    ``metrics``: columns to analyse (default: every float column that is not an id).
    ``params``: parameter counts in billions by model; default from a ``params_b`` column or
    the model registry. See the module docstring for the estimators.
    """
    import numpy as np
    from scipy import stats

    table, _ = _load(scores)
    need = ["conversation_id", "persona_id", "scenario_id", "model", "condition"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise DataError(f"scores lack column(s) {', '.join(missing)}; the ceiling analysis needs {', '.join(need)} "
                        "and metric columns (as written by 'tidekit score')")
    if "status" in table.columns:
        table = table[table.status.fillna("scored") == "scored"]
    table = table[table.condition.isin(_CONDITIONS)].copy()
    for col in ("conversation_id", "persona_id", "scenario_id", "model"):
        table[col] = table[col].astype(str)
    metric_list = list(metrics) if metrics else _default_metrics(table)
    unknown = [m for m in metric_list if m not in table.columns]
    if unknown or not metric_list:
        raise DataError(f"metric column(s) {', '.join(unknown) or '(none found)'} not in the scores; available: "
                        f"{', '.join(_default_metrics(table)) or 'none'}")
    if not 0 < confidence < 1 or n_boot < 1:
        raise DataError("confidence must be in (0, 1) and n_boot >= 1")
    pairs, unpaired = _pairs(table, metric_list)
    models = sorted(pairs.model.unique())
    if len(models) < 2:
        raise DataError(f"the ceiling analysis needs zero_shot and fine_tuned scores of at least two models; found "
                        f"{len(models)} with both ({', '.join(models) or 'none'}). Score more fine-tuned models.")
    sizes = _params(table, models, params)
    x = np.log10(np.array([sizes[m] for m in models]) * 1e9)
    personas = sorted(pairs.persona_id.unique())
    rng = np.random.default_rng(seed)
    # one set of persona resamples shared by every metric and scenario, so results are comparable
    weights = rng.multinomial(len(personas), np.full(len(personas), 1 / len(personas)), size=n_boot).astype(float)
    alpha = (1 - confidence) / 2
    scenarios = [ALL_SCENARIOS] + (sorted(pairs.scenario_id.unique()) if by_scenario else [])

    slope_rows, gain_rows = [], []
    for metric in metric_list:
        for scenario in scenarios:
            part = pairs[(pairs.metric == metric) & ((pairs.scenario_id == scenario) | (scenario == ALL_SCENARIOS))]
            point, boot = _bootstrap_means(part, models, personas, weights)
            for i, model in enumerate(models):
                sub = part[part.model == model]
                column = boot[:, i][np.isfinite(boot[:, i])]
                gain_rows.append({
                    "model": model, "params_b": sizes[model], "log10_params": x[i], "metric": metric,
                    "scenario": scenario, "n": len(sub), "zero_shot": sub.zero_shot.mean() if len(sub) else np.nan,
                    "fine_tuned": sub.fine_tuned.mean() if len(sub) else np.nan, "gain": point[i],
                    "gain_ci_low": np.quantile(column, alpha) if len(column) else np.nan,
                    "gain_ci_high": np.quantile(column, 1 - alpha) if len(column) else np.nan})
            ok = np.isfinite(point)
            row: dict[str, Any] = {"metric": metric, "scenario": scenario, "n_models": int(ok.sum()),
                                   "n_personas": int(part.persona_id.nunique()), "n_pairs": len(part)}
            if ok.sum() >= 2:
                slope = float(_slopes(x[ok], point[ok]))
                valid = np.isfinite(boot[:, ok]).all(axis=1)
                boot_slopes = _slopes(x[ok], boot[valid][:, ok])
                row.update(slope=slope, intercept=float(point[ok].mean() - slope * x[ok].mean()),
                           ci_low=float(np.quantile(boot_slopes, alpha)) if valid.any() else np.nan,
                           ci_high=float(np.quantile(boot_slopes, 1 - alpha)) if valid.any() else np.nan,
                           n_boot_valid=int(valid.sum()))
                if ok.sum() >= 3:
                    fit = stats.linregress(x[ok], point[ok])
                    t = stats.t.ppf(1 - alpha, ok.sum() - 2)
                    row.update(ols_se=float(fit.stderr), ols_ci_low=float(fit.slope - t * fit.stderr),
                               ols_ci_high=float(fit.slope + t * fit.stderr), ols_p=float(fit.pvalue))
            slope_rows.append(row)
    slopes = [SlopeRow.model_validate({k: _clean(row.get(k)) for k in SlopeRow.model_fields}) for row in slope_rows]
    gains = [GainRow.model_validate({k: _clean(v) for k, v in row.items()}) for row in gain_rows]
    return CeilingResult(slopes=slopes, gains=gains, metrics=metric_list, models=sizes,
                         unpaired=unpaired, settings={"n_boot": n_boot, "confidence": confidence, "seed": seed,
                                                      "metrics": metric_list, "by_scenario": by_scenario})


def _clean(value: Any) -> Any:
    """numpy scalars to Python, NaN to None (JSON-safe rows)."""
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _figure_paths(stem: Path) -> tuple[Path, Path]:
    return stem.with_suffix(".png"), stem.with_suffix(".svg")


def _save(fig: Any, stem: Path) -> list[Path]:
    paths = []
    for path in _figure_paths(stem):
        with atomic_path(path, path.suffix) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_ceiling(result: CeilingResult, stem: str | Path) -> list[Path]:
    """One panel per metric: model gain (with bootstrap CI) against parameters on a log axis,
    the fitted line and its slope with both CIs. Writes STEM.png and STEM.svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = result.metrics
    gains = result.gains_table()
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        g = gains[(gains.metric == metric) & (gains.scenario == ALL_SCENARIOS)].astype({"gain": float})
        s = result.slope(metric)
        params = g.params_b.to_numpy() * 1e9
        err = np.nan_to_num(np.vstack([g.gain - g.gain_ci_low.astype(float),
                                       g.gain_ci_high.astype(float) - g.gain]).clip(min=0))
        ax.errorbar(params, g.gain, yerr=err, fmt="o", color="#1f4e79", capsize=3, label="model gain (95% CI)")
        for p, gain, name in zip(params, g.gain, g.model, strict=True):
            ax.annotate(name, (p, gain), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if s.slope is not None and s.intercept is not None:
            ci = (f" [{s.ci_low:+.3f}, {s.ci_high:+.3f}]" if s.ci_low is not None and s.ci_high is not None
                  else "")
            grid = np.logspace(np.log10(params.min()) - 0.1, np.log10(params.max()) + 0.1, 50)
            ax.plot(grid, s.intercept + s.slope * np.log10(grid), color="#c0504d",
                    label=f"slope {s.slope:+.3f} per 10x{ci}")
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(f"{metric} gain (fine-tuned - zero-shot)")
        ax.set_title(metric)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Fine-tuning gain vs model size (persona-bootstrap CIs)", fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, Path(stem))
    finally:
        plt.close(fig)


def _plot_scenarios(result: CeilingResult, stem: Path) -> list[Path]:
    """Heat map of the first metric's mean gain, models (by size) x scenarios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metric = result.metrics[0]
    gains = result.gains_table()
    g = gains[(gains.metric == metric) & (gains.scenario != ALL_SCENARIOS)]
    grid = g.pivot(index="scenario", columns="model", values="gain").astype(float)
    grid = grid[sorted(grid.columns, key=lambda m: result.models[m])]
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * grid.shape[1], 1.0 + 0.32 * grid.shape[0]))
    image = ax.imshow(grid.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    fig.colorbar(image, ax=ax, label=f"{metric} gain")
    ax.set_title(f"{metric} gain by scenario (models by size)", fontsize=9)
    fig.tight_layout()
    try:
        return _save(fig, stem)
    finally:
        plt.close(fig)
