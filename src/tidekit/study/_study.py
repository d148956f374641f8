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
from tidekit.study._config import StudyConfig, SystemSection
from tidekit.study._graph import Stage, StageOutcome, plan_stages, run_stages

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
    stages: list[dict[str, Any]] = Field(description="Per stage: name, status (planned/skipped).")


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Read and validate a study YAML with ``key=value`` overrides (every problem at once)."""
    return load_config(StudyConfig, path, overrides)


def _fingerprint(path: Path) -> str:
    """Cheap content key of a dataset folder: names, sizes and modification times of its files."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        st = f.stat()
        digest.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _model_dir(model: str) -> str:
    """Folder name for a model: its alias, or the last part of a local path."""
    return Path(model).name if Path(model).exists() else model


def _system_dir(model: str, condition: str) -> str:
    return f"{_model_dir(model)}__{condition}"


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


def build_stages(cfg: StudyConfig, progress: bool = True) -> list[Stage]:
    """The study's stages, each a closure over its settings and the run folder."""
    run = Path(cfg.out)
    ds_dir, split_dir = run / "dataset", run / "split"
    stages: list[Stage] = []

    # -- dataset ---------------------------------------------------------------------------
    def dataset_stage() -> dict[str, Any]:
        from tidekit.data import load_dataset, save_dataset

        data_dir = ds_dir / "data"
        if cfg.dataset.source == "build":
            from tidekit.builder import build_dataset

            assert cfg.dataset.build is not None
            build_cfg = cfg.dataset.build.model_copy(update={"out": ds_dir / "build"})
            if "jsonl" not in build_cfg.formats:
                build_cfg = build_cfg.model_copy(update={"formats": [*build_cfg.formats, "jsonl"]})
            result = build_dataset(build_cfg, progress=progress)
            dataset = load_dataset(result.formats["jsonl"])
        else:
            dataset = load_dataset(cfg.dataset.location())
        save_dataset(dataset, data_dir, "jsonl")
        return {"personas": len(dataset.personas), "conversations": len(dataset.conversations)}

    dataset_key: dict[str, Any] = {"dataset": cfg.dataset.model_dump(mode="json", exclude={"split"})}
    if cfg.dataset.source == "path" and cfg.dataset.path and Path(cfg.dataset.path).is_dir():
        dataset_key["fingerprint"] = _fingerprint(Path(cfg.dataset.path))
    stages.append(Stage("dataset", ds_dir, dataset_key, dataset_stage,
                        describe=f"dataset ({cfg.dataset.source})"))

    # -- split -----------------------------------------------------------------------------
    def split_stage() -> dict[str, Any]:
        from tidekit._manifest import RunRecorder
        from tidekit.data import load_dataset, save_split, split_dataset

        s = cfg.dataset.split
        with RunRecorder(split_dir, command="run split", config=s, seed=s.seed,
                         inputs={"data": str(ds_dir / "data")}) as rec:
            result = split_dataset(load_dataset(ds_dir / "data"), seed=s.seed, ratios=s.ratios,
                                   stratify_by=s.stratify_by)
            save_split(result, split_dir, "jsonl")
            rec.counts.update(result.conversations)
        return dict(result.conversations)

    stages.append(Stage("split", split_dir, {"split": cfg.dataset.split.model_dump(mode="json")},
                        split_stage, deps=("dataset",)))

    # -- fine-tuning, one per model with condition fine_tuned -------------------------------
    adapters: dict[str, Path] = {}
    for system in cfg.systems:
        if "fine_tuned" not in system.conditions:
            continue
        ft_dir = run / "finetune" / _model_dir(system.model)
        adapters[system.model] = ft_dir
        stages.append(_finetune_stage(cfg, system, split_dir, ft_dir, progress))

    # -- generation, one per (model, condition) ---------------------------------------------
    gen_dirs: list[Path] = []
    for system in cfg.systems:
        for condition in system.conditions:
            out = run / "generations" / _system_dir(system.model, condition)
            gen_dirs.append(out)
            adapter = adapters.get(system.model) if condition == "fine_tuned" else None
            stages.append(_generate_stage(cfg, system, condition, split_dir, out, adapter, progress))

    # -- scoring (+ ceiling analysis when a model has both conditions) -----------------------
    scores_dir = run / "scores"
    gen_names = [s.name for s in stages if s.name.startswith("generate:")]

    def score_stage() -> dict[str, Any]:
        from tidekit.metrics import score

        result = score([str(d) for d in gen_dirs], split_dir, scores_dir, config=cfg.scoring, progress=progress)
        facts: dict[str, Any] = {"rows": result.rows, "systems": len(result.systems)}
        both = [s.model for s in cfg.systems if {"zero_shot", "fine_tuned"} <= set(s.conditions)]
        if len(both) >= 2:  # a slope over model size needs two sizes; one model: the report says so
            from tidekit.finetuning import ceiling_analysis

            scores_file = scores_dir / "scores.parquet"
            ceiling_analysis(scores_file).write(scores_dir / "ceiling", source=str(scores_file))
            facts["ceiling_models"] = len(both)
        return facts

    stages.append(Stage("score", scores_dir, {"scoring": cfg.scoring.model_dump(mode="json")}, score_stage,
                        deps=("split", *gen_names)))

    # -- the judges against human labels (when the config names a labels file) ---------------
    if cfg.judge_validation is not None and cfg.scoring.judges:
        validation = cfg.judge_validation
        validation_dir = run / "judge_validation"

        def validation_stage() -> dict[str, Any]:
            from tidekit.metrics import validate_judge

            result = validate_judge(validation.labels, validation.human, validation_dir, cfg.scoring,
                                    progress=progress)
            return {"items": result.n_items, "parse_failure_rate": result.parse_failure_rate}

        stages.append(Stage("judge_validation", validation_dir,
                            {"judge_validation": validation.model_dump(mode="json"),
                             "labels_sha256": (hashlib.sha256(Path(validation.labels).read_bytes()).hexdigest()
                                               if Path(validation.labels).is_file() else None),
                             "judges": [j.model_dump(mode="json") for j in cfg.scoring.judges],
                             "judge": cfg.scoring.judge.model_dump(mode="json")}, validation_stage))

    # -- ratings -----------------------------------------------------------------------------
    ratings_dir = run / "ratings"
    rating = cfg.rating
    if rating.enabled:
        def rating_stage() -> dict[str, Any]:
            from tidekit.rating import create_study, export_ratings, simulate_ratings

            db = ratings_dir / "ratings.db"
            if rating.simulate and db.exists():
                # simulated studies are rebuilt from scratch so a rerun gives the same data;
                # a study with real raters is never deleted
                for f in ratings_dir.glob("ratings.db*"):
                    f.unlink()
            ratings_dir.mkdir(parents=True, exist_ok=True)
            summary = create_study(rating.study, split_dir, [str(d) for d in gen_dirs], db=db)
            facts: dict[str, Any] = {"items": getattr(summary, "items", None)}
            if rating.simulate:
                sim = simulate_ratings(db, raters=rating.simulated_raters, model=rating.rater_model,
                                       seed=rating.study.seed)
                facts.update(simulated_raters=sim.raters, ratings=sim.ratings)
            exported = export_ratings(db, ratings_dir / "ratings.csv")
            facts["rows"] = exported.rows
            return facts

        stages.append(Stage("rating", ratings_dir, {"rating": rating.model_dump(mode="json")}, rating_stage,
                            deps=("split", *gen_names)))

    # -- analysis ----------------------------------------------------------------------------
    analysis_dir = run / "analysis"
    if rating.enabled:
        def analysis_stage() -> dict[str, Any]:
            from tidekit.analysis import analyze

            analyze(ratings_dir / "ratings.csv", out=analysis_dir, scores=scores_dir, config=cfg.analysis)
            return {}

        stages.append(Stage("analysis", analysis_dir, {"analysis": cfg.analysis.model_dump(mode="json")},
                            analysis_stage, deps=("rating", "score")))

    # -- report ------------------------------------------------------------------------------
    report_dir = run / "report"

    def report_stage() -> dict[str, Any]:
        from tidekit.reporting import report

        result = report(run, out=report_dir, title=cfg.report.title or cfg.name, analyze=False)
        return {"html": str(result.html), "figures": len(result.figures), "missing": len(result.missing)}

    last = [s.name for s in stages if s.name in ("analysis", "score", "judge_validation")]
    stages.append(Stage("report", report_dir, {"report": cfg.report.model_dump(mode="json"), "name": cfg.name},
                        report_stage, deps=tuple(last)))
    return stages


