"""``tidekit run``: one config runs the whole study, resumably.

Stages, in order (each writes a subfolder of the run folder and a ``manifest.json``)::

    dataset -> split -> finetune:<model> -> generate:<model>:<condition> -> score
            -> rating -> analysis -> report

A stage is skipped when its folder holds a marker with the same key (a hash of its settings and
its inputs' keys; see ``_graph.py``). Editing one section reruns that stage and those downstream
only. Stages resume inside themselves too: model calls are cached by the generation engine and
fine-tuning continues from its newest checkpoint, so a killed run loses at most the work in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit._config import load_config
from tidekit._layout import RunLayout
from tidekit.reporting._config import ReportConfig
from tidekit.study._config import StudyConfig, SystemSection
from tidekit.study._graph import Stage, StageContext, StageOutcome, plan_stages, run_stages

__all__ = ["StudyPlan", "StudyResult", "build_stages", "load_study", "plan_study", "run_study"]


class StudyResult(BaseModel):
    """What a run did."""

    out: str
    stages: list[dict[str, Any]] = Field(description="Per stage: name, status (ran/skipped), key, wall_s, facts.")
    report: str | None = Field(default=None, description="Path of report.html, when the report stage exists.")


class StudyPlan(BaseModel):
    """What a run would do (``--dry-run``), with the scale of the work."""

    out: str
    personas: int
    conversations: int
    eval_conversations: int
    systems: list[str]
    models: int
    conditions: list[str]
    model_calls: dict[str, int] = Field(description="Per stage: model calls when no turn is regenerated.")
    model_calls_max: dict[str, int] = Field(description="Per stage: model calls if every regeneration is used.")
    generated_tokens_max: int = Field(description="Upper bound of generated tokens over all calls.")
    seeds: dict[str, int] = Field(description="The effective seed of each seeded stage (from the master seed "
                                              "unless the config sets it).")
    stages: list[dict[str, Any]] = Field(description="Per stage: name, status (planned/skipped), its effective "
                                                     "seed where it has one, the engine of a generation stage, "
                                                     "and its work estimate.")
    rated_subset: dict[str, Any] | None = Field(
        default=None, description="The rated conversations and the prediction-powered analysis of them: how "
                                  "many of the evaluated conversations are rated and how they are sampled, "
                                  "the predictor, and the rated conversations a target CI width needs with "
                                  "and without it ('summary': one line saying all that).")


def load_study(path: str | Path, overrides: Sequence[str] = (), *, out: str | Path | None = None) -> StudyConfig:
    """Read and validate a study YAML with ``key=value`` overrides (every problem at once);
    ``out`` replaces the run folder it names."""
    return load_config(StudyConfig, path, overrides, flags={"out": out})


def _fingerprint(path: Path) -> str:
    """Cheap content key of a dataset folder: names, sizes and modification times of its files."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        st = f.stat()
        digest.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _backend(system: SystemSection, adapter: str | None) -> Any:
    from pydantic import ValidationError

    from tidekit.backends._protocol import BACKENDS, BackendConfig
    from tidekit.errors import ConfigError

    base = system.backend or BackendConfig()
    # validated again, not model_copy'd: an adapter on a kind that cannot load one is an error
    data = {**base.model_dump(), "model": system.model}
    if adapter is not None or "adapter" in type(base).model_fields:
        data["adapter"] = adapter
    try:
        return BackendConfig.model_validate(data)
    except ValidationError:
        able = ", ".join(sorted(k for k, spec in BACKENDS.items() if "adapter" in spec.options.model_fields))
        raise ConfigError(f"system {system.model}: the {base.kind} backend cannot load the fine-tuned adapter "
                          f"{adapter}; run fine-tuned systems on a kind with an 'adapter' option ({able})") from None


def _scorer_key(path: str) -> str | None:
    """What identifies a trained scorer folder's numbers (its training run key), None when absent."""
    from tidekit.metrics._learned import META_FILE, read_meta

    return str(read_meta(path).cv.get("run_key")) if (Path(path) / META_FILE).is_file() else None


