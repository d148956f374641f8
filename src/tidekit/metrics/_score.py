"""The scoring run: generations + references -> per-sample scores, aggregates, comparisons.

:func:`score` reads generation records (``tidekit.data.read_generations``) and the dataset
holding the reference replies, checks them (every problem at once, naming ids), computes the
configured reference metrics, safety checks and judge ratings per reply, then aggregates
(persona-clustered bootstrap) and compares systems (Wilcoxon, Holm). Outputs in ``out``:

- ``scores.parquet``: one row per conversation x system, with persona facets, every metric,
  judge and safety column, and ``status`` / ``exclusion_reason`` (failed or empty generations
  are kept as excluded rows with empty scores, and left out of aggregates);
- ``aggregates.csv`` (+ ``.md``, ``.tex``), ``comparisons.csv`` (+ ``.md``, ``.tex``);
- with judges: ``judge_scores.parquet`` (each judge's verdicts, most likely and expected scores),
  ``judge_summary.csv`` (per judge and criterion: readable n, failure rates, constant, dropped),
  ``judge_bias.csv`` and ``judge_cache.sqlite`` (the engine's cache of judge calls);
- ``manifest.json`` (config, encoders and judges, counts, exclusions, parse-failure rates).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit._io import atomic_path, write_text
from tidekit._manifest import ModelIdentity, RunRecorder
from tidekit.data import Dataset, GenerationRecord, Problems, load_dataset, read_generations
from tidekit.errors import DataError
from tidekit.metrics._checks import JUDGE_COLUMNS, SAFETY_COLUMNS, JudgeSpec
from tidekit.metrics._compare import REFERENCE_FREE
from tidekit.metrics._config import ScoreConfig
from tidekit.metrics._judge import JudgeConfig, Runner
from tidekit.metrics._score_tables import write_score_tables
from tidekit.metrics._scorers import Scorer, ScoringBatch, build_scorers
from tidekit.scenarios import load_taxonomy

__all__ = ["JUDGE_COLUMNS", "SAFETY_COLUMNS", "ScoreResult", "find_generation_files", "score"]

REFERENCE_SYSTEM = "reference"
OUTPUTS = ("scores.parquet", "aggregates.csv", "aggregates.md", "aggregates.tex", "comparisons.csv",
           "comparisons.md", "comparisons.tex")


class ScoreResult(BaseModel):
    """What a scoring run wrote and the headline numbers."""

    out: str = Field(description="Output folder.")
    rows: int = Field(description="Rows in scores.parquet (conversation x system).")
    scored: int = Field(description="Rows with scores.")
    excluded: int = Field(description="Rows excluded (failed or empty generations).")
    systems: list[str] = Field(description="Systems scored.")
    metric_columns: list[str] = Field(description="Metric columns in scores.parquet.")
    parse_failure_rate: dict[str, float] = Field(default_factory=dict, description="Judge -> parse-failure rate.")
    warnings: list[str] = Field(default_factory=list, description="Judge warnings (dropped, constant verdicts).")
    files: list[str] = Field(default_factory=list, description="Files written.")


METRIC_COLUMNS_KEY = b"tidekit.metric_columns"


def write_scores(table: Any, path: Path, metric_columns: list[str]) -> None:
    """Write ``table`` to ``path`` (Parquet, atomically), naming its metric columns in the file's
    metadata, so readers tell metrics from persona facets and counts (``age``, ``judge_n``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[METRIC_COLUMNS_KEY] = json.dumps(metric_columns).encode()
    with atomic_path(path, ".parquet") as tmp:
        pq.write_table(arrow.replace_schema_metadata(meta), tmp)


def find_generation_files(path: str | Path) -> list[Path]:
    """A generations file, a folder holding ``generations.jsonl``, or a folder of such folders."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "generations.jsonl").is_file():
        return [path / "generations.jsonl"]
    found = sorted(path.glob("*/generations.jsonl")) if path.is_dir() else []
    if not found:
        raise DataError(f"{path}: no generations found (expected a generations.jsonl file, a folder holding "
                        "one, or a folder of such folders); run 'tidekit generate' first or check the path")
    return found


def _short(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _check_inputs(records: list[tuple[Path, GenerationRecord]], dataset: Dataset, problems: Problems) -> None:
    """Every problem with the inputs, each naming the ids involved."""
    convs = {c.id: c for c in dataset.conversations}
    seen: dict[tuple[str, str], Path] = {}
    dups: dict[tuple[str, str], list[str]] = {}
    unknown: dict[Path, list[str]] = {}
    for path, r in records:
        key = (r.conversation_id, r.system)
        if key in seen:
            dups.setdefault(key, [str(seen[key])]).append(str(path))
        seen.setdefault(key, path)
        if r.conversation_id not in convs:
            unknown.setdefault(path, []).append(r.conversation_id)
    for (cid, system), paths in sorted(dups.items()):
        problems.add(paths[0], f"conversation {cid!r} has {len(paths)} generations for system {system!r} "
                     f"(in {', '.join(sorted(set(paths)))})", field="conversation_id",
                     hint="score each system's generations once; remove the duplicates")
    for path, ids in unknown.items():
        problems.add(path, f"{len(ids)} generation(s) answer conversations not in the references: "
                     f"{_short(sorted(set(ids)))}", field="conversation_id",
                     hint="pass the dataset these generations were made from with --references")
    no_ref = sorted({r.conversation_id for _, r in records
                     if r.conversation_id in convs and convs[r.conversation_id].reference is None})
    if no_ref:
        problems.add(dataset.source or "references", f"{len(no_ref)} conversation(s) have no reference reply: "
                     f"{_short(no_ref)}", field="reference", hint="add reference replies or score another dataset")


def _facet(persona: Any, name: str) -> Any:
    if persona is None:
        return None
    value = getattr(persona, name, None) if name in type(persona).model_fields else persona.attributes.get(name)
    return value if value is None or isinstance(value, str | int | float | bool) else json.dumps(value)


def _load(config: ScoreConfig) -> tuple[Dataset, list[GenerationRecord]]:
    """The references and every generation record (the reference replies added as a system when
    asked); DataError lists every problem with the inputs at once."""
    assert config.references is not None
    dataset = load_dataset(config.references)
    records: list[tuple[Path, GenerationRecord]] = []
    for g in config.generations:
        for path in find_generation_files(g):
            records += [(path, r) for r in read_generations(path)]
    problems = Problems()
    _check_inputs(records, dataset, problems)
    problems.raise_if_errors("the scoring inputs")
    convs = {c.id: c for c in dataset.conversations}
    gens = [r for _, r in records]
    if config.include_reference and not any(r.system == REFERENCE_SYSTEM for r in gens):
        order = {cid: i for i, cid in enumerate(convs)}
        answered = sorted({r.conversation_id for r in gens}, key=order.__getitem__)
        gens += [GenerationRecord(conversation_id=cid, system=REFERENCE_SYSTEM, model=REFERENCE_SYSTEM,
                                  condition="reference", output=convs[cid].reference) for cid in answered]
    if not gens:
        raise DataError("the generations hold no records; nothing to score")
    return dataset, gens


def _rows(config: ScoreConfig, dataset: Dataset, gens: list[GenerationRecord], risk: Mapping[str, str]) -> Any:
    """One row per reply: ids, persona facets, status (failed or empty replies are excluded), texts."""
    import pandas as pd

    convs = {c.id: c for c in dataset.conversations}
    personas = dataset.persona_map()
    rows: list[dict[str, Any]] = []
    for r in gens:
        conv = convs[r.conversation_id]
        persona = personas.get(conv.persona_id)
        reason = None
        if r.output is None:
            reason = f"generation failed: {r.error or 'no output'}"
        elif not r.output.strip():
            reason = "empty output"
        rows.append({"conversation_id": r.conversation_id, "persona_id": conv.persona_id,
                     "scenario_id": conv.scenario_id, "system": r.system, "model": r.model,
                     "condition": r.condition,
                     **{f: _facet(persona, f) for f in config.persona_facets},
                     "status": "excluded" if reason else "scored", "exclusion_reason": reason,
                     "response": r.output, "reference": conv.reference, "client_text": conv.client_text,
                     "risk_level": risk.get(conv.scenario_id)})
    table = pd.DataFrame(rows)
    excluded = table[table.status == "excluded"]
    if len(excluded) > config.max_excluded_fraction * len(table):
        ids = [f"{c} ({s}): {why}" for c, s, why in
               excluded[["conversation_id", "system", "exclusion_reason"]].itertuples(index=False)]
        raise DataError(f"{len(excluded)} of {len(table)} generations failed or are empty, more than "
                        f"max_excluded_fraction={config.max_excluded_fraction}: {_short(ids, 5)}. "
                        "Rerun 'tidekit generate' (it resumes) or raise the threshold.")
    return table


def _write_columns(table: Any, ok: Any, scorer: Scorer, values: dict[str, list[Any]]) -> None:
    """A scorer's values into the table: its scored rows get them, excluded rows its fill (NaN, or
    None for a typed column), in the dtype it declares."""
    import pandas as pd

    dtypes: dict[str, str] = getattr(scorer, "dtypes", {})
    fill: dict[str, Any] = getattr(scorer, "fill", {})
    rows = list(table.index[ok])
    for col in scorer.columns:
        dtype = dtypes.get(col)
        if dtype is None and col not in fill:
            table[col] = float("nan")
            table.loc[ok, col] = values[col]
            continue
        full: list[Any] = [fill.get(col)] * len(table)
        for i, v in zip(rows, values[col], strict=True):
            full[table.index.get_loc(i)] = v
        table[col] = pd.array(full, dtype="boolean") if dtype == "boolean" else full


def _pipeline(config: ScoreConfig, out: Path, progress: bool, judge_runner_for: Any) -> list[Scorer]:
    """Every scorer the config asks for, in table order: reference metrics, learned scorers, the safety
    checks, the judges (ConfigError on a bad name before any work)."""
    more: list[tuple[str, Any]] = [("safety", progress)] if config.safety else []
    if config.judges:
        more.append(("judge", JudgeSpec(config.judges, config.judge, out / "judge_cache.sqlite", judge_runner_for,
                                        progress)))
    return build_scorers(config.metrics, config.scorers, more)


def score(config: ScoreConfig, *, out: str | Path, progress: bool = True,
          judge_runner_for: Callable[[JudgeConfig], tuple[Runner, ModelIdentity, Callable[[], None]]] | None = None,
          ) -> ScoreResult:
    """The score stage: score ``config.generations`` against the references in
    ``config.references`` and write the tables to ``out``. Python twin of ``tidekit score``.

    A pipeline: load -> each registered scorer (reference metrics, learned scorers, safety
    checks, judges; each declares its columns and models) -> aggregate -> write the tables
    (Markdown and LaTeX by the reporting layer). ``judge_runner_for`` builds each judge's
    request runner; by default the generation engine (``tidekit.generation.run_requests`` over
    ``tidekit.backends.load_backend``).
    """
    from tqdm.auto import tqdm

    from tidekit.metrics._bootstrap import aggregate_scores
    from tidekit.metrics._compare import compare_systems

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder for the scores")
    if not config.generations:
        raise DataError("no generations given; pass --generations DIR (repeat it for several)")
    if config.references is None:
        raise DataError("no references given; pass --references DATASET (the dataset the generations answer)")
    scorers = _pipeline(config, out, progress, judge_runner_for)
    inputs = {f"generations[{i}]": str(g) for i, g in enumerate(config.generations)} | {
        "references": str(config.references)}
    with RunRecorder(out, command="score", config=config, seed=config.seed, inputs=inputs) as run:
        with run.step("load"):
            dataset, gens = _load(config)
        risk = {s.id: s.risk_level for s in load_taxonomy().scenarios}
        table = _rows(config, dataset, gens, risk)
        ok = table.status == "scored"
        scored_rows = table[ok]
        batch = ScoringBatch(contexts=scored_rows.client_text.tolist(), responses=scored_rows.response.tolist(),
                             references=scored_rows.reference.tolist(),
                             ids=(scored_rows.conversation_id + "|" + scored_rows.system).tolist(),
                             risk_levels=scored_rows.risk_level.tolist())
        metric_columns: list[str] = []
        judge_columns: list[str] = []
        checked: list[str] = []
        reference_free = set(REFERENCE_FREE)
        files: list[str] = []
        warnings: list[str] = []
        for scorer in tqdm(scorers, desc="scorers", unit="scorer", disable=not progress):
            with run.step(scorer.name):
                values = scorer(batch)
                _write_columns(table, ok, scorer, values)
            role = getattr(scorer, "role", "metric")
            columns = list(getattr(scorer, "scored", scorer.columns))
            {"metric": metric_columns, "judge": judge_columns}.get(role, []).extend(columns)
            checked += list(getattr(scorer, "aggregated", ()))
            if scorer.reference_free:
                reference_free.update(columns)
            run.models.extend(scorer.models())
            finish = getattr(scorer, "finish", None)
            if finish is not None:
                report = finish(out)
                files += report.files
                warnings += report.warnings
                run.extra.update(report.extra)

        with run.step("aggregate"):
            scored = table[ok]
            numeric = metric_columns + judge_columns + checked
            agg_input = scored.copy()
            for col in checked:  # boolean checks are averaged as shares
                agg_input[col] = agg_input[col].astype("Float64")
            aggregates = aggregate_scores(agg_input, numeric, n_resamples=config.bootstrap.n_resamples,
                                          confidence=config.bootstrap.confidence, seed=config.seed)
            comparisons = compare_systems(scored, metric_columns + judge_columns, unit=config.comparison_unit,
                                          reference_free=reference_free)

        with run.step("write"):
            front = [c for c in table.columns if c not in ("response", "reference", "client_text")]
            write_scores(table[[*front, "response"]], out / "scores.parquet", metric_columns + judge_columns)
            write_text(out / "aggregates.csv", aggregates.to_csv(index=False))
            write_text(out / "comparisons.csv", comparisons.to_csv(index=False))
            write_score_tables(out, aggregates, comparisons, columns=metric_columns + judge_columns,
                               judge_columns=judge_columns, warnings=warnings,
                               scenario_metric=(config.scenario_table_metric if config.scenario_table_metric
                                                in numeric else None),
                               confidence=config.bootstrap.confidence, comparison_unit=config.comparison_unit)
            files = list(OUTPUTS) + files

        excluded = table[~ok]
        systems = sorted(table.system.unique())
        run.counts.update(rows=len(table), scored=int(ok.sum()), excluded=len(excluded),
                          conversations=int(table.conversation_id.nunique()), systems=len(systems))
        run.counts.update({f"scored:{s}": int(((table.system == s) & ok).sum()) for s in systems})
        run.extra.update(metrics=[s.record() for s in scorers if getattr(s, "role", "metric") == "metric"],
                         exclusions=[{"conversation_id": c, "system": s, "reason": why} for c, s, why in
                                     excluded[["conversation_id", "system", "exclusion_reason"]].itertuples(index=False)],
                         unknown_scenarios=sorted(set(table.scenario_id) - set(risk)), outputs=files)
    return ScoreResult(out=str(out), rows=len(table), scored=int(ok.sum()), excluded=len(excluded),
                       systems=systems, metric_columns=metric_columns + judge_columns,
                       parse_failure_rate=dict(run.extra.get("judge", {}).get("parse_failure_rate", {})),
                       warnings=warnings, files=files)
