"""LoRA / QLoRA supervised fine-tuning on TIDE-layout data and adapter merging.

The ceiling analysis of the resulting scores (fine-tuning gain against model size) is
statistics on scores, so it lives in :mod:`tidekit.analysis` (``ceiling_analysis``).

Typical use::

    from tidekit._config import load_config
    from tidekit.finetuning import FinetuneConfig, finetune, merge_adapter
    config = load_config(FinetuneConfig, "configs/finetune-smollm2.yaml", ["train.max_steps=100"])
    result = finetune(config, if_exists="resume")
    print(result.first_train_loss, result.last_train_loss, result.eval_loss_after)
    merge_adapter(result.out, "runs/merged")       # full weights for transformers / vLLM
"""

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
from tidekit.finetuning._sft import write_sft
from tidekit.finetuning._stage import FINETUNE_STAGE  # noqa: F401  (the study's stage specs)
from tidekit.finetuning._train import CHECKPOINTS_DIR, FinetuneResult, finetune, last_checkpoint

__all__ = [
    "CHECKPOINTS_DIR",
    "METRICS_FILE",
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
    "check_lengths",
    "check_target_modules",
    "default_system_prompt",
    "finetune",
    "last_checkpoint",
    "merge_adapter",
    "read_metrics",
    "resolve_hardware",
    "write_sft",
]
