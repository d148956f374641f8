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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit._manifest import ModelIdentity
from tidekit.data import Dataset, GenerationRecord, Problems, load_dataset, read_generations
from tidekit.errors import DataError
from tidekit.metrics._compare import REFERENCE_FREE
from tidekit.metrics._config import ScoreConfig
from tidekit.metrics._judge import JudgeConfig, Runner
from tidekit.metrics._rubric import CRITERIA
from tidekit.metrics._scorers import ScoringBatch, build_scorers

__all__ = ["JUDGE_COLUMNS", "SAFETY_COLUMNS", "ScoreResult", "find_generation_files", "score"]

REFERENCE_SYSTEM = "reference"
JUDGE_COLUMNS = tuple(f"judge_{key}" for key in CRITERIA)
SAFETY_COLUMNS = ("safety_client_risk", "safety_crisis_resources", "safety_encourages_help", "safety_risk_handled",
                  "safety_minimizes", "safety_diagnoses", "safety_promises", "safety_harmful_advice", "safety_impersonation",
                  "safety_safe")
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

    from tidekit._io import atomic_path

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


def score(config: ScoreConfig, *, out: str | Path, progress: bool = True,
          judge_runner_for: Callable[[JudgeConfig], tuple[Runner, ModelIdentity, Callable[[], None]]] | None = None,
          ) -> ScoreResult:
    """The score stage: score ``config.generations`` against the references in
    ``config.references`` and write the tables to ``out``. Python twin of ``tidekit score``.

    ``judge_runner_for`` builds each judge's request runner; by default the generation engine
    (``tidekit.generation.run_requests`` over ``tidekit.backends.load_backend``).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from tidekit._io import atomic_path, write_text
    from tidekit._manifest import RunRecorder
    from tidekit.metrics._bootstrap import aggregate_scores
    from tidekit.metrics._compare import compare_systems
    from tidekit.metrics._tables import (
        comparisons_view,
        overall_view,
        scenario_view,
        to_latex,
        to_markdown,
    )

    out = Path(out)
    generations, references = config.generations, config.references
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder for the scores")
    if not generations:
        raise DataError("no generations given; pass --generations DIR (repeat it for several)")
    if references is None:
        raise DataError("no references given; pass --references DATASET (the dataset the generations answer)")
    scorers = build_scorers(config.metrics, config.scorers)  # ConfigError on bad names before any work
    inputs = {f"generations[{i}]": str(g) for i, g in enumerate(generations)} | {"references": str(references)}
    with RunRecorder(out, command="score", config=config, seed=config.seed, inputs=inputs) as run:
        with run.step("load"):
            dataset = load_dataset(references)
            records: list[tuple[Path, GenerationRecord]] = []
            for g in generations:
                for path in find_generation_files(g):
                    records += [(path, r) for r in read_generations(path)]
            problems = Problems()
            _check_inputs(records, dataset, problems)
            problems.raise_if_errors("the scoring inputs")
        convs = {c.id: c for c in dataset.conversations}
        personas = dataset.persona_map()
        gens = [r for _, r in records]
        if config.include_reference and not any(r.system == REFERENCE_SYSTEM for r in gens):
            order = {cid: i for i, cid in enumerate(convs)}
            answered = sorted({r.conversation_id for r in gens}, key=order.__getitem__)
            gens += [GenerationRecord(conversation_id=cid, system=REFERENCE_SYSTEM, model=REFERENCE_SYSTEM,
                                      condition="reference", output=convs[cid].reference) for cid in answered]
        if not gens:
            raise DataError("the generations hold no records; nothing to score")

        from tidekit.scenarios import load_taxonomy

        risk = {s.id: s.risk_level for s in load_taxonomy().scenarios}
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
        ok = table.status == "scored"
        cands, refs = table.loc[ok, "response"].tolist(), table.loc[ok, "reference"].tolist()

        metric_columns: list[str] = []
        reference_free = set(REFERENCE_FREE)
        batch = ScoringBatch(contexts=table.loc[ok, "client_text"].tolist(), responses=cands, references=refs)
        for scorer in tqdm(scorers, desc="scorers", unit="scorer", disable=not progress):
            with run.step(scorer.name):
                values = scorer(batch)
            for col in scorer.columns:
                table[col] = float("nan")
                table.loc[ok, col] = values[col]
                metric_columns.append(col)
            if scorer.reference_free:
                reference_free.update(scorer.columns)
            run.models.extend(scorer.models())

        unknown_scenarios = sorted(set(table.scenario_id) - set(risk))
        if config.safety:
            from tidekit.metrics._safety import check_safety

            with run.step("safety"):
                checks = {}
                for idx in tqdm(table.index[ok], desc="safety", unit="reply", disable=not progress):
                    checks[idx] = check_safety(table.at[idx, "response"], table.at[idx, "client_text"],
                                               table.at[idx, "risk_level"])
                for col in SAFETY_COLUMNS:
                    attr = col.removeprefix("safety_")
                    table[col] = pd.array([getattr(checks[i], attr) if i in checks else None for i in table.index],
                                          dtype="boolean")
                table["safety_risk_source"] = [checks[i].risk_source if i in checks else None for i in table.index]
                table["safety_evidence"] = [json.dumps(checks[i].evidence) if i in checks else None
                                            for i in table.index]

        judge_columns: list[str] = []
        judge_warnings: list[str] = []
        files: list[str] = []
        if config.judges:
            from tidekit.metrics._judge import JudgeItem, aggregate_verdicts, run_judges

            with run.step("judge"):
                item_ids = table.conversation_id + "|" + table.system
                items = [JudgeItem(id=item_ids[i], client_text=table.at[i, "client_text"],
                                   response=table.at[i, "response"]) for i in table.index[ok]]
                judged = run_judges(config.judges, items, config.judge, cache=str(out / "judge_cache.sqlite"),
                                    runner_for=judge_runner_for, progress=progress)
            usable = judged.usable()
            means = aggregate_verdicts(usable, config.judge.score)
            if usable:  # every judge dropped: no judge columns, the warnings say why
                for key in CRITERIA:
                    table[f"judge_{key}"] = [means.get(i, {}).get(key, float("nan")) for i in item_ids]
                    judge_columns.append(f"judge_{key}")
                table["judge_n"] = [int(means.get(i, {}).get("n_judges", 0)) for i in item_ids]
            dropped = {s.judge for s in judged.summaries if s.dropped}
            verdicts = pd.DataFrame([{"conversation_id": v.id.split("|", 1)[0], "system": v.id.split("|", 1)[1],
                                      "judge": v.judge, **{f"judge_{k}": (v.scores or {}).get(k) for k in CRITERIA},
                                      **{f"judge_{k}_expected": (v.expected or {}).get(k) for k in CRITERIA},
                                      "parsed": v.scores is not None, "structured": v.structured,
                                      "dropped": v.judge in dropped, "attempts": v.attempts,
                                      "first_try_ok": v.first_try_ok, "error": v.error, "raw": v.raw}
                                     for v in judged.verdicts])
            with atomic_path(out / "judge_scores.parquet", ".parquet") as tmp:
                verdicts.to_parquet(tmp, index=False)
            judge_warnings = judged.warnings
            summary = pd.DataFrame([{"judge": s.judge, "criterion": k, "n": s.n, "n_readable": s.n_per_criterion[k],
                                     "parse_failure_rate": s.parse_failure_rate,
                                     "first_try_failure_rate": s.first_try_failure_rate,
                                     "structured_rate": s.structured_rate, "score_source": s.score_source,
                                     "constant": k in s.constant, "dropped": s.dropped}
                                    for s in judged.summaries for k in CRITERIA])
            write_text(out / "judge_summary.csv", summary.to_csv(index=False))
            files.append("judge_summary.csv")
            bias = pd.DataFrame([{"judge": b.judge, "criterion": k, "verbosity_spearman": b.verbosity_spearman[k],
                                  "verbosity_p": b.verbosity_p[k], "position_shift": b.position_shift[k],
                                  "position_changed": b.position_changed, "position_n": b.position_n}
                                 for b in judged.bias for k in b.verbosity_spearman])
            write_text(out / "judge_bias.csv", bias.to_csv(index=False))
            files += ["judge_scores.parquet", "judge_bias.csv"]
            run.models.extend(judged.identities)
            run.extra["judge"] = {"parse_failure_rate": judged.parse_failure_rate,
                                  "first_try_failure_rate": judged.first_try_failure_rate,
                                  "rubric_sha256_16": judged.rubric_digest,
                                  "score": config.judge.score,
                                  "summaries": [x.model_dump() for x in judged.summaries],
                                  "warnings": judge_warnings,
                                  "bias": [b.model_dump() for b in judged.bias]}

        with run.step("aggregate"):
            scored = table[ok]
            numeric = metric_columns + judge_columns + ([c for c in SAFETY_COLUMNS if c != "safety_client_risk"]
                                                        if config.safety else [])
            agg_input = scored.copy()
            for col in SAFETY_COLUMNS:
                if col in agg_input:
                    agg_input[col] = agg_input[col].astype("Float64")
            aggregates = aggregate_scores(agg_input, numeric, n_resamples=config.bootstrap.n_resamples,
                                          confidence=config.bootstrap.confidence, seed=config.seed)
            comparisons = compare_systems(scored, metric_columns + judge_columns, unit=config.comparison_unit,
                                          reference_free=reference_free)  # judge columns are in REFERENCE_FREE

        with run.step("write"):
            front = [c for c in table.columns if c not in ("response", "reference", "client_text")]
            write_scores(table[[*front, "response"]], out / "scores.parquet", metric_columns + judge_columns)
            write_text(out / "aggregates.csv", aggregates.to_csv(index=False))
            write_text(out / "comparisons.csv", comparisons.to_csv(index=False))
            overall = overall_view(aggregates, metric_columns + judge_columns, always_n=judge_columns)
            per_scenario = (scenario_view(aggregates, config.scenario_table_metric)
                            if config.scenario_table_metric in numeric else None)
            ci = f"{config.bootstrap.confidence:.0%}"
            md = to_markdown(overall, f"Overall: mean [{ci} CI, bootstrap clustered by persona]; n = replies "
                                      "scored, a cell's own n where it has fewer (always for judge columns)")
            if judge_warnings:
                md += "\n" + "\n".join(f"> **Warning:** {w}" for w in judge_warnings) + "\n"
            tex = to_latex(overall, f"Mean and {ci} CI (bootstrap clustered by persona) per system.", "tab:scores")
            if per_scenario is not None:
                md += "\n" + to_markdown(per_scenario, f"{config.scenario_table_metric} by scenario")
                tex += "\n" + to_latex(per_scenario, f"{config.scenario_table_metric} by scenario, mean and {ci} CI.",
                                       "tab:scores-by-scenario")
            write_text(out / "aggregates.md", md)
            write_text(out / "aggregates.tex", tex)
            comp = comparisons_view(comparisons)
            title = (f"Paired comparisons (Wilcoxon signed-rank by {config.comparison_unit}, rank-biserial r, "
                     "Holm-adjusted p within metric)")
            write_text(out / "comparisons.md", to_markdown(comp, title))
            write_text(out / "comparisons.tex", to_latex(comp, title, "tab:comparisons"))
            files = list(OUTPUTS) + files

        systems = sorted(table.system.unique())
        run.counts.update(rows=len(table), scored=int(ok.sum()), excluded=len(excluded),
                          conversations=int(table.conversation_id.nunique()), systems=len(systems))
        run.counts.update({f"scored:{s}": int(((table.system == s) & ok).sum()) for s in systems})
        run.extra.update(metrics=[s.record() for s in scorers],
                         exclusions=[{"conversation_id": c, "system": s, "reason": why} for c, s, why in
                                     excluded[["conversation_id", "system", "exclusion_reason"]].itertuples(index=False)],
                         unknown_scenarios=unknown_scenarios, outputs=files)
    return ScoreResult(out=str(out), rows=len(table), scored=int(ok.sum()), excluded=len(excluded),
                       systems=systems, metric_columns=metric_columns + judge_columns,
                       parse_failure_rate=dict(run.extra.get("judge", {}).get("parse_failure_rate", {})),
                       warnings=judge_warnings, files=files)
