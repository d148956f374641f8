"""Judge validation: how well an empathy judge agrees with human labels (``tidekit judge validate``).

A labels file (CSV, JSONL or Parquet; see :mod:`tidekit.metrics._labels`) holds one reply per
row: ``id``, ``context`` (what the person wrote), ``response`` (the reply to rate) and one or
more human score columns (any numeric scale; an empty cell is a missing label). Every row is
scored by each learned scorer (``config.scorers``) and judged through the generation engine
(cached in ``OUT/judge_cache.sqlite``, so a rerun resumes), and for each judge, criterion, score
kind (probability-weighted ``expected`` and most likely ``argmax``) and human column, the Spearman
and Kendall (tau-b) correlations are computed with percentile bootstrap intervals over items.
A correlation is *undefined* (null, with the reason) when either side is constant or fewer than
three items have both: a constant judge is never reported as 0 or 1. With several human columns,
their pairwise agreement is reported as the ceiling a judge can be expected to reach.

Outputs in ``out``: ``validation.json`` (:class:`JudgeValidation`), ``judged.csv`` (per item:
each judge's scores beside the human labels), ``validation.png``/``.svg`` (scatter of the
judge's overall score against each human column with binned means), ``manifest.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from tidekit._io import atomic_path, write_json, write_text
from tidekit._manifest import ModelIdentity, RunRecorder
from tidekit.errors import DataError
from tidekit.metrics._config import ScoreConfig
from tidekit.metrics._judge import JudgeConfig, JudgeSummary, Runner, verdict_value
from tidekit.metrics._labels import LabelRow, load_labels
from tidekit.metrics._rubric import CRITERIA

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Agreement", "Correlation", "HumanAgreement", "JudgeValidation", "LabelRow", "correlate", "load_labels",
           "validate_judge"]

SCORE_KINDS: tuple[Literal["expected", "argmax"], ...] = ("expected", "argmax")


class Agreement(BaseModel):
    """Spearman and Kendall tau-b of two paired series, with bootstrap intervals (None: undefined)."""

    n: int = Field(description="Items with both scores.")
    spearman: float | None = Field(description="Spearman rho; None when undefined.")
    ci_low: float | None = Field(description="Bootstrap percentile interval of rho, lower end.")
    ci_high: float | None = Field(description="Upper end.")
    kendall: float | None = Field(description="Kendall tau-b; None when undefined.")
    kendall_ci_low: float | None = None
    kendall_ci_high: float | None = None
    undefined_reason: str | None = Field(default=None, description="Why the correlation is undefined.")


class Correlation(Agreement):
    """Agreement of one judge criterion (or learned scorer label) with one human column."""

    judge: str
    criterion: str = Field(description="Judge criterion (emotion_recognition, ..., overall) or scorer label.")
    score: Literal["expected", "argmax", "prediction"] = Field(
        description="Which score: a judge's probability-weighted or most likely, or a learned scorer's prediction.")
    human: str = Field(description="Human column.")


class HumanAgreement(Agreement):
    """Agreement between two human columns: the ceiling for a judge."""

    human_a: str
    human_b: str


class JudgeValidation(BaseModel):
    """Everything ``validation.json`` holds."""

    labels: str = Field(description="The labels file.")
    labels_sha256: str = Field(description="Its sha256.")
    n_items: int = Field(description="Rows in the labels file.")
    human_columns: list[str]
    judges: list[JudgeSummary] = Field(description="Per judge: readable n, failure rates, constant criteria.")
    scorers: list[dict[str, Any]] = Field(default_factory=list,
                                          description="Learned scorers validated (path, name, training CV figures).")
    parse_failure_rate: float = Field(description="Share of items no judge could be read for (worst judge).")
    table_score: Literal["expected", "argmax"] = Field(description="The score kind the score tables use.")
    correlations: list[Correlation]
    human_agreement: list[HumanAgreement] = Field(default_factory=list,
                                                  description="Pairwise agreement of the human columns (ceiling).")
    confidence: float
    n_resamples: int
    seed: int
    files: list[str] = Field(default_factory=list)

    def find(self, human: str, criterion: str = "overall", judge: str | None = None,
             score: str | None = None) -> Correlation:
        """The correlation for ``human`` x ``criterion`` (the table score kind unless ``score``)."""
        for c in self.correlations:
            if (c.human == human and c.criterion == criterion and (judge is None or c.judge == judge)
                    and c.score == (score or self.table_score)):
                return c
        raise KeyError(f"no correlation for {human} x {criterion}")


# ---- correlations ---------------------------------------------------------------------------------

def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of ``x`` and ``y`` ([R, n]); NaN where a row is constant."""
    import numpy as np
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    return out


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair (the tie-corrected form scipy's ``kendalltau`` computes)."""
    import numpy as np

    n = x.shape[1]
    out = np.empty(x.shape[0])
    step = max(1, 20_000_000 // max(n * n, 1))
    for start in range(0, x.shape[0], step):
        xs, ys = x[start:start + step], y[start:start + step]
        sx = np.sign(xs[:, :, None] - xs[:, None, :]).astype(np.int8)
        sy = np.sign(ys[:, :, None] - ys[:, None, :]).astype(np.int8)
        concord = (sx.astype(np.int32) * sy).sum(axis=(1, 2))
        den = np.sqrt(np.abs(sx).sum(axis=(1, 2), dtype=np.int64).astype(float)
                      * np.abs(sy).sum(axis=(1, 2), dtype=np.int64))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + step] = np.where(den > 0, concord / np.where(den > 0, den, 1.0), np.nan)
    return out


KENDALL_PAIRWISE_MAX_N = 300  # above this the O(n^2) pairwise form costs more than scipy's O(n log n) per row


def _kendall_each(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair by scipy (O(n log n) a row): for large n, where the pairwise
    sign matrices of :func:`_kendall_rows` grow as n^2."""
    import numpy as np
    from scipy.stats import kendalltau

    return np.array([kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)], dtype=float)


def correlate(x: Sequence[float], y: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95,
              seed: int = 0, names: tuple[str, str] = ("the judge", "the human column")) -> dict[str, Any]:
    """Spearman and Kendall tau-b of paired values with percentile bootstrap intervals over pairs.

    Returns ``n``, ``spearman``, ``ci_low``, ``ci_high``, ``kendall``, ``kendall_ci_low``,
    ``kendall_ci_high`` and ``undefined_reason``: when a side is constant or n < 3, every
    figure is None and the reason says which (never a 0 or 1 standing in for "undefined").
    """
    import numpy as np

    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(xa)
    empty = {"n": n, "spearman": None, "ci_low": None, "ci_high": None, "kendall": None,
             "kendall_ci_low": None, "kendall_ci_high": None}
    if n < 3:
        return empty | {"undefined_reason": f"only {n} item(s) have both scores (3 or more needed)"}
    for values, name in ((xa, names[0]), (ya, names[1])):
        if np.all(values == values[0]):
            return empty | {"undefined_reason": f"{name} gave every item the same score ({values[0]:g}): "
                                                "a correlation with a constant is undefined"}
    rho = float(_spearman_rows(xa[None, :], ya[None, :])[0])
    tau = float(_kendall_rows(xa[None, :], ya[None, :])[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    boot_rho = _spearman_rows(xa[idx], ya[idx])
    boot_tau = _kendall_rows(xa[idx], ya[idx]) if n <= KENDALL_PAIRWISE_MAX_N else _kendall_each(xa[idx], ya[idx])
    alpha = (1 - confidence) / 2

    def interval(values: np.ndarray) -> tuple[float | None, float | None]:
        finite = values[np.isfinite(values)]
        if len(finite) < 0.5 * len(values):  # most resamples constant: no honest interval
            return None, None
        return float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))

    low, high = interval(boot_rho)
    klow, khigh = interval(boot_tau)
    return {"n": n, "spearman": rho, "ci_low": low, "ci_high": high, "kendall": tau, "kendall_ci_low": klow,
            "kendall_ci_high": khigh, "undefined_reason": None}


# ---- the command --------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _correlations(name: str, criterion: str, kind: Literal["expected", "argmax", "prediction"],
                  values: dict[str, float | None], rows: Sequence[LabelRow], human: Sequence[str],
                  config: ScoreConfig) -> list[Correlation]:
    """Correlations of one series of scores (a judge criterion, a scorer label) with each human column."""
    out = []
    for col in human:
        pairs = [(x, r.human[col]) for r in rows if (x := values.get(r.id)) is not None and r.human[col] is not None]
        stats = correlate([p[0] for p in pairs], [float(p[1]) for p in pairs],  # type: ignore[arg-type]
                          config.bootstrap.n_resamples, config.bootstrap.confidence, config.seed,
                          names=(f"{name} ({criterion}, {kind})", f"human column {col!r}"))
        out.append(Correlation(judge=name, criterion=criterion, score=kind, human=col, **stats))
    return out


def validate_judge(labels: str | Path, human: Sequence[str], out: str | Path, config: ScoreConfig | None = None,
                   progress: bool = True,
                   runner_for: Callable[[JudgeConfig], tuple[Runner, ModelIdentity, Callable[[], None]]] | None = None,
                   ) -> JudgeValidation:
    """Score every row of ``labels`` with each judge and learned scorer, and write how each agrees
    with each ``human`` column to ``out``.

    ``config`` supplies the judges (default: SmolLM2-135M on the hf backend, unless only learned
    scorers are named), the learned scorers (``scorers``), how judges are asked (``judge``), the
    bootstrap (``bootstrap``) and the seed; its other keys are unused. A judge past
    ``judge.max_parse_failure_rate`` is reported, not dropped or failed: finding that out is what
    validation is for. A scorer's rows carry ``judge = "scorer:<name>"``, ``criterion = <label>``
    and ``score = "prediction"``.
    """
    from tidekit.metrics._judge import JudgeItem, run_judges
    from tidekit.metrics._scorers import LearnedScorerStep, ScoringBatch, build_scorers

    config = config or ScoreConfig()
    judges = config.judges or ([] if config.scorers else [JudgeConfig()])
    options = config.judge.model_copy(update={"max_parse_failure_rate": 1.0, "on_failure": "drop"})
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder for the validation")
    rows = load_labels(labels, human)
    scorers = [s for s in build_scorers([], config.scorers) if isinstance(s, LearnedScorerStep)]
    with RunRecorder(out, command="judge validate", config=config, seed=config.seed,
                     inputs={"labels": str(labels)}) as run:
        by_judge: dict[str, dict[str, Any]] = {}
        summaries: list[JudgeSummary] = []
        failure: dict[str, float] = {}
        warnings: list[str] = []
        if judges:
            with run.step("judge"):
                items = [JudgeItem(id=r.id, client_text=r.context, response=r.response) for r in rows]
                judged = run_judges(judges, items, options.model_copy(update={"bias_probe_n": 0}),
                                    cache=str(out / "judge_cache.sqlite"), runner_for=runner_for, progress=progress)
            run.models.extend(judged.identities)
            for v in judged.verdicts:
                by_judge.setdefault(v.judge, {})[v.id] = v
            summaries, failure, warnings = judged.summaries, judged.parse_failure_rate, judged.warnings
        predicted: dict[str, dict[str, dict[str, float | None]]] = {}  # scorer -> label -> id -> value
        batch = ScoringBatch(contexts=[r.context for r in rows], responses=[r.response for r in rows],
                             references=[""] * len(rows))
        for scorer in scorers:
            with run.step(scorer.name):
                values = scorer.predict(batch)
            run.models.extend(scorer.models())
            predicted[scorer.name] = {label: dict(zip([r.id for r in rows], values[label].tolist(), strict=True))
                                      for label in scorer.labels}
        correlations: list[Correlation] = []
        with run.step("correlate"):
            for judge, verdicts in by_judge.items():
                for criterion in CRITERIA:
                    for kind in SCORE_KINDS:
                        if kind == "expected" and not any(verdicts[r.id].expected for r in rows):
                            continue  # the backend gave no token probabilities
                        series = {r.id: verdict_value(verdicts[r.id], criterion, kind) for r in rows}
                        correlations += _correlations(f"{judge}", criterion, kind, series, rows, human, config)
            for name, by_label in predicted.items():
                for label, series in by_label.items():
                    correlations += _correlations(name, label, "prediction", series, rows, human, config)
            agreement = []
            for i, a in enumerate(human):
                for b in human[i + 1:]:
                    pairs2 = [(r.human[a], r.human[b]) for r in rows if r.human[a] is not None and r.human[b] is not None]
                    stats = correlate([float(p[0]) for p in pairs2], [float(p[1]) for p in pairs2],  # type: ignore[arg-type]
                                      config.bootstrap.n_resamples, config.bootstrap.confidence, config.seed,
                                      names=(f"human column {a!r}", f"human column {b!r}"))
                    agreement.append(HumanAgreement(human_a=a, human_b=b, **stats))
        table_score = ("expected" if options.score == "expected"
                       and all(s.score_source == "expected" for s in summaries) else "argmax")
        result = JudgeValidation(
            labels=str(labels), labels_sha256=_sha256(Path(labels)), n_items=len(rows), human_columns=list(human),
            judges=summaries, scorers=[s.record() for s in scorers],
            parse_failure_rate=max(failure.values(), default=0.0),
            table_score=table_score, correlations=correlations, human_agreement=agreement,
            confidence=config.bootstrap.confidence, n_resamples=config.bootstrap.n_resamples, seed=config.seed)
        with run.step("write"):
            import pandas as pd

            table = pd.DataFrame([{"id": r.id, **{f"human_{c}": r.human[c] for c in human},
                                   **{f"{j}:{k}": (verdicts[r.id].scores or {}).get(k) for j, verdicts in by_judge.items()
                                      for k in CRITERIA},
                                   **{f"{j}:{k}_expected": (verdicts[r.id].expected or {}).get(k)
                                      for j, verdicts in by_judge.items() for k in CRITERIA},
                                   **{f"{j}:error": verdicts[r.id].error for j, verdicts in by_judge.items()},
                                   **{f"{n}:{label}": series[r.id] for n, by_label in predicted.items()
                                      for label, series in by_label.items()}}
                                  for r in rows])
            write_text(out / "judged.csv", table.to_csv(index=False))
            series_for_figure = {judge: {r.id: verdict_value(v[r.id], "overall", table_score)  # type: ignore[arg-type]
                                         for r in rows}
                                 for judge, v in by_judge.items()}
            for name, by_label in predicted.items():
                label = next((h for h in human if h in by_label), next(iter(by_label)))
                series_for_figure[f"{name}:{label}"] = by_label[label]
            result.files = ["validation.json", "judged.csv", *_figure(result, rows, series_for_figure, out)]
            write_json(out / "validation.json", result.model_dump(mode="json"))
        run.counts.update(items=len(rows), judges=len(judges), scorers=len(scorers))
        run.extra.update(parse_failure_rate=failure, warnings=warnings)
    return result


def _figure(result: JudgeValidation, rows: Sequence[LabelRow], series: dict[str, dict[str, float | None]],
            out: Path) -> list[str]:
    """Scatter of each judge's overall score (and each scorer's matching label) against each human
    column, with binned means."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    cols = result.human_columns
    names = list(series)
    if not names:
        return []
    fig, axes = plt.subplots(len(names), len(cols), figsize=(3.4 * len(cols), 3.0 * len(names)), squeeze=False,
                             dpi=110)
    for i, name in enumerate(names):
        if name.startswith("scorer:"):
            judge, label = name.rsplit(":", 1)
            criterion, kind = label, "prediction"
        else:
            judge, criterion, kind = name, "overall", result.table_score
        for j, col in enumerate(cols):
            ax = axes[i][j]
            pts = [(x, r.human[col]) for r in rows if (x := series[name].get(r.id)) is not None
                   and r.human[col] is not None]
            if pts:
                xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)
                jitter = np.random.default_rng(0).uniform(-0.04, 0.04, len(xs)) if kind == "argmax" else 0
                ax.scatter(xs + jitter, ys, s=12, alpha=0.6, color="C0")
                edges = np.unique(np.quantile(xs, np.linspace(0, 1, 6)))
                if len(edges) > 1:  # calibration: mean human label per score quintile
                    which = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(edges) - 2)
                    bins = [(xs[which == b].mean(), ys[which == b].mean()) for b in range(len(edges) - 1)
                            if (which == b).any()]
                    ax.plot([b[0] for b in bins], [b[1] for b in bins], "-o", color="C3", ms=4, label="bin mean")
            c = next((c for c in result.correlations if c.judge == judge and c.human == col
                      and c.criterion == criterion and c.score == kind), None)
            if c is None or c.spearman is None:
                text = "rho undefined" + (f": {c.undefined_reason[:40]}..." if c and c.undefined_reason else "")
            else:
                ci = f" [{c.ci_low:.2f}, {c.ci_high:.2f}]" if c.ci_low is not None and c.ci_high is not None else ""
                text = f"rho {c.spearman:.2f}{ci}, n={c.n}"
            ax.set_title(f"{judge} vs {col}\n{text}", fontsize=8)
            ax.set_xlabel(f"{criterion} ({kind})", fontsize=8)
            ax.set_ylabel(f"human {col}", fontsize=8)
    fig.tight_layout()
    files = []
    for ext in ("png", "svg"):
        with atomic_path(out / f"validation.{ext}", suffix=f".{ext}") as tmp:
            fig.savefig(tmp, format=ext)
        files.append(f"validation.{ext}")
    plt.close(fig)
    return files
