"""The study's fine-tuning stage, declared here: one LoRA run per system evaluated fine-tuned."""

from __future__ import annotations

from tidekit._stage import StageFacts, StageJob, StageSpec, StudyView
from tidekit.finetuning._config import DataSettings, FinetuneConfig
from tidekit.finetuning._train import FinetuneResult, finetune

__all__ = ["FINETUNE_STAGE", "FinetuneFacts"]


class FinetuneFacts(StageFacts):
    """The figures of a fine-tuning run (FinetuneResult's scalars)."""

    out: str
    base_model: str
    steps: int
    train_examples: int
    eval_examples: int
    first_train_loss: float | None = None
    last_train_loss: float | None = None
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    tokens_per_s: float | None = None
    train_s: float | None = None
    precision: str
    device: str
    resumed_from_step: int | None = None
    skipped: bool = False


def _facts(result: FinetuneResult) -> FinetuneFacts:
    return FinetuneFacts.model_validate(result, from_attributes=True)


def _finetune_jobs(view: StudyView) -> list[StageJob]:
    cfg, layout = view.config, view.layout
    ft = cfg.finetune
    train = ft.train
    if train.report_to == "none" and cfg.tracking.report_to != "none":
        train = train.model_copy(update={"report_to": cfg.tracking.report_to})
    jobs = []
    for system in cfg.systems:
        if "fine_tuned" not in system.conditions:
            continue
        out = layout.finetune(system.model)
        ft_cfg = FinetuneConfig(
            model=system.model, out=str(out), seed=ft.seed, lora=ft.lora, train=train, eval=ft.eval,
            checkpoints=ft.checkpoints, progress=view.progress,
            data=DataSettings(path=str(layout.split), train_split="train", eval_split="validation",
                              max_train_examples=ft.max_train_examples))
        # the key leaves out what does not change the adapter (progress bars, tracker logging)
        key = ft_cfg.model_dump(mode="json", exclude={"progress": True, "if_exists": True,
                                                      "train": {"report_to", "run_name"}})
        jobs.append(StageJob(ft_cfg, out, key, suffix=system.model, seed=ft.seed,
                             estimate={"optimizer_steps": ft.train.max_steps or 0}))
    return jobs


# resumable: the stage runs because its key is new or an earlier attempt did not finish. An attempt
# with this key that started and stopped left checkpoints to continue from (if_exists="resume");
# anything else in the folder was made for other settings or inputs and is replaced, but only after
# the preflight checks pass (finetune deletes nothing before them).
FINETUNE_STAGE = StageSpec(name="finetune", jobs=_finetune_jobs, verb=finetune, facts=_facts, deps=("split",),
                           resumable=True, doc="LoRA fine-tuning of each system evaluated fine-tuned")
