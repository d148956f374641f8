"""LoRA / QLoRA supervised fine-tuning on TIDE-layout data, adapter merging, and the ceiling
analysis (fine-tuning gain against model size).

Typical use::

    from tidekit.finetuning import finetune, merge_adapter
    result = finetune("configs/finetune-smollm2.yaml", ["train.max_steps=100"])
    print(result.first_train_loss, result.last_train_loss, result.eval_loss_after)
    merge_adapter(result.out, "runs/merged")       # full weights for transformers / vLLM

    from tidekit.finetuning import ceiling_analysis
    ceiling = ceiling_analysis("runs/study/scores")  # zero_shot vs fine_tuned rows of scores.parquet
    ceiling.write("runs/study/ceiling")              # slopes.csv, gains.csv, ceiling.png/.svg
"""

from tidekit.finetuning._ceiling import CeilingResult, ceiling_analysis, plot_ceiling
from tidekit.finetuning._config import (
    CheckpointSettings,
    DataSettings,
    EvalSettings,
    FinetuneConfig,
    LoraSettings,
    TrainSettings,
)
from tidekit.finetuning._examples import (
    ExampleStats,
    build_examples,
    check_lengths,
    default_system_prompt,
)
from tidekit.finetuning._merge import MergeResult, merge_adapter
from tidekit.finetuning._metrics import METRICS_FILE, read_metrics
from tidekit.finetuning._preflight import Hardware, check_target_modules, resolve_hardware
from tidekit.finetuning._train import CHECKPOINTS_DIR, FinetuneResult, finetune, last_checkpoint

__all__ = [
    "CHECKPOINTS_DIR",
    "METRICS_FILE",
    "CeilingResult",
    "CheckpointSettings",
    "DataSettings",
    "EvalSettings",
    "ExampleStats",
    "FinetuneConfig",
    "FinetuneResult",
    "Hardware",
    "LoraSettings",
    "MergeResult",
    "TrainSettings",
    "build_examples",
    "ceiling_analysis",
    "check_lengths",
    "check_target_modules",
    "default_system_prompt",
    "finetune",
    "last_checkpoint",
    "merge_adapter",
    "plot_ceiling",
    "read_metrics",
    "resolve_hardware",
]
