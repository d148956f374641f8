"""What a run folder holds: each stage's outputs and manifest, and what is missing.

The report renders whatever parts exist. Layout (written by ``tidekit run`` and each stage)::

    RUN/dataset/      records (or data/, split/) + manifest.json
    RUN/generations/<system>/generations.jsonl + manifest.json
    RUN/finetune/<alias>/  adapter, model card, metrics.jsonl, manifest.json
    RUN/scores/       scores.parquet, aggregates.csv, comparisons.csv, ceiling.json, manifest.json
    RUN/ratings/      ratings.csv or ratings.parquet, manifest.json
    RUN/analysis/     analysis.json, tables/, manifest.json
    RUN/judge_validation/  validation.json (the judges against human labels), manifest.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit._manifest import MANIFEST_NAME, RunManifest, read_manifest
from tidekit.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from tidekit.analysis import AnalysisResult

__all__ = ["RunContents", "discover_run"]


@dataclass
class RunContents:
    """Everything the report can use from one run folder."""

    root: Path
    manifests: dict[str, RunManifest] = field(default_factory=dict)  # stage label -> manifest
    dataset_summary: Any = None  # tidekit.data.DatasetSummary
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)  # system -> counts
    finetune: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # alias -> metrics rows
    scores: pd.DataFrame | None = None
    aggregates: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    ceiling: dict[str, Any] | None = None
    ratings_path: Path | None = None
    analysis: AnalysisResult | None = None
    judge_validation: dict[str, Any] | None = None  # validation.json of 'tidekit judge validate'
    judge_warnings: list[str] = field(default_factory=list)  # from the scores manifest
    missing: list[str] = field(default_factory=list)


def _manifest(folder: Path, label: str, contents: RunContents) -> None:
    path = folder / MANIFEST_NAME
    if path.is_file():
        try:
            contents.manifests[label] = read_manifest(path)
        except (ValueError, OSError) as exc:
            contents.missing.append(f"{label}: manifest.json unreadable ({type(exc).__name__})")


def discover_run(root: str | Path) -> RunContents:
    """Read every stage output that exists under ``root``; note each one that does not."""
    import pandas as pd

    root = Path(root)
    c = RunContents(root=root)
    # dataset
    ds = root / "dataset"
    if ds.is_dir():
        _manifest(ds, "dataset", c)
        from tidekit.data import load_dataset, summarize

        for candidate in (ds / "data", ds, root / "split"):
            try:
                c.dataset_summary = summarize(load_dataset(candidate))
                break
            except DataError:
                continue
        if c.dataset_summary is None:
            c.missing.append("dataset: no readable records under dataset/")
    else:
        c.missing.append("dataset: no dataset/ folder")
    if (root / "split").is_dir():
        _manifest(root / "split", "split", c)
    # generations
    gen = root / "generations"
    if gen.is_dir():
        for sub in sorted(p for p in gen.iterdir() if p.is_dir()):
            _manifest(sub, f"generations/{sub.name}", c)
            path = sub / "generations.jsonl"
            if not path.is_file():
                continue
            n = errors = 0
            latency = 0.0
            tokens = 0
            system = sub.name
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    system = row.get("system", system)
                    n += 1
                    errors += row.get("error") is not None
                    latency += float(row.get("latency_s") or 0)
                    tokens += int(row.get("completion_tokens") or 0)
            c.generations[system] = {"outputs": n, "errors": errors, "mean_latency_s": latency / n if n else None,
                                     "mean_completion_tokens": tokens / n if n else None}
    else:
        c.missing.append("generations: no generations/ folder")
    # fine-tuning
    ft = root / "finetune"
    if ft.is_dir():
        for sub in sorted(p for p in ft.iterdir() if p.is_dir()):
            _manifest(sub, f"finetune/{sub.name}", c)
            metrics = sub / "metrics.jsonl"
            if metrics.is_file():
                c.finetune[sub.name] = [json.loads(x) for x in metrics.read_text(encoding="utf-8").splitlines()
                                        if x.strip()]
    else:
        c.missing.append("fine-tuning: no finetune/ folder")
    # scores
    sc = root / "scores"
    if sc.is_dir():
        _manifest(sc, "scores", c)
        if (sc / "scores.parquet").is_file():
            from tidekit.analysis._metric_human import load_scores

            try:
                c.scores = load_scores(sc / "scores.parquet")  # knows which columns are metrics
            except DataError as exc:
                c.missing.append(f"scores: {exc}")
        else:
            c.missing.append("scores: no scores.parquet")
        for name in ("aggregates", "comparisons"):
            if (sc / f"{name}.csv").is_file():
                setattr(c, name, pd.read_csv(sc / f"{name}.csv"))
        # `tidekit run` writes the ceiling analysis to scores/ceiling/ (tidekit finetune ceiling --out)
        for ceiling in (sc / "ceiling" / "ceiling.json", sc / "ceiling.json"):
            if ceiling.is_file():
                c.ceiling = json.loads(ceiling.read_text(encoding="utf-8"))
                break
    else:
        c.missing.append("scores: no scores/ folder")
    scores_manifest = c.manifests.get("scores")
    if scores_manifest is not None:
        c.judge_warnings = list((scores_manifest.extra.get("judge") or {}).get("warnings") or [])
    jv = root / "judge_validation" / "validation.json"
    if jv.is_file():
        _manifest(jv.parent, "judge_validation", c)
        try:
            c.judge_validation = json.loads(jv.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            c.missing.append(f"judge validation: validation.json unreadable ({exc.msg})")
    # ratings
    rt = root / "ratings"
    if rt.is_dir():
        _manifest(rt, "ratings", c)
        for name in ("ratings.parquet", "ratings.csv"):
            if (rt / name).is_file():
                c.ratings_path = rt / name
                break
        else:
            c.missing.append("ratings: no exported ratings.csv/parquet (run 'tidekit rate export')")
    else:
        c.missing.append("ratings: no ratings/ folder")
    # analysis
    an = root / "analysis"
    if (an / "analysis.json").is_file():
        from tidekit.analysis import AnalysisResult

        _manifest(an, "analysis", c)
        c.analysis = AnalysisResult.model_validate_json((an / "analysis.json").read_text(encoding="utf-8"))
    else:
        c.missing.append("analysis: no analysis/analysis.json (run 'tidekit analyze' or 'tidekit report --analyze')")
    return c