def build_stages(cfg: StudyConfig, progress: bool = True) -> list[Stage]:
    """The study's stages, each a closure over its settings and the run folder's layout."""
    layout = RunLayout(cfg.out)
    seeds = cfg.seeds()
    stages: list[Stage] = []

    # -- dataset ---------------------------------------------------------------------------
    def dataset_stage(context: StageContext) -> dict[str, Any]:
        from tidekit.data import load_dataset, save_dataset

        if cfg.dataset.source == "build":
            from tidekit.builder import build_dataset

            assert cfg.dataset.build is not None
            build_cfg = cfg.dataset.build
            if "jsonl" not in build_cfg.formats:
                build_cfg = build_cfg.model_copy(update={"formats": [*build_cfg.formats, "jsonl"]})
            result = build_dataset(build_cfg, out=layout.dataset_build, progress=progress)
            dataset = load_dataset(result.formats["jsonl"])
        else:
            dataset = load_dataset(cfg.dataset.location())
        save_dataset(dataset, layout.dataset_data, "jsonl")
        return {"personas": len(dataset.personas), "conversations": len(dataset.conversations)}

    dataset_key: dict[str, Any] = {"dataset": cfg.dataset.model_dump(mode="json", exclude={"split"})}
    if cfg.dataset.source == "path" and cfg.dataset.path and Path(cfg.dataset.path).is_dir():
        dataset_key["fingerprint"] = _fingerprint(Path(cfg.dataset.path))
    stages.append(Stage("dataset", layout.dataset, dataset_key, dataset_stage,
                        describe=f"dataset ({cfg.dataset.source})", seed=seeds.get("dataset"),
                        estimate=({"personas_seed": seeds["personas"]} if "personas" in seeds else {})))

    # -- split -----------------------------------------------------------------------------
    def split_stage(context: StageContext) -> dict[str, Any]:
        from tidekit._manifest import RunRecorder
        from tidekit.data import load_dataset, save_split, split_dataset

        s = cfg.dataset.split
        with RunRecorder(layout.split, command="run split", config=s, seed=s.seed,
                         inputs={"data": str(layout.dataset_data)}) as rec:
            result = split_dataset(load_dataset(layout.dataset_data), seed=s.seed, ratios=s.ratios,
                                   stratify_by=s.stratify_by)
            save_split(result, layout.split, "jsonl")
            rec.counts.update(result.conversations)
        return dict(result.conversations)

    stages.append(Stage("split", layout.split, {"split": cfg.dataset.split.model_dump(mode="json")},
                        split_stage, deps=("dataset",), seed=seeds["split"]))

    # -- fine-tuning, one per model with condition fine_tuned -------------------------------
    adapters: dict[str, Path] = {}
    for system in cfg.systems:
        if "fine_tuned" not in system.conditions:
            continue
        adapters[system.model] = layout.finetune(system.model)
        stages.append(_finetune_stage(cfg, system, layout, progress))

    # -- generation, one per (model, condition) ---------------------------------------------
    gen_dirs: list[Path] = []
    for system in cfg.systems:
        for condition in system.conditions:
            gen_dirs.append(layout.generations(system.model, condition))
            adapter = adapters.get(system.model) if condition == "fine_tuned" else None
            stages.append(_generate_stage(cfg, system, condition, layout, adapter, progress))

    # -- scoring -----------------------------------------------------------------------------
    gen_names = [s.name for s in stages if s.name.startswith("generate:")]
    score_cfg = cfg.scoring.model_copy(update={"generations": [str(d) for d in gen_dirs],
                                               "references": str(layout.split)})

    def score_stage(context: StageContext) -> dict[str, Any]:
        from tidekit.metrics import score

        result = score(score_cfg, out=layout.scores, progress=progress)
        return {"rows": result.rows, "systems": len(result.systems)}

    scorer_keys = [_scorer_key(spec.path) for spec in cfg.scoring.scorers]  # a retrained scorer reruns scoring
    stages.append(Stage("score", layout.scores, {"scoring": score_cfg.model_dump(mode="json"),
                                                 **({"scorers": scorer_keys} if scorer_keys else {})}, score_stage,
                        deps=("split", *gen_names), seed=score_cfg.seed))

    # -- the ceiling analysis, when two or more models have both conditions ------------------
    # (a slope over model size needs two sizes; with one model the report says so)
    both = [s.model for s in cfg.systems if {"zero_shot", "fine_tuned"} <= set(s.conditions)]
    if len(both) >= 2:
        def ceiling_stage(context: StageContext) -> dict[str, Any]:
            from tidekit.analysis import ceiling_analysis

            ceiling_analysis(layout.scores_file).write(layout.ceiling, source=str(layout.scores_file))
            return {"ceiling_models": len(both)}

        stages.append(Stage("ceiling", layout.ceiling, {"models": both}, ceiling_stage, deps=("score",)))

    # -- the judges against human labels (when the config names a labels file) ---------------
    if cfg.judge_validation is not None and (cfg.scoring.judges or cfg.scoring.scorers):
        validation = cfg.judge_validation

        def validation_stage(context: StageContext) -> dict[str, Any]:
            from tidekit.metrics import validate_judge

            result = validate_judge(validation.labels, validation.human, layout.judge_validation, cfg.scoring,
                                    progress=progress)
            return {"items": result.n_items, "parse_failure_rate": result.parse_failure_rate}

        stages.append(Stage("judge_validation", layout.judge_validation,
                            {"judge_validation": validation.model_dump(mode="json"),
                             "labels_sha256": (hashlib.sha256(Path(validation.labels).read_bytes()).hexdigest()
                                               if Path(validation.labels).is_file() else None),
                             "judges": [j.model_dump(mode="json") for j in cfg.scoring.judges],
                             "judge": cfg.scoring.judge.model_dump(mode="json"),
                             **({"scorers": scorer_keys} if scorer_keys else {})}, validation_stage))

    # -- ratings -----------------------------------------------------------------------------
    rating = cfg.rating
    if rating.enabled:
        def rating_stage(context: StageContext) -> dict[str, Any]:
            from tidekit.rating import create_study, export_ratings, simulate_ratings

            db = layout.ratings_db
            if rating.simulate and db.exists():
                # simulated studies are rebuilt from scratch so a rerun gives the same data;
                # a study with real raters is never deleted
                for f in layout.ratings.glob("ratings.db*"):
                    f.unlink()
            layout.ratings.mkdir(parents=True, exist_ok=True)
            summary = create_study(rating.study, layout.split, [str(d) for d in gen_dirs], db=db)
            facts: dict[str, Any] = {"items": getattr(summary, "items", None)}
            if rating.simulate:
                sim = simulate_ratings(db, raters=rating.simulated_raters, model=rating.rater_model,
                                       seed=rating.study.seed)
                facts.update(simulated_raters=sim.raters, ratings=sim.ratings)
            exported = export_ratings(db, layout.ratings / "ratings.csv")
            facts["rows"] = exported.rows
            return facts

        stages.append(Stage("rating", layout.ratings, {"rating": rating.model_dump(mode="json")}, rating_stage,
                            deps=("split", *gen_names), seed=rating.study.seed))

        # -- analysis ------------------------------------------------------------------------
        def analysis_stage(context: StageContext) -> dict[str, Any]:
            from tidekit.analysis import analyze

            analyze(cfg.analysis, out=layout.analysis, ratings=layout.ratings / "ratings.csv",
                    scores=layout.scores)
            return {}

        stages.append(Stage("analysis", layout.analysis, {"analysis": cfg.analysis.model_dump(mode="json")},
                            analysis_stage, deps=("rating", "score"), seed=cfg.analysis.seed))

    # -- report ------------------------------------------------------------------------------
    report_cfg = ReportConfig(run=str(layout.root), title=cfg.report.title or cfg.name, analyze=False)

    def report_stage(context: StageContext) -> dict[str, Any]:
        from tidekit.reporting import report

        result = report(report_cfg, out=layout.report)
        return {"html": str(result.html), "figures": len(result.figures), "missing": len(result.missing)}

    last = [s.name for s in stages if s.name in ("analysis", "score", "ceiling", "judge_validation")]
    stages.append(Stage("report", layout.report, {"report": cfg.report.model_dump(mode="json"), "name": cfg.name},
                        report_stage, deps=tuple(last)))
    return stages


