"""The report's figures (matplotlib, Agg backend), each saved as PNG and SVG.

Each ``fig_*`` function takes the run contents and returns a matplotlib Figure, or None when
the data it needs is absent (the report then says what is missing). Intervals drawn are the
95% (1 - alpha) intervals computed by the stage that produced the numbers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tidekit._io import atomic_path
from tidekit.analysis import metric_columns
from tidekit.reporting._run import RunContents

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "RenderedFigure", "metric_columns_in", "render_figures"]

PREFERRED_METRICS = ("cosine", "bertscore_f1", "rouge_l", "meteor", "bleu", "judge_overall")


@dataclass
class RenderedFigure:
    """A saved figure and its PNG as base64 for embedding."""

    key: str
    title: str
    caption: str
    png: Path
    svg: Path
    png_b64: str


def metric_columns_in(scores: Any) -> list[str]:
    cols = metric_columns(scores)
    return [m for m in PREFERRED_METRICS if m in cols] + [m for m in cols if m not in PREFERRED_METRICS]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def fig_metrics(c: RunContents) -> Figure | None:
    """Mean of each automatic metric per model and condition (95% t intervals over conversations)."""
    if c.scores is None or not {"model", "condition"} <= set(c.scores.columns):
        return None
    metrics = metric_columns_in(c.scores)[:4]
    if not metrics:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    models = sorted(c.scores["model"].astype(str).unique())
    conditions = sorted(c.scores["condition"].astype(str).unique())
    width = 0.8 / max(len(conditions), 1)
    for ax, m in zip(axes[0], metrics, strict=False):
        for j, cond in enumerate(conditions):
            means, errs = [], []
            for model in models:
                v = c.scores.loc[(c.scores["model"].astype(str) == model)
                                 & (c.scores["condition"].astype(str) == cond), m].dropna().to_numpy(float)
                means.append(v.mean() if len(v) else np.nan)
                errs.append(1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0)
            ax.bar(np.arange(len(models)) + j * width, means, width, yerr=errs, capsize=2, label=cond)
        ax.set_xticks(np.arange(len(models)) + width * (len(conditions) - 1) / 2)
        ax.set_xticklabels(models, rotation=30, ha="right")
        ax.set_title(m)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_scenarios(c: RunContents) -> Figure | None:
    """Heatmap of the first metric (or the human rating) by scenario and system."""
    import pandas as pd

    data, value, label = None, None, ""
    if c.scores is not None and "scenario_id" in c.scores and "system" in c.scores and metric_columns_in(c.scores):
        value = metric_columns_in(c.scores)[0]
        data = c.scores.assign(scenario=c.scores["scenario_id"].astype(str), system=c.scores["system"].astype(str))
        label = f"mean {value}"
    elif c.ratings_path is not None and c.analysis is not None:
        from tidekit.analysis import load_ratings

        raw = load_ratings(c.ratings_path)
        cols = c.analysis.config.get("columns", {})
        scen, syst, rating = cols.get("scenario"), cols.get("system"), cols.get("rating", "empathy")
        if scen in raw and syst in raw and rating in raw:
            data = pd.DataFrame({"scenario": raw[scen].astype(str), "system": raw[syst].astype(str),
                                 "value": pd.to_numeric(raw[rating], errors="coerce")}).dropna()
            data = data[data["system"] != "None"]
            value, label = "value", f"mean human {rating}"
    if data is None or value is None:
        return None
    table = data.pivot_table(index="scenario", columns="system", values=value, aggfunc="mean")
    if table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * table.shape[1], 1.0 + 0.28 * table.shape[0]))
    im = ax.imshow(table.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(table.shape[1]))
    ax.set_xticklabels(table.columns, rotation=35, ha="right")
    ax.set_yticks(range(table.shape[0]))
    ax.set_yticklabels(table.index)
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    return fig


def fig_ceiling(c: RunContents) -> Figure | None:
    """Fine-tuning gain against model size (log10 parameters): the knowledge-transfer ceiling."""
    if not c.ceiling or not c.ceiling.get("gains"):
        return None
    gains = [g for g in c.ceiling["gains"] if g.get("scenario") == "all" and g.get("gain") is not None]
    metrics = [m for m in PREFERRED_METRICS if any(g["metric"] == m for g in gains)] or sorted(
        {g["metric"] for g in gains})
    if not metrics:
        return None
    metrics = metrics[:3]
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.0), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=False):
        rows = sorted((g for g in gains if g["metric"] == m), key=lambda g: g["log10_params"])
        x = np.array([g["log10_params"] for g in rows])
        y = np.array([g["gain"] for g in rows])
        lo = np.array([g.get("gain_ci_low") if g.get("gain_ci_low") is not None else g["gain"] for g in rows])
        hi = np.array([g.get("gain_ci_high") if g.get("gain_ci_high") is not None else g["gain"] for g in rows])
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", capsize=3)
        for g in rows:
            ax.annotate(g["model"], (g["log10_params"], g["gain"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        if len(x) >= 2:
            k, b = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 10)
            ax.plot(xs, k * xs + b, "--", lw=1)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("log10 parameters")
        ax.set_ylabel(f"gain in {m} (fine-tuned - zero-shot)")
    fig.tight_layout()
    return fig


def _forest(ax: Any, points: list[tuple[float, float | None, float | None, str, str | None]],
            fontsize: float | None = 7, top_down: bool = True) -> None:
    """Draw (estimate, CI low, CI high, label, colour) rows as points with interval bars on ``ax``;
    a missing bound is drawn at the estimate."""
    y = np.arange(len(points))[::-1] if top_down else np.arange(len(points))
    for yi, (est, lo, hi, _, color) in zip(y, points, strict=True):
        lo, hi = est if lo is None else lo, est if hi is None else hi
        ax.errorbar(est, yi, xerr=[[est - lo], [hi - est]], fmt="o", capsize=3, color=color)
    ax.set_yticks(y)
    ax.set_yticklabels([p[3] for p in points], fontsize=fontsize)


def fig_human(c: RunContents) -> Figure | None:
    """Mean human rating per system and per condition (means of rater means, 95% t CI)."""
    if c.analysis is None:
        return None
    groups = [g for g in ("system", "condition") if any(m.analysis == g for m in c.analysis.means)]
    if not groups:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.2), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=False):
        _forest(ax, [(m.mean, m.ci_low, m.ci_high, m.group, "C0") for m in c.analysis.means if m.analysis == g],
                fontsize=None, top_down=False)
        ax.set_xlabel(f"mean {c.analysis.rating} ({c.analysis.scale[0]}-{c.analysis.scale[1]})")
        ax.set_title(f"by {g}")
    fig.tight_layout()
    return fig


def fig_ppi(c: RunContents) -> Figure | None:
    """Mean human rating per system: human-only (rated conversations alone, grey) and
    prediction-powered (the same ratings corrected with the automatic score on every
    conversation, blue), each with its interval."""
    if c.analysis is None or c.analysis.ppi is None or not c.analysis.ppi.estimates:
        return None
    ppi = c.analysis.ppi
    first = ppi.estimates[0].rating
    rows = [e for e in ppi.estimates if e.rating == first and e.kind == "system"]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.42 * len(rows)))
    y = np.arange(len(rows))[::-1]
    for yi, e in zip(y, rows, strict=True):
        ax.errorbar(e.human_estimate, yi + 0.14, xerr=[[e.human_estimate - e.human_ci_low],
                                                       [e.human_ci_high - e.human_estimate]],
                    fmt="s", capsize=3, color="0.55", label="human-only" if yi == y[0] else None)
        ax.errorbar(e.estimate, yi - 0.14, xerr=[[e.estimate - e.ci_low], [e.ci_high - e.estimate]],
                    fmt="o", capsize=3, color="C0", label="prediction-powered" if yi == y[0] else None)
    ax.set_yticks(y)
    ax.set_yticklabels([e.target for e in rows], fontsize=7)
    ax.set_xlabel(f"mean {first}; predictor {', '.join(ppi.predictor)}")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def fig_demographics(c: RunContents) -> Figure | None:
    """Mean rating by level of each rater attribute (rater means, 95% t CI)."""
    if c.analysis is None:
        return None
    attrs = [a for a in c.analysis.summary.attributes if any(m.analysis == a for m in c.analysis.means)]
    if not attrs:
        return None
    plt = _plt()
    rows = [(a, m) for a in attrs for m in c.analysis.means if m.analysis == a]
    fig, ax = plt.subplots(figsize=(6.0, 0.8 + 0.26 * len(rows)))
    _forest(ax, [(m.mean, m.ci_low, m.ci_high, f"{a}: {m.group} (n={m.n})", f"C{attrs.index(a)}") for a, m in rows])
    ax.set_xlabel(f"mean of rater means, {c.analysis.rating}")
    fig.tight_layout()
    return fig


def fig_agreement(c: RunContents) -> Figure | None:
    """Krippendorff's alpha with bootstrap CIs per rating and level of measurement."""
    if c.analysis is None:
        return None
    rows = [a for a in c.analysis.agreement if a.alpha is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 0.8 + 0.3 * len(rows)))
    _forest(ax, [(a.alpha, a.ci_low, a.ci_high, f"{a.rating} ({a.level_of_measurement})",
                  "C0" if a.level_of_measurement == "ordinal" else "C1") for a in rows if a.alpha is not None])
    ax.axvline(0, color="grey", lw=0.6)
    ax.axvline(0.667, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("Krippendorff's alpha (dotted: 0.667, a common minimum)")
    fig.tight_layout()
    return fig


def fig_metric_human(c: RunContents) -> Figure | None:
    """Spearman correlation of each automatic metric with the mean human rating (95% CI)."""
    if c.analysis is None:
        return None
    rows = [t for t in c.analysis.tests if t.analysis == "metric_human" and t.estimate is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 0.8 + 0.28 * len(rows)))
    _forest(ax, [(t.estimate, t.ci_low, t.ci_high, f"{t.term} ({t.level}, n={t.n})",
                  "C0" if t.level == "item" else "C2") for t in rows if t.estimate is not None])
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Spearman rho with mean human rating")
    fig.tight_layout()
    return fig