def _finetune_stage(cfg: StudyConfig, system: SystemSection, split_dir: Path, out: Path,
                    progress: bool) -> Stage:
    from tidekit.finetuning._config import DataSettings, FinetuneConfig

    ft = cfg.finetune
    train = ft.train
    if train.report_to == "none" and cfg.tracking.report_to != "none":
        train = train.model_copy(update={"report_to": cfg.tracking.report_to})
    ft_cfg = FinetuneConfig(
        model=system.model, out=str(out), seed=ft.seed, lora=ft.lora, train=train, eval=ft.eval,
        checkpoints=ft.checkpoints, progress=progress,
        data=DataSettings(path=str(split_dir), train_split="train", eval_split="validation",
                          max_train_examples=ft.max_train_examples),
    )

    def run() -> dict[str, Any]:
        from tidekit.errors import ConfigError
        from tidekit.finetuning import finetune
        from tidekit.finetuning._train import last_checkpoint

        # a killed run left checkpoints: continue it; an adapter from older settings is replaced
        # (the stage key changed, so this stage is meant to produce a new one)
        try:
            result = finetune(ft_cfg, resume=last_checkpoint(out) is not None)
        except ConfigError:
            result = finetune(ft_cfg, force=True)
        return {k: v for k, v in result.model_dump().items() if isinstance(v, int | float | str)}

    # the stage key leaves out what does not change the adapter (progress bars, tracker logging)
    config = ft_cfg.model_dump(mode="json", exclude={"progress": True, "train": {"report_to", "run_name"}})
    return Stage(f"finetune:{system.model}", out, config, run, deps=("split",),
                 estimate={"optimizer_steps": ft.train.max_steps or 0})


