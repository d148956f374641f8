"""Judge validation: how well an empathy judge agrees with human labels (``tidekit judge validate``).

A labels file (CSV or JSONL) holds one reply per row: ``id``, ``context`` (what the person
wrote), ``response`` (the reply to rate) and one or more human score columns (any numeric
scale; an empty cell is a missing label). Every row is judged through the generation engine
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
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from tidekit._manifest import ModelIdentity
from tidekit.errors import DataError
from tidekit.metrics._config import ScoreConfig
from tidekit.metrics._judge import JudgeConfig, JudgeSummary, Runner, verdict_value
from tidekit.metrics._rubric import CRITERIA

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Correlation", "HumanAgreement", "JudgeValidation", "LabelRow", "correlate", "load_labels",
           "validate_judge"]

REQUIRED = ("id", "context", "response")
SCORE_KINDS: tuple[Literal["expected", "argmax"], ...] = ("expected", "argmax")


class LabelRow(BaseModel):
    """One labelled reply."""

    id: str
    context: str
    response: str
    human: dict[str, float | None] = Field(description="Human column -> score (None: missing).")


class Correlation(BaseModel):
    """Agreement of one judge criterion with one human column."""

    judge: str
    criterion: str = Field(description="Judge criterion (emotion_recognition, ..., overall).")
    score: Literal["expected", "argmax"] = Field(description="Which judge score: probability-weighted or most likely.")
    human: str = Field(description="Human column.")
    n: int = Field(description="Items with both a readable verdict and a human label.")
    spearman: float | None = Field(description="Spearman rho; None when undefined.")
    ci_low: float | None = Field(description="Bootstrap percentile interval of rho, lower end.")
    ci_high: float | None = Field(description="Upper end.")
    kendall: float | None = Field(description="Kendall tau-b; None when undefined.")
    kendall_ci_low: float | None = None
    kendall_ci_high: float | None = None
    undefined_reason: str | None = Field(default=None, description="Why the correlation is undefined.")


class HumanAgreement(BaseModel):
    """Agreement between two human columns: the ceiling for a judge."""

    human_a: str
    human_b: str
    n: int
    spearman: float | None
    ci_low: float | None
    ci_high: float | None
    kendall: float | None
    kendall_ci_low: float | None = None
    kendall_ci_high: float | None = None
    undefined_reason: str | None = None


class JudgeValidation(BaseModel):
    """Everything ``validation.json`` holds."""

    labels: str = Field(description="The labels file.")
    labels_sha256: str = Field(description="Its sha256.")
    n_items: int = Field(description="Rows in the labels file.")
    human_columns: list[str]
    judges: list[JudgeSummary] = Field(description="Per judge: readable n, failure rates, constant criteria.")
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


# ---- the labels file ----------------------------------------------------------------------------

def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header on line 1) or JSONL file."""
    import csv

    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg}); each line must be one "
                                    "object with id, context, response and the human columns") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{line_no}: a JSON object is expected, got {type(row).__name__}")
                rows.append((line_no, row))
        return rows
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: labels must be a .csv or .jsonl file")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        # line numbers of records (a quoted field may span lines)
        return [(reader.line_num, dict(row)) for row in reader]