def _finetune_stage(cfg: StudyConfig, system: SystemSection, layout: RunLayout, progress: bool) -> Stage:
    from tidekit.finetuning._config import DataSettings, FinetuneConfig

    ft = cfg.finetune
    out = layout.finetune(system.model)
    train = ft.train
    if train.report_to == "none" and cfg.tracking.report_to != "none":
        train = train.model_copy(update={"report_to": cfg.tracking.report_to})
    ft_cfg = FinetuneConfig(
        model=system.model, out=str(out), seed=ft.seed, lora=ft.lora, train=train, eval=ft.eval,
        checkpoints=ft.checkpoints, progress=progress,
        data=DataSettings(path=str(layout.split), train_split="train", eval_split="validation",
                          max_train_examples=ft.max_train_examples),
    )

    def run(context: StageContext) -> dict[str, Any]:
        from tidekit.finetuning import finetune

        # The stage runs because its key is new or an earlier attempt did not finish. An attempt
        # with this key that started and stopped left checkpoints to continue from; anything
        # else in the folder was made for other settings or inputs and is replaced, but only
        # after the preflight checks pass (finetune deletes nothing before them).
        result = finetune(ft_cfg, out=out, if_exists="resume" if context.resuming else "replace")
        return {k: v for k, v in result.model_dump().items() if isinstance(v, int | float | str)}

    # the stage key leaves out what does not change the adapter (progress bars, tracker logging)
    config = ft_cfg.model_dump(mode="json", exclude={"progress": True, "if_exists": True,
                                                     "train": {"report_to", "run_name"}})
    return Stage(f"finetune:{system.model}", out, config, run, deps=("split",), seed=ft.seed,
                 estimate={"optimizer_steps": ft.train.max_steps or 0})


