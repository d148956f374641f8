"""``tidekit run``: one config runs the whole study, resumably.

The stages are the specs of ``tidekit.study.STAGES`` (``_stages.py``), each declared in its
stage's package (``tidekit._stage.StageSpec``), in order (each writes a subfolder of the run
folder and a ``manifest.json``)::

    dataset -> split -> finetune:<model> -> generate:<model>:<condition> -> score
            -> ceiling -> judge_validation -> rating -> analysis -> report

The runner asks each spec for its jobs (its config from the study config, its folder in the
``RunLayout``, its key, dependencies and seed), calls its verb and records the typed facts of
its result; the dry run adds up what each spec counts. It knows no stage by name.

A stage is skipped when its folder holds a marker with the same key (a hash of its settings and
its inputs' keys; see ``_graph.py``). Editing one section reruns that stage and those downstream
only. Stages resume inside themselves too: model calls are cached by the generation engine and
fine-tuning continues from its newest checkpoint, so a killed run loses at most the work in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from tidekit._config import load_config
from tidekit._io import write_text
from tidekit._layout import RunLayout
from tidekit._stage import SparseModel, StageFacts, StageJob, StageSpec, StudyScale, StudyView
from tidekit.analysis import RatedSubset
from tidekit.study._config import StudyConfig
from tidekit.study._graph import Stage, StageContext, StageOutcome, plan_stages, run_stages
from tidekit.study._stages import STAGES

__all__ = ["PlannedStage", "StageRecord", "StudyPlan", "StudyResult", "build_stages", "load_study", "plan_study",
           "run_study"]


class StageRecord(BaseModel):
    """One stage of a run: what happened to it and the typed facts its result carried."""

    name: str
    status: str = Field(description="ran or skipped.")
    key: str = Field(description="The stage key (a hash of its settings and its inputs' keys).")
    wall_s: float = Field(description="Seconds the stage ran (0 when skipped).")
    facts: SerializeAsAny[StageFacts] = Field(description="The stage's figures (counts, paths), by name.")


class StudyResult(BaseModel):
    """What a run did."""

    out: str
    stages: list[StageRecord] = Field(description="Per stage: name, status (ran/skipped), key, wall_s, facts.")
    report: str | None = Field(default=None, description="Path of report.html, when the report stage exists.")


class PlannedStage(SparseModel):
    """One stage of the plan; fields that do not apply to the stage are left out."""

    model_config = ConfigDict(extra="allow")  # a stage's own estimate (optimizer_steps, personas_seed)

    name: str
    status: str = Field(description="planned or skipped.")
    engine: str | None = Field(default=None, description="The backend kind of a generation stage.")
    seed: int | None = Field(default=None, description="The stage's effective seed.")
    est_hours: float | None = Field(default=None, description="Hours from a measured rate of its engine.")
    rate_tok_s: float | None = Field(default=None, description="That measured rate.")
    rate_source: str | None = Field(default=None, description="Where the rate was measured, or why there is none.")


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
    stages: list[PlannedStage] = Field(description="Per stage: name, status (planned/skipped), its effective "
                                                   "seed where it has one, the engine of a generation stage, "
                                                   "and its work estimate.")
    rated_subset: RatedSubset | None = Field(
        default=None, description="The rated conversations and the prediction-powered analysis of them: how "
                                  "many of the evaluated conversations are rated and how they are sampled, "
                                  "the predictor, and the rated conversations a target CI width needs with "
                                  "and without it ('summary': one line saying all that).")


def load_study(path: str | Path, overrides: Sequence[str] = (), *, out: str | Path | None = None) -> StudyConfig:
    """Read and validate a study YAML with ``key=value`` overrides (every problem at once);
    ``out`` replaces the run folder it names."""
    return load_config(StudyConfig, path, overrides, flags={"out": out})


def _jobs(cfg: StudyConfig, progress: bool, specs: Sequence[StageSpec]) -> tuple[StudyView, list[Stage]]:
    """Every spec's jobs in study order, as graph stages that call the spec's verb."""
    view = StudyView(cfg, RunLayout(cfg.out), progress)
    stages: list[Stage] = []
    for spec in specs:
        unknown = [d for d in spec.deps if d not in view.built]
        if unknown:  # a spec list bug, never a user error
            raise ValueError(f"stage {spec.name!r} depends on {', '.join(unknown)}, not a stage before it")
        named = [(f"{spec.name}:{job.suffix}" if job.suffix else spec.name, job) for job in spec.jobs(view)]
        stages += [_stage(view, spec, name, job) for name, job in named]
        view.built[spec.name] = named
    return view, stages


def _stage(view: StudyView, spec: StageSpec, name: str, job: StageJob) -> Stage:
    def run(context: StageContext) -> StageFacts:
        kwargs = dict(job.kwargs)
        if spec.resumable:
            kwargs["if_exists"] = "resume" if context.resuming else "replace"
        return spec.facts(spec.verb(job.config, out=job.out, **kwargs))

    deps = job.deps if job.deps is not None else tuple(view.names(*spec.deps))
    return Stage(name, job.out, job.key, run, deps=deps, describe=job.describe, estimate=dict(job.estimate),
                 seed=job.seed)


def build_stages(cfg: StudyConfig, progress: bool = True, specs: Sequence[StageSpec] = STAGES) -> list[Stage]:
    """The study's stages: every job of every spec (``tidekit.study.STAGES``), in order."""
    return _jobs(cfg, progress, specs)[1]