def load_labels(path: str | Path, human: Sequence[str]) -> list[LabelRow]:
    """The rows of a labels file, checked: every problem reported at once with its file:line and field."""
    from tidekit.data import Problems

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labels file")
    if not human:
        raise DataError("name at least one human score column (--human COL)")
    rows = _read_rows(path)
    problems = Problems()
    if not rows:
        raise DataError(f"{path}: no rows; the file needs id, context, response and {', '.join(human)}")
    columns = set().union(*(r.keys() for _, r in rows))
    missing = [c for c in (*REQUIRED, *human) if c not in columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(repr(c) for c in missing)} (columns: "
                        f"{', '.join(sorted(columns))}); the file needs id, context, response and each --human column")
    out: list[LabelRow] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        where = f"line {line}"
        values = {c: ("" if row.get(c) is None else str(row.get(c))).strip() for c in REQUIRED}
        for c in REQUIRED:
            if not values[c]:
                problems.add(path, f"empty {c}", where=where, field=c,
                             hint="every row needs an id, the context and the response")
        if values["id"] in seen:
            problems.add(path, f"id {values['id']!r} repeats line {seen[values['id']]}", where=where, field="id",
                         hint="give each reply its own id")
        seen.setdefault(values["id"], line)
        scores: dict[str, float | None] = {}
        for c in human:
            raw = row.get(c)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                scores[c] = None
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                problems.add(path, f"{c}={raw!r} is not a number", where=where, field=c,
                             hint="human scores must be numbers; leave the cell empty for a missing label")
                continue
            if not math.isfinite(value):
                problems.add(path, f"{c}={raw!r} is not a finite number", where=where, field=c)
                continue
            scores[c] = value
        out.append(LabelRow(id=values["id"], context=values["context"], response=values["response"], human=scores))
    if problems.errors:
        shown = "\n  ".join(str(p) for p in problems.errors[:20])
        more = f"\n  ... and {len(problems.errors) - 20} more" if len(problems.errors) > 20 else ""
        raise DataError(f"{len(problems.errors)} problem(s) in the labels file {path}:\n  {shown}{more}")
    return out


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
    boot_rho, boot_tau = _spearman_rows(xa[idx], ya[idx]), _kendall_rows(xa[idx], ya[idx])
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


def validate_judge(labels: str | Path, human: Sequence[str], out: str | Path, config: ScoreConfig | None = None,
                   progress: bool = True,
                   runner_for: Callable[[JudgeConfig], tuple[Runner, ModelIdentity, Callable[[], None]]] | None = None,
                   ) -> JudgeValidation:
    """Judge every row of ``labels`` and write how each judge agrees with each ``human`` column to ``out``.

    ``config`` supplies the judges (default: SmolLM2-135M on the hf backend), how they are asked
    (``judge``), the bootstrap (``bootstrap``) and the seed; its other keys are unused.
    A judge past ``judge.max_parse_failure_rate`` is reported, not dropped or failed: finding
    that out is what validation is for.
    """
    from tidekit._io import write_json, write_text
    from tidekit._manifest import RunRecorder
    from tidekit.metrics._judge import JudgeItem, run_judges

    config = config or ScoreConfig()
    judges = config.judges or [JudgeConfig()]
    options = config.judge.model_copy(update={"max_parse_failure_rate": 1.0, "on_failure": "drop"})
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder for the validation")
    rows = load_labels(labels, human)
    with RunRecorder(out, command="judge validate", config=config, seed=config.seed,
                     inputs={"labels": str(labels)}) as run:
        with run.step("judge"):
            items = [JudgeItem(id=r.id, client_text=r.context, response=r.response) for r in rows]
            judged = run_judges(judges, items, options.model_copy(update={"bias_probe_n": 0}),
                                cache=str(out / "judge_cache.sqlite"), runner_for=runner_for, progress=progress)
        run.models.extend(judged.identities)
        by_judge: dict[str, dict[str, Any]] = {}
        for v in judged.verdicts:
            by_judge.setdefault(v.judge, {})[v.id] = v
        correlations: list[Correlation] = []
        with run.step("correlate"):
            for judge, verdicts in by_judge.items():
                for criterion in CRITERIA:
                    for kind in SCORE_KINDS:
                        for col in human:
                            pairs = [(x, r.human[col]) for r in rows
                                     if (x := verdict_value(verdicts[r.id], criterion, kind)) is not None
                                     and r.human[col] is not None]
                            if kind == "expected" and not any(verdicts[r.id].expected for r in rows):
                                continue  # the backend gave no token probabilities
                            stats = correlate([p[0] for p in pairs], [float(p[1]) for p in pairs],  # type: ignore[arg-type]
                                              config.bootstrap.n_resamples, config.bootstrap.confidence,
                                              config.seed, names=(f"judge {judge!r} ({criterion}, {kind})",
                                                                  f"human column {col!r}"))
                            correlations.append(Correlation(judge=judge, criterion=criterion, score=kind,
                                                            human=col, **stats))
            agreement = []
            for i, a in enumerate(human):
                for b in human[i + 1:]:
                    pairs2 = [(r.human[a], r.human[b]) for r in rows if r.human[a] is not None and r.human[b] is not None]
                    stats = correlate([float(p[0]) for p in pairs2], [float(p[1]) for p in pairs2],  # type: ignore[arg-type]
                                      config.bootstrap.n_resamples, config.bootstrap.confidence, config.seed,
                                      names=(f"human column {a!r}", f"human column {b!r}"))
                    agreement.append(HumanAgreement(human_a=a, human_b=b, **stats))
        table_score = ("expected" if options.score == "expected"
                       and all(s.score_source == "expected" for s in judged.summaries) else "argmax")
        result = JudgeValidation(
            labels=str(labels), labels_sha256=_sha256(Path(labels)), n_items=len(rows), human_columns=list(human),
            judges=judged.summaries, parse_failure_rate=max(judged.parse_failure_rate.values(), default=0.0),
            table_score=table_score, correlations=correlations, human_agreement=agreement,
            confidence=config.bootstrap.confidence, n_resamples=config.bootstrap.n_resamples, seed=config.seed)
        with run.step("write"):
            import pandas as pd

            table = pd.DataFrame([{"id": r.id, **{f"human_{c}": r.human[c] for c in human},
                                   **{f"{j}:{k}": (verdicts[r.id].scores or {}).get(k) for j, verdicts in by_judge.items()
                                      for k in CRITERIA},
                                   **{f"{j}:{k}_expected": (verdicts[r.id].expected or {}).get(k)
                                      for j, verdicts in by_judge.items() for k in CRITERIA},
                                   **{f"{j}:error": verdicts[r.id].error for j, verdicts in by_judge.items()}}
                                  for r in rows])
            write_text(out / "judged.csv", table.to_csv(index=False))
            result.files = ["validation.json", "judged.csv", *_figure(result, rows, by_judge, out)]
            write_json(out / "validation.json", result.model_dump(mode="json"))
        run.counts.update(items=len(rows), judges=len(judges))
        run.extra.update(parse_failure_rate=judged.parse_failure_rate, warnings=judged.warnings)
    return result


