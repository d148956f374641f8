"""The fine-tuning configuration: every knob of a LoRA / QLoRA supervised fine-tuning run.

Each field documents its meaning where it is declared; ``docs/finetune.md`` shows them in a
table. Defaults are chosen here (the TIDE paper publishes no fine-tuning hyper-parameters) for
small instruct models on one CPU or GPU: LoRA rank 16 on the attention projections, AdamW at
2e-4 with a cosine schedule and 3 % warm-up, one epoch, batch 8 (4 x 2 accumulation), 512
tokens, precision chosen by the hardware.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tidekit._config import StrictModel

__all__ = [
    "CheckpointSettings",
    "DataSettings",
    "EvalSettings",
    "FinetuneConfig",
    "IfExists",
    "LoraSettings",
    "Precision",
    "TrainSettings",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
IfExists = Literal["resume", "replace", "error"]


class DataSettings(StrictModel):
    """Which conversations train the model, and how they become chat examples."""

    path: str = Field(description="Dataset folder (TIDE layout, JSONL or Parquet records; see 'tidekit data').")
    train_split: Literal["train", "validation", "test"] = Field(
        default="train", description="Split whose conversations are trained on.")
    eval_split: Literal["train", "validation", "test"] | None = Field(
        default="validation", description="Split used for the validation loss; null: no evaluation.")
    split_seed: int = Field(
        default=0, description="Seed of the persona-level split made when the dataset has no splits yet "
                               "(the same split as 'tidekit data split --seed N' with default ratios).")
    targets: Literal["all_supporter_turns", "reference_only"] = Field(
        default="all_supporter_turns",
        description="Which supporter text carries the loss: every supporter turn (each with the dialogue before "
                    "it as prompt) plus the reference, or only the reference reply.")
    system_prompt: str | None = Field(
        default=None, description="System prompt of every example; null: tidekit.generation's default, the "
                                  "one 'tidekit generate' uses, so training and evaluation prompts match.")
    max_train_examples: int | None = Field(
        default=None, ge=1, description="Use only the first N training examples (by conversation id); null: all.")


class LoraSettings(StrictModel):
    """The low-rank adapter (PEFT LoraConfig)."""

    rank: int = Field(default=16, ge=1, le=1024, description="LoRA rank r: size of the low-rank update.")
    alpha: int = Field(default=32, gt=0, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input during training.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names (suffixes) that get adapters, e.g. q_proj, v_proj, gate_proj; 'all-linear' "
                    "targets every linear layer except the output head. Checked against the model before training.")
    last_layers: int | None = Field(
        default=None, ge=1,
        description="Adapt only the last N transformer blocks (PEFT layers_to_transform); null adapts every block. "
                    "The backward pass then stops below them: ~40% less training time with the last third of a model, "
                    "for an update that reaches only the upper layers; the frozen blocks below run once per distinct "
                    "example, their output reused in later epochs and evaluations.")


class TrainSettings(StrictModel):
    """The optimisation (TRL SFTConfig / transformers TrainingArguments)."""

    learning_rate: float = Field(default=2e-4, gt=0, description="Peak AdamW learning rate.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        default="cosine", description="Learning-rate schedule after warm-up.")
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay on the adapter weights.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the training examples (ignored if max_steps).")
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps to run; overrides epochs.")
    batch_size: int = Field(default=4, ge=1, description="Examples (or packed rows) per forward pass.")
    grad_accum: int = Field(default=2, ge=1, description="Forward passes per optimizer step; effective batch = "
                                                         "batch_size x grad_accum.")
    max_length: int = Field(default=512, ge=16, description="Most tokens per example (prompt + reply); longer "
                                                           "replies are cut, a prompt that does not fit is an error.")
    packing: bool = Field(default=False, description="Pack several examples into each max_length row "
                                                     "(best-fit, no cross-attention between them).")
    precision: Precision = Field(
        default="auto", description="auto: bf16 where the CPU or GPU supports it, else fp32; fp16 needs CUDA.")
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in the backward pass: "
                                                                    "less activation memory, one extra forward pass of compute.")
    quantization: Literal["none", "4bit"] = Field(
        default="none", description="'4bit' = QLoRA: the frozen base model in 4-bit NF4 (CUDA + bitsandbytes only).")
    logging_steps: int = Field(default=10, ge=1, description="Log the training loss every N steps (metrics.jsonl).")
    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        default="none",
        description="Experiment tracker the trainer also logs to (metrics.jsonl is always written): 'tensorboard' "
                    "writes event files to OUT/tensorboard (pip install 'tidekit[tracking]'); 'wandb' logs a "
                    "Weights & Biases run under OUT/wandb, in project $WANDB_PROJECT (default 'tidekit'); with "
                    "no network set WANDB_MODE=offline and upload later with 'wandb sync'.")
    run_name: str | None = Field(default=None, description="The tracker's run name; null: the name of OUT.")


class EvalSettings(StrictModel):
    """Validation loss during training."""

    steps: int | None = Field(default=50, ge=1, description="Evaluate every N steps (and at the end); null: only "
                                                            "at the end.")
    at_start: bool = Field(default=True, description="Also evaluate before the first step (the zero-shot loss).")
    max_examples: int | None = Field(default=200, ge=1, description="Evaluate on the first N validation examples "
                                                                    "(by id); null: all.")
    batch_size: int = Field(default=8, ge=1, description="Examples per evaluation forward pass.")


class CheckpointSettings(StrictModel):
    """Checkpoints that --resume continues from (adapter, optimizer, scheduler, RNG and step)."""

    steps: int = Field(default=100, ge=1, description="Save a checkpoint every N optimizer steps.")
    keep: int = Field(default=2, ge=1, description="Keep only the newest N checkpoints.")


class FinetuneConfig(StrictModel):
    """Everything ``tidekit finetune`` needs; loadable from YAML with key=value overrides."""

    model: str = Field(default="smollm2-135m", description="Base model: registry alias or local model folder.")
    data: DataSettings = Field(description="Training data.")
    out: str = Field(description="Output folder: adapter, tokenizer, model card, metrics.jsonl, manifest.json, "
                                 "checkpoints/.")
    seed: int = Field(default=0, description="Seed of data order, LoRA initialisation and dropout.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="The adapter.")
    train: TrainSettings = Field(default_factory=TrainSettings, description="The optimisation.")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="Validation loss.")
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings, description="Checkpoints.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: CUDA when available.")
    progress: bool = Field(default=True, description="Show a progress bar.")
    if_exists: IfExists = Field(
        default="error", description="What OUT may already hold: 'error' refuses an unfinished run's checkpoints "
                                     "or another configuration's adapter; 'resume' continues an unfinished run "
                                     "with the same settings; 'replace' discards it and starts over (only after "
                                     "the preflight checks pass). A finished run with the same settings is "
                                     "never redone, except with 'replace'.")

    @model_validator(mode="before")
    @classmethod
    def _moved_tensorboard(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tensorboard" in data:
            raise ValueError("tensorboard: moved to train.report_to (none | tensorboard | wandb); "
                             "replace 'tensorboard: true' by 'train: {report_to: tensorboard}' or drop the line")
        return data

    @model_validator(mode="after")
    def _eval_split_differs(self) -> FinetuneConfig:
        if self.data.eval_split is not None and self.data.eval_split == self.data.train_split:
            raise ValueError("data.eval_split must differ from data.train_split (or be null): a validation loss "
                             "on the training examples measures memorisation, not generalisation")
        return self