def plan_study(cfg: StudyConfig, *, from_stage: str | None = None, only: str | None = None,
               specs: Sequence[StageSpec] = STAGES) -> StudyPlan:
    """Count the work a run would do, without loading a model or writing anything."""
    view, stages = _jobs(cfg, False, specs)
    scale = StudyScale()
    for spec in specs:
        if spec.scale is not None:
            spec.scale(view, scale)
    plans = {name: job.plan for named in view.built.values() for name, job in named}
    planned = []
    for o in plan_stages(stages, from_stage, only):
        extra = plans[o.name]
        planned.append(PlannedStage(name=o.name, status=o.status, **o.facts.model_dump(),
                                    **(extra(scale) if extra is not None else {})))
    return StudyPlan(
        out=str(cfg.out), personas=scale.personas, conversations=scale.conversations,
        eval_conversations=scale.eval_conversations, systems=[f"{s.model}:{c}" for s in cfg.systems for c in s.conditions],
        models=len(cfg.systems), conditions=sorted({c for s in cfg.systems for c in s.conditions}),
        model_calls=scale.model_calls, model_calls_max={**scale.model_calls, **scale.model_calls_max},
        generated_tokens_max=scale.generated_tokens_max, seeds=cfg.seeds(), stages=planned,
        rated_subset=scale.rated_subset)


def run_study(
    config: StudyConfig,
    *,
    out: str | Path | None = None,
    from_stage: str | None = None,
    only: str | None = None,
    progress: bool = True,
    on_event: Callable[[str, Stage, StageOutcome | None], None] | None = None,
    specs: Sequence[StageSpec] = STAGES,
) -> StudyResult:
    """The whole study: run (or resume) every stage into ``out`` (default: the config's
    ``out``); finished stages with unchanged settings are skipped."""
    cfg = config if out is None else config.model_copy(update={"out": Path(out)})
    stages = build_stages(cfg, progress=progress, specs=specs)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    write_text(RunLayout(cfg.out).config, _yaml(cfg))
    tracker = None
    if cfg.tracking.report_to != "none":
        from tidekit._tracking import StageTracker

        tracker = StageTracker(cfg.tracking.report_to, Path(cfg.out), cfg.name, cfg.model_dump(mode="json"))

    def event(kind: str, stage: Stage, outcome: StageOutcome | None) -> None:
        if tracker is not None and kind == "done" and outcome is not None:
            tracker.log(stage.name, outcome.facts.model_dump(), outcome.wall_s)
        if on_event is not None:
            on_event(kind, stage, outcome)

    try:
        outcomes = run_stages(stages, from_stage, only, on_event=event)
    finally:
        if tracker is not None:
            tracker.close()
    html = RunLayout(cfg.out).report / "report.html"
    return StudyResult(out=str(cfg.out),
                       stages=[StageRecord(name=o.name, status=o.status, key=o.key, wall_s=o.wall_s, facts=o.facts)
                               for o in outcomes],
                       report=str(html) if html.is_file() else None)


def _yaml(cfg: StudyConfig) -> str:
    import yaml

    return "# The resolved configuration of this run (written by tidekit run).\n" + yaml.safe_dump(
        cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