def _figure(result: JudgeValidation, rows: Sequence[LabelRow], by_judge: dict[str, dict[str, Any]],
            out: Path) -> list[str]:
    """Scatter of each judge's overall score against each human column, with binned means."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from tidekit._io import atomic_path

    cols = result.human_columns
    judges = list(by_judge)
    fig, axes = plt.subplots(len(judges), len(cols), figsize=(3.4 * len(cols), 3.0 * len(judges)), squeeze=False,
                             dpi=110)
    for i, judge in enumerate(judges):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            pts = [(x, r.human[col]) for r in rows
                   if (x := verdict_value(by_judge[judge][r.id], "overall", result.table_score)) is not None
                   and r.human[col] is not None]
            if pts:
                xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)
                jitter = np.random.default_rng(0).uniform(-0.04, 0.04, len(xs)) if result.table_score == "argmax" else 0
                ax.scatter(xs + jitter, ys, s=12, alpha=0.6, color="C0")
                edges = np.unique(np.quantile(xs, np.linspace(0, 1, 6)))
                if len(edges) > 1:  # calibration: mean human label per judge-score quintile
                    which = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(edges) - 2)
                    bins = [(xs[which == b].mean(), ys[which == b].mean()) for b in range(len(edges) - 1)
                            if (which == b).any()]
                    ax.plot([b[0] for b in bins], [b[1] for b in bins], "-o", color="C3", ms=4, label="bin mean")
            c = next((c for c in result.correlations if c.judge == judge and c.human == col
                      and c.criterion == "overall" and c.score == result.table_score), None)
            if c is None or c.spearman is None:
                label = "rho undefined" + (f": {c.undefined_reason[:40]}..." if c and c.undefined_reason else "")
            else:
                ci = f" [{c.ci_low:.2f}, {c.ci_high:.2f}]" if c.ci_low is not None and c.ci_high is not None else ""
                label = f"rho {c.spearman:.2f}{ci}, n={c.n}"
            ax.set_title(f"{judge} vs {col}\n{label}", fontsize=8)
            ax.set_xlabel(f"judge overall ({result.table_score})", fontsize=8)
            ax.set_ylabel(f"human {col}", fontsize=8)
    fig.tight_layout()
    files = []
    for ext in ("png", "svg"):
        with atomic_path(out / f"validation.{ext}", suffix=f".{ext}") as tmp:
            fig.savefig(tmp, format=ext)
        files.append(f"validation.{ext}")
    plt.close(fig)
    return files
