"""The study's generation stage, declared here: each system answers the evaluation split, one job
per (model, condition); a fine-tuned condition loads the adapter its fine-tuning job wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidekit._stage import StageFacts, StageJob, StageSpec, StudyScale, StudyView
from tidekit.backends import BACKENDS, BackendConfig
from tidekit.errors import ConfigError
from tidekit.generation._dataset import GenerateConfig, generate
from tidekit.generation._rates import estimate_generation

__all__ = ["GENERATE_STAGE", "GenerateFacts", "system_backend"]


class GenerateFacts(StageFacts):
    records: int
    errors: int
    cached: int


def system_backend(system: Any, adapter: str | None) -> BackendConfig:
    """A study system's backend with its model (and the fine-tuned adapter) filled in; ConfigError
    when the system's backend kind cannot load an adapter."""
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


def _generate_jobs(view: StudyView) -> list[StageJob]:
    cfg, layout = view.config, view.layout
    gen = cfg.generation
    adapters = {Path(job.out): job for job in view.jobs("finetune")}
    jobs = []
    for system in cfg.systems:
        for condition in system.conditions:
            adapter = layout.finetune(system.model) if condition == "fine_tuned" else None
            if adapter is not None and adapter not in adapters:
                adapter = None
            gen_cfg = GenerateConfig(data=str(layout.split), split=gen.split, limit=gen.limit,
                                     backend=system_backend(system, str(adapter) if adapter else None),
                                     params=gen.params, name=system.model if not Path(system.model).exists() else None,
                                     executor=cfg.executor)
            deps = ("split",) + ((f"finetune:{system.model}",) if adapter else ())
            # where the model runs (Ray or not) does not change the outputs: not part of the stage key
            jobs.append(StageJob(gen_cfg, layout.generations(system.model, condition),
                                 gen_cfg.model_dump(mode="json", exclude={"executor"}), suffix=f"{system.model}:{condition}",
                                 deps=deps, seed=gen.params.seed, kwargs={"progress": view.progress},
                                 estimate={"engine": gen_cfg.backend.kind},
                                 plan=_hours(system_backend(system, None), system.model, gen.params.max_new_tokens)))
    return jobs


def _hours(backend: BackendConfig, model: str, max_new_tokens: int) -> Any:
    """The dry run's hours for one job, from a measured rate of its engine (see _rates.py), else why not."""
    return lambda scale: estimate_generation(backend, model, scale.eval_conversations * max_new_tokens)


def _generate_scale(view: StudyView, scale: StudyScale) -> None:
    gen = view.config.generation
    ratios = view.config.dataset.split.ratios
    evaluated = round(scale.conversations * ratios[{"train": 0, "validation": 1, "test": 2}[gen.split]])
    scale.eval_conversations = min(evaluated, gen.limit) if gen.limit else evaluated
    scale.model_calls["generate"] = scale.eval_conversations * len(view.jobs("generate"))
    scale.generated_tokens_max += scale.model_calls["generate"] * gen.params.max_new_tokens


GENERATE_STAGE = StageSpec(name="generate", jobs=_generate_jobs, verb=generate, scale=_generate_scale,
                           facts=lambda r: GenerateFacts.model_validate(r, from_attributes=True),
                           doc="each system answers the evaluation split, zero-shot and fine-tuned")