def _generate_stage(cfg: StudyConfig, system: SystemSection, condition: str, layout: RunLayout,
                    adapter: Path | None, progress: bool) -> Stage:
    from tidekit.generation import GenerateConfig

    gen = cfg.generation
    out = layout.generations(system.model, condition)
    gen_cfg = GenerateConfig(data=str(layout.split), split=gen.split, limit=gen.limit,
                             backend=_backend(system, str(adapter) if adapter else None), params=gen.params,
                             name=system.model if not Path(system.model).exists() else None,
                             executor=cfg.executor)

    def run(context: StageContext) -> dict[str, Any]:
        from tidekit.generation import generate

        result = generate(gen_cfg, out=out, progress=progress)
        return {"records": result.records, "errors": result.errors, "cached": result.cached}

    deps: tuple[str, ...] = ("split",) + ((f"finetune:{system.model}",) if adapter else ())
    # where the model runs (Ray or not) does not change the outputs: not part of the stage key
    return Stage(f"generate:{system.model}:{condition}", out, gen_cfg.model_dump(mode="json", exclude={"executor"}),
                 run, deps=deps, seed=gen.params.seed, estimate={"engine": gen_cfg.backend.kind})


def plan_study(cfg: StudyConfig, *, from_stage: str | None = None, only: str | None = None) -> StudyPlan:
    """Count the work a run would do, without loading a model or writing anything."""
    stages = build_stages(cfg, progress=False)
    ratios = cfg.dataset.split.ratios
    split_index = {"train": 0, "validation": 1, "test": 2}[cfg.generation.split]
    calls: dict[str, int] = {}
    calls_max: dict[str, int] = {}
    tokens = 0
    if cfg.dataset.source == "build":
        from tidekit.builder import plan_build

        assert cfg.dataset.build is not None
        b = cfg.dataset.build
        bp = plan_build(b.model_copy(update={"out": RunLayout(cfg.out).dataset_build}))
        personas, conversations = len(bp.personas), bp.conversations
        turns = conversations * b.exchanges * 2
        calls["dataset"] = turns
        calls_max["dataset"] = turns * (1 + b.regeneration.max_regenerations)
        tokens += conversations * b.exchanges * (b.client.max_new_tokens + b.supporter.max_new_tokens) \
            * (1 + b.regeneration.max_regenerations)
    else:
        from tidekit.data import load_dataset

        ds = load_dataset(cfg.dataset.location())
        personas, conversations = len(ds.personas), len(ds.conversations)
    eval_convs = round(conversations * ratios[split_index])
    if cfg.generation.limit:
        eval_convs = min(eval_convs, cfg.generation.limit)
    systems = [f"{s.model}:{c}" for s in cfg.systems for c in s.conditions]
    calls["generate"] = eval_convs * len(systems)
    tokens += calls["generate"] * cfg.generation.params.max_new_tokens
    judged = eval_convs * (len(systems) + (1 if cfg.scoring.include_reference else 0))
    calls["judge"] = judged * len(cfg.scoring.judges)
    outcomes = plan_stages(stages, from_stage, only)
    return StudyPlan(
        out=str(cfg.out), personas=personas, conversations=conversations, eval_conversations=eval_convs,
        systems=systems, models=len(cfg.systems), conditions=sorted({c for s in cfg.systems for c in s.conditions}),
        model_calls=calls, model_calls_max={**calls, **calls_max}, generated_tokens_max=tokens,
        seeds=cfg.seeds(),
        stages=[{"name": o.name, "status": o.status, **o.facts,
                 **_generation_estimate(cfg, o.name, eval_convs)} for o in outcomes],
        rated_subset=_rated_subset(cfg, eval_convs),
    )