def _generate_stage(cfg: StudyConfig, system: SystemSection, condition: str, split_dir: Path, out: Path,
                    adapter: Path | None, progress: bool) -> Stage:
    from tidekit.generation import GenerateConfig

    gen = cfg.generation
    gen_cfg = GenerateConfig(data=str(split_dir), split=gen.split, limit=gen.limit,
                             backend=_backend(system, str(adapter) if adapter else None), params=gen.params,
                             name=system.model if not Path(system.model).exists() else None,
                             executor=cfg.executor)

    def run() -> dict[str, Any]:
        from tidekit.generation import generate_dataset

        result = generate_dataset(gen_cfg, out, progress=progress)
        return {"records": result.records, "errors": result.errors, "cached": result.cached}

    deps: tuple[str, ...] = ("split",) + ((f"finetune:{system.model}",) if adapter else ())
    # where the model runs (Ray or not) does not change the outputs: not part of the stage key
    return Stage(f"generate:{system.model}:{condition}", out, gen_cfg.model_dump(mode="json", exclude={"executor"}),
                 run, deps=deps)


def plan_study(cfg: StudyConfig, from_stage: str | None = None, only: str | None = None) -> StudyPlan:
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
        bp = plan_build(b.model_copy(update={"out": Path(cfg.out) / "dataset" / "build"}))
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
        stages=[{"name": o.name, "status": o.status} for o in outcomes],
    )


def run_study(
    cfg: StudyConfig,
    from_stage: str | None = None,
    only: str | None = None,
    progress: bool = True,
    on_event: Callable[[str, Stage, StageOutcome | None], None] | None = None,
) -> StudyResult:
    """Run (or resume) the study; finished stages with unchanged settings are skipped."""
    stages = build_stages(cfg, progress=progress)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    from tidekit._io import write_text

    write_text(Path(cfg.out) / "study.yaml", _yaml(cfg))
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
    html = Path(cfg.out) / "report" / "report.html"
    return StudyResult(out=str(cfg.out),
                       stages=[{"name": o.name, "status": o.status, "key": o.key, "wall_s": o.wall_s,
                                "facts": o.facts} for o in outcomes],
                       report=str(html) if html.is_file() else None)


def _yaml(cfg: StudyConfig) -> str:
    import yaml

    return "# The resolved configuration of this run (written by tidekit run).\n" + yaml.safe_dump(
        cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

