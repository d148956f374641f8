"""What a run folder holds: each stage's outputs and manifest, and what is missing.

The report renders whatever parts exist. Where each stage writes is :class:`tidekit._layout.
RunLayout`'s to say (the layout ``tidekit run`` writes); records are read through the data
readers (``tidekit.data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit._layout import RunLayout
from tidekit._manifest import MANIFEST_NAME, RunManifest, read_manifest
from tidekit.data import read_generations
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

    layout = RunLayout(root)
    root = layout.root
    c = RunContents(root=root)
    # dataset
    ds = layout.dataset
    if ds.is_dir():
        _manifest(ds, "dataset", c)
        from tidekit.data import load_dataset, summarize

        for candidate in (layout.dataset_data, ds, layout.split):
            try:
                c.dataset_summary = summarize(load_dataset(candidate))
                break
            except DataError:
                continue
        if c.dataset_summary is None:
            c.missing.append("dataset: no readable records under dataset/")
    else:
        c.missing.append("dataset: no dataset/ folder")
    if layout.split.is_dir():
        _manifest(layout.split, "split", c)
    # generations
    if layout.generations_root.is_dir():
        for sub in layout.generation_dirs():
            _manifest(sub, f"generations/{sub.name}", c)
            if not (sub / "generations.jsonl").is_file():
                continue
            try:
                records = read_generations(sub)
            except DataError as exc:
                c.missing.append(f"generations/{sub.name}: {exc}")
                continue
            n = len(records)
            system = records[0].system if records else sub.name
            c.generations[system] = {
                "outputs": n, "errors": sum(r.error is not None for r in records),
                "mean_latency_s": sum(r.latency_s or 0 for r in records) / n if n else None,
                "mean_completion_tokens": sum(r.completion_tokens or 0 for r in records) / n if n else None}
    else:
        c.missing.append("generations: no generations/ folder")
    # fine-tuning
    ft = layout.finetune_root
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
    sc = layout.scores
    if sc.is_dir():
        _manifest(sc, "scores", c)
        if layout.scores_file.is_file():
            from tidekit.analysis import load_scores

            try:
                c.scores = load_scores(layout.scores_file)  # knows which columns are metrics
            except DataError as exc:
                c.missing.append(f"scores: {exc}")
        else:
            c.missing.append("scores: no scores.parquet")
        for name in ("aggregates", "comparisons"):
            if (sc / f"{name}.csv").is_file():
                setattr(c, name, pd.read_csv(sc / f"{name}.csv"))
    else:
        c.missing.append("scores: no scores/ folder")
    # the ceiling stage's output (runs made before it was a stage of its own kept it in scores/)
    for ceiling in (layout.ceiling / "ceiling.json", sc / "ceiling" / "ceiling.json"):
        if ceiling.is_file():
            c.ceiling = json.loads(ceiling.read_text(encoding="utf-8"))
            break
    scores_manifest = c.manifests.get("scores")
    if scores_manifest is not None:
        c.judge_warnings = list((scores_manifest.extra.get("judge") or {}).get("warnings") or [])
    jv = layout.judge_validation / "validation.json"
    if jv.is_file():
        _manifest(jv.parent, "judge_validation", c)
        try:
            c.judge_validation = json.loads(jv.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            c.missing.append(f"judge validation: validation.json unreadable ({exc.msg})")
    # ratings
    rt = layout.ratings
    if rt.is_dir():
        _manifest(rt, "ratings", c)
        c.ratings_path = layout.ratings_table()
        if c.ratings_path is None:
            c.missing.append("ratings: no exported ratings.csv/parquet (run 'tidekit rate export')")
    else:
        c.missing.append("ratings: no ratings/ folder")
    # analysis
    an = layout.analysis
    if (an / "analysis.json").is_file():
        from tidekit.analysis import AnalysisResult

        _manifest(an, "analysis", c)
        c.analysis = AnalysisResult.model_validate_json((an / "analysis.json").read_text(encoding="utf-8"))
    else:
        c.missing.append("analysis: no analysis/analysis.json (run 'tidekit analyze' or 'tidekit report --analyze')")
    return c