def _rated_subset(cfg: StudyConfig, eval_convs: int) -> dict[str, Any] | None:
    """The rated conversations, how they are sampled, the PPI predictor and the design help (the plan)."""
    if not cfg.rating.enabled:
        return None
    from tidekit.analysis._power import rated_for_width

    asked = cfg.rating.study.conversations
    rated = min(asked, eval_convs) if asked is not None else eval_convs
    sampling = (f"a seeded simple random sample (rating.study.conversations: {asked}, seed "
                f"{cfg.rating.study.seed})" if rated < eval_convs else "every evaluated conversation")
    out: dict[str, Any] = {"rated": rated, "of": eval_convs, "sampling": sampling}
    ppi = cfg.analysis.ppi
    if ppi is None:
        out["summary"] = (f"rated subset: {rated:,} of {eval_convs:,} evaluated conversations ({sampling}); "
                          "prediction-powered estimates off (analysis.ppi: null)")
        return out
    predictor = ", ".join(ppi.predictors())
    judged = bool(cfg.scoring.judges)
    made = all(not p.startswith("judge_") or judged for p in ppi.predictors())
    sd = ppi.pilot_sd or 1.2
    rho = ppi.pilot_correlation if ppi.pilot_correlation is not None else 0.6
    human, with_ppi = rated_for_width(ppi.target_width, sd, rho, eval_convs, cfg.analysis.alpha)
    out.update(predictor=ppi.predictors(), target_width=ppi.target_width, assumed_sd=sd, assumed_correlation=rho,
               n_human_only=human, n_ppi=with_ppi)

    def count(n: int | None) -> str:
        return f"{n:,}" if n is not None else f"more than {eval_convs:,}"

    gain = (f"; a system mean to a {ppi.target_width:g}-point 95% CI needs {count(human)} rated conversations "
            f"human-only, {count(with_ppi)} with the predictor (assumed pilot sd {sd:g}, correlation {rho:g}: set "
            "analysis.ppi.pilot_sd / pilot_correlation from a pilot)")
    note = "" if made else " (not produced here: scoring.judges is empty; set analysis.ppi.predictor)"
    scope = ("; every evaluated conversation is rated, so PPI adds nothing (n = N)" if rated >= eval_convs else "")
    out["summary"] = (f"rated subset: {rated:,} of {eval_convs:,} evaluated conversations ({sampling}); "
                      f"PPI predictor: {predictor}{note}{scope}{gain}")
    return out


def _generation_estimate(cfg: StudyConfig, stage: str, conversations: int) -> dict[str, Any]:
    """A generation stage's hours from a measured rate of its engine (see _rates.py), else why not."""
    if not stage.startswith("generate:"):
        return {}
    from tidekit.study._rates import estimate_generation

    model = stage.split(":")[1]
    system = next(s for s in cfg.systems if s.model == model)
    return estimate_generation(_backend(system, None), model,
                               conversations * cfg.generation.params.max_new_tokens)


def run_study(
    config: StudyConfig,
    *,
    out: str | Path | None = None,
    from_stage: str | None = None,
    only: str | None = None,
    progress: bool = True,
    on_event: Callable[[str, Stage, StageOutcome | None], None] | None = None,
) -> StudyResult:
    """The whole study: run (or resume) every stage into ``out`` (default: the config's
    ``out``); finished stages with unchanged settings are skipped."""
    cfg = config if out is None else config.model_copy(update={"out": Path(out)})
    stages = build_stages(cfg, progress=progress)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    from tidekit._io import write_text

    write_text(RunLayout(cfg.out).config, _yaml(cfg))
    tracker = None
    if cfg.tracking.report_to != "none":
        from tidekit._tracking import StageTracker

        tracker = StageTracker(cfg.tracking.report_to, Path(cfg.out), cfg.name, cfg.model_dump(mode="json"))

    def event(kind: str, stage: Stage, outcome: StageOutcome | None) -> None:
        if tracker is not None and kind == "done" and outcome is not None:
            tracker.log(stage.name, outcome.facts, outcome.wall_s)
        if on_event is not None:
            on_event(kind, stage, outcome)

    try:
        outcomes = run_stages(stages, from_stage, only, on_event=event)
    finally:
        if tracker is not None:
            tracker.close()
    html = RunLayout(cfg.out).report / "report.html"
    return StudyResult(out=str(cfg.out),
                       stages=[{"name": o.name, "status": o.status, "key": o.key, "wall_s": o.wall_s,
                                "facts": o.facts} for o in outcomes],
                       report=str(html) if html.is_file() else None)


def _yaml(cfg: StudyConfig) -> str:
    import yaml

    return "# The resolved configuration of this run (written by tidekit run).\n" + yaml.safe_dump(
        cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