def fig_judge_validation(c: RunContents) -> Figure | None:
    """Spearman correlation of each judge criterion with each human label column (bootstrap 95%
    CI), from judge_validation/validation.json; the score kind the tables use. Undefined
    correlations (a constant judge) are listed on the axis without a point."""
    v = c.judge_validation
    if not v:
        return None
    rows = [r for r in v.get("correlations", []) if r.get("score") == v.get("table_score")]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 0.8 + 0.28 * len(rows)))
    points: list[tuple[float, float | None, float | None, str, str | None]] = [
        (r["spearman"] if r["spearman"] is not None else float("nan"), r["ci_low"], r["ci_high"],
               f"{r['judge']}: {r['criterion']} vs {r['human']} (n={r['n']})"
               + ("" if r["spearman"] is not None else " - undefined"), "C0") for r in rows]
    for a in v.get("human_agreement", []):
        points.append((a["spearman"] if a["spearman"] is not None else float("nan"), a["ci_low"], a["ci_high"],
                       f"ceiling: {a['human_a']} vs {a['human_b']} (n={a['n']})", "C2"))
    _forest(ax, points)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("Spearman rho with the human labels")
    fig.tight_layout()
    return fig


def fig_training(c: RunContents) -> Figure | None:
    """Fine-tuning loss curves per model (from metrics.jsonl): training loss as a line,
    validation loss as markers. The end-of-training summary (``train_loss``, an average over
    the whole run) is not a point on the curve and is left out."""
    train: dict[str, list[tuple[float, float]]] = {}
    evals: dict[str, list[tuple[float, float]]] = {}
    for alias, rows in c.finetune.items():
        for r in rows:
            step, kind = r.get("step"), r.get("kind", "train")
            if step is None:
                continue
            if kind == "train" and r.get("loss") is not None:
                train.setdefault(alias, []).append((step, r["loss"]))
            elif kind == "eval" and r.get("eval_loss") is not None:
                evals.setdefault(alias, []).append((step, r["eval_loss"]))
    if not train and not evals:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    for alias in sorted(set(train) | set(evals)):
        pts = sorted(train.get(alias, []))
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=alias)[0] if pts else None
        if alias in evals:
            ev = sorted(evals[alias])
            ax.plot([p[0] for p in ev], [p[1] for p in ev], linestyle="none", marker="o", markersize=4,
                    color=line.get_color() if line is not None else None, label=f"{alias} (validation)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# key -> (title, caption, function)
FIGURES: dict[str, tuple[str, str, Callable[[RunContents], Figure | None]]] = {
    "metrics": ("Automatic metrics by model and condition", fig_metrics.__doc__ or "", fig_metrics),
    "scenarios": ("Scenario heatmap", fig_scenarios.__doc__ or "", fig_scenarios),
    "ceiling": ("Knowledge-transfer ceiling", fig_ceiling.__doc__ or "", fig_ceiling),
    "training": ("Fine-tuning", fig_training.__doc__ or "", fig_training),
    "human": ("Human ratings", fig_human.__doc__ or "", fig_human),
    "ppi": ("Prediction-powered estimates", fig_ppi.__doc__ or "", fig_ppi),
    "demographics": ("Demographic effects", fig_demographics.__doc__ or "", fig_demographics),
    "agreement": ("Agreement", fig_agreement.__doc__ or "", fig_agreement),
    "metric_human": ("Metric vs human", fig_metric_human.__doc__ or "", fig_metric_human),
    "judge_validation": ("Judge vs human labels", fig_judge_validation.__doc__ or "", fig_judge_validation),
}


def render_figures(c: RunContents, folder: Path) -> tuple[dict[str, RenderedFigure], list[str]]:
    """Render every figure whose data exists into ``folder``; return them and the absent ones."""
    plt = _plt()
    out: dict[str, RenderedFigure] = {}
    absent: list[str] = []
    for key, (title, caption, fn) in FIGURES.items():
        fig = fn(c)
        if fig is None:
            absent.append(title)
            continue
        png, svg = folder / f"{key}.png", folder / f"{key}.svg"
        with atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        with atomic_path(svg, suffix=".svg") as tmp:
            fig.savefig(tmp, format="svg")
        plt.close(fig)
        out[key] = RenderedFigure(key, title, " ".join(caption.split()), png, svg,
                                  base64.b64encode(png.read_bytes()).decode("ascii"))
    return out, absent
