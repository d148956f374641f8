"""The LoRA / QLoRA supervised fine-tuning recipe behind ``tidekit finetune CONFIG``.

Reads top to bottom: check the output folder and the hardware, load the data and turn it into
prompt-completion examples, check their lengths, load the base model and check the LoRA
targets, train with TRL's SFTTrainer (loss on supporter replies only), save the adapter, the
tokenizer, the model card, ``metrics.jsonl`` and ``manifest.json`` together in OUT.

OUT layout::

    adapter_config.json, adapter_model.safetensors   a standard PEFT adapter folder
    tokenizer files, chat_template.jinja               the base model's tokenizer
    README.md                                          the model card
    metrics.jsonl                                      training / validation loss, tokens/s
    tensorboard/ or wandb/                             with train.report_to (the trainer's own logging)
    manifest.json                                      config, versions, model identity, counts
    checkpoints/checkpoint-N/                          for --resume (optimizer, scheduler, RNG)

Re-running a finished run with the same configuration does nothing (idempotent); ``--resume``
continues an interrupted run from its newest checkpoint with the same step count, optimizer,
learning-rate schedule, data order and RNG state.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from tidekit._io import write_json, write_text
from tidekit._manifest import MANIFEST_NAME, ModelIdentity, RunRecorder, read_manifest
from tidekit._tracking import check_tracker, tracker_env
from tidekit._version import __version__
from tidekit.backends import MODELS, resolve_model_path
from tidekit.data import load_dataset, split_dataset
from tidekit.errors import BackendError, ConfigError
from tidekit.finetuning._config import FinetuneConfig, IfExists
from tidekit.finetuning._metrics import METRICS_FILE, read_metrics

__all__ = ["CHECKPOINTS_DIR", "FinetuneResult", "finetune", "last_checkpoint"]

CHECKPOINTS_DIR = "checkpoints"
_RUN_CONFIG = "config.json"  # in checkpoints/: the configuration the checkpoints belong to
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# settings that may change between an interrupted run and its --resume without changing the result
_RESUME_FREE = {"progress", "if_exists", "tensorboard", "eval", "checkpoints", "train.logging_steps", "train.report_to",
                "train.run_name"}


class FinetuneResult(BaseModel):
    """What a fine-tuning run produced."""

    out: str = Field(description="Output folder; also the adapter folder (tidekit generate --adapter OUT).")
    base_model: str = Field(description="Base model alias or folder.")
    steps: int = Field(description="Optimizer steps completed.")
    train_examples: int = Field(description="Training examples (supporter replies).")
    eval_examples: int = Field(description="Validation examples.")
    first_train_loss: float | None = Field(description="First logged training loss.")
    last_train_loss: float | None = Field(description="Last logged training loss.")
    eval_loss_before: float | None = Field(description="Validation loss before training (eval.at_start).")
    eval_loss_after: float | None = Field(description="Validation loss at the end.")
    tokens_per_s: float | None = Field(description="Real input tokens per second inside optimizer steps.")
    train_s: float | None = Field(description="Seconds inside optimizer steps in this session.")
    precision: str = Field(description="Compute precision used.")
    device: str = Field(description="cpu or cuda.")
    resumed_from_step: int | None = Field(default=None, description="Checkpoint step this session resumed from.")
    skipped: bool = Field(default=False, description="True when OUT already held this finished run (nothing ran).")

    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    @property
    def model(self) -> Any:
        """The trained PeftModel in memory (only with ``finetune(..., keep_model=True)``)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer


def last_checkpoint(out: str | Path) -> Path | None:
    """The newest ``OUT/checkpoints/checkpoint-N`` folder, or None."""
    folder = Path(out) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")
             and p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flat(old), _flat(new)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k)
            and not any(k == free or k.startswith(free + ".") for free in _RESUME_FREE)]


def _discard(out: Path) -> None:
    """Remove what an earlier run left in OUT (adapter, card, metrics, manifest, checkpoints)."""
    for name in (*_ADAPTER_FILES, "README.md", METRICS_FILE, MANIFEST_NAME):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / CHECKPOINTS_DIR, ignore_errors=True)


def _prepare_out(out: Path, config: FinetuneConfig, if_exists: IfExists) -> Path | bool | None:
    """Decide what to do with what OUT holds, deleting nothing: True = already done (skip), a
    Path = resume from that checkpoint, None = start fresh (after discarding, with 'replace')."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file; give a folder")
    wanted = config.model_dump(mode="json")
    manifest = out / MANIFEST_NAME
    if if_exists != "replace" and manifest.is_file() and all((out / f).is_file() for f in _ADAPTER_FILES):
        record = read_manifest(manifest)
        if record.command == "finetune" and record.status == "finished":
            diff = _differences(record.config, wanted)
            if not diff:
                return True
            raise ConfigError(f"{out} already holds a finished adapter trained with another configuration "
                              f"(differs in: {', '.join(diff)}). Choose another out, or replace it "
                              "(--force, if_exists=replace).")
    checkpoint = last_checkpoint(out)
    if checkpoint is None or if_exists == "replace":
        return None
    if if_exists == "error":
        raise ConfigError(f"{out} holds checkpoints of an unfinished run (newest: {checkpoint.name}). Continue it "
                          "(--resume, if_exists=resume), or start over (--force, if_exists=replace).")
    saved = out / CHECKPOINTS_DIR / _RUN_CONFIG
    if saved.is_file():
        diff = _differences(json.loads(saved.read_text(encoding="utf-8")), wanted)
        if diff:
            raise ConfigError(f"resume: the configuration differs from the interrupted run's in: {', '.join(diff)}. "
                              "Resume with the same settings (only eval, checkpoints, logging and progress may "
                              "change), or start over (--force, if_exists=replace).")
    return checkpoint


def _summary(out: Path) -> dict[str, Any]:
    rows = read_metrics(out)
    train = [r for r in rows if r.get("kind") == "train" and "loss" in r]
    evals = [r for r in rows if r.get("kind") == "eval" and "eval_loss" in r]
    return {"first_train_loss": train[0]["loss"] if train else None,
            "last_train_loss": train[-1]["loss"] if train else None,
            "eval_loss_before": next((r["eval_loss"] for r in evals if r.get("step") == 0), None),
            "eval_loss_after": evals[-1]["eval_loss"] if evals and evals[-1].get("step", 0) > 0 else None}


def _existing_result(out: Path) -> FinetuneResult:
    record = read_manifest(out / MANIFEST_NAME)
    facts = record.extra.get("result", {})
    return FinetuneResult.model_validate({**facts, "skipped": True})


def finetune(
    config: FinetuneConfig,
    *,
    out: str | Path | None = None,
    if_exists: IfExists | None = None,
    callbacks: Sequence[Any] = (),
    keep_model: bool = False,
) -> FinetuneResult:
    """The finetune stage: LoRA-fine-tune a chat model on a dataset's supporter replies and save
    the adapter to ``out`` (default: the config's ``out``). Python twin of ``tidekit finetune``.

    ``if_exists`` (default: the config's): what to do with what OUT already holds. ``error``:
    refuse an unfinished run's checkpoints or another configuration's adapter; ``resume``:
    continue an unfinished run with the same settings from its newest checkpoint; ``replace``:
    discard it and start over. A finished run with the same settings is never redone, except
    with ``replace``. Nothing is deleted before the preflight checks (hardware, tracker, chat
    template, LoRA targets) pass, so a run that cannot start here keeps what OUT holds.
    ``callbacks``: extra transformers ``TrainerCallback`` objects. ``keep_model``: keep the trained
    model on the result (``result.model``) instead of freeing it.
    """
    cfg = config
    if out is not None and str(out) != cfg.out:
        cfg = cfg.model_copy(update={"out": str(out)})
    mode: IfExists = if_exists or cfg.if_exists
    out = Path(cfg.out)
    state = _prepare_out(out, cfg, mode)
    if state is True:
        return _existing_result(out)
    checkpoint = state if isinstance(state, Path) else None

    # -- preflight: hardware, optional packages, the model's chat template and LoRA targets,
    # before anything in OUT is touched
    from tidekit.finetuning._preflight import check_target_modules_of, lora_layers, resolve_hardware

    hw = resolve_hardware(cfg.device, cfg.train.precision, cfg.train.quantization)
    check_tracker(cfg.train.report_to)
    _load_tokenizer(cfg.model)
    check_target_modules_of(cfg.model, cfg.lora.target_modules)
    layers = lora_layers(cfg.model, cfg.lora.last_layers)
    if mode == "replace":
        _discard(out)

    with RunRecorder(out, command="finetune", config=cfg, seed=cfg.seed, inputs={"data": cfg.data.path}) as run:
        run.extra["hardware"] = hw.model_dump()
        # -- 1. data -> prompt-completion examples
        with run.step("load data"):
            train_convs, eval_convs = _load_conversations(cfg, run)
        with run.step("tokenizer and examples"):
            model_path, tokenizer, system_role = _load_tokenizer(cfg.model)
            train_examples, eval_examples, system_prompt = _examples(cfg, train_convs, eval_convs, system_role)
            from tidekit.finetuning._examples import check_lengths

            train_stats = check_lengths(train_examples, tokenizer, cfg.train.max_length, "training")
            eval_stats = (check_lengths(eval_examples, tokenizer, cfg.train.max_length, "validation")
                          if eval_examples else None)
        run.extra.update(system_prompt=system_prompt, train_lengths=train_stats.model_dump(),
                         eval_lengths=eval_stats.model_dump() if eval_stats else None)
        run.counts.update(train_conversations=len(train_convs), train_examples=len(train_examples),
                          eval_examples=len(eval_examples), truncated=train_stats.truncated)

        # -- 2. base model and LoRA targets
        with run.step("load model"):
            model = _load_model(model_path, hw)
            from tidekit.backends import weights_fingerprint
            from tidekit.finetuning._preflight import check_target_modules

            check_target_modules(model, cfg.lora.target_modules)
        run.models.append(ModelIdentity(alias=cfg.model, source=str(model_path),
                                        sha256=weights_fingerprint(model_path), role="base"))

        # the tracker (train.report_to) sees the trainer from set-up to the final validation loss
        with tracker_env(cfg.train.report_to, out):
            # -- 3. trainer
            with run.step("set up"):
                trainer, logger = _trainer(cfg, hw, model, tokenizer, train_examples, eval_examples, out,
                                           callbacks, resuming=checkpoint is not None, layers=layers)
                (out / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
                write_json(out / CHECKPOINTS_DIR / _RUN_CONFIG, cfg.model_dump(mode="json"))

            # -- 4. train (resumable), then a final validation loss
            with _compact_lm_head(hw.device), _frozen_cache(cfg, trainer, layers) as frozen:
                with run.step("train"):
                    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
                if eval_examples and not _evaluated_at(trainer, trainer.state.global_step):
                    with run.step("evaluate"):
                        trainer.evaluate()
                if frozen is not None:
                    run.extra["frozen_blocks_cache"] = {"blocks": len(frozen.blocks), "served": frozen.served,
                                                        "computed": frozen.computed,
                                                        "stored_mb": round(frozen.stored_bytes / 2**20, 1)}

        # -- 5. save adapter + tokenizer + card together
        with run.step("save"):
            trainer.model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            result = _result(cfg, out, trainer, logger, hw, len(train_examples), len(eval_examples), checkpoint)
            from tidekit.finetuning._card import render_card

            facts = {**result.model_dump(), "tidekit_version": __version__, "train_conversations": len(train_convs),
                     "truncated": train_stats.truncated, "epochs": round(float(trainer.state.epoch or 0), 3)}
            write_text(out / "README.md", render_card(kind="adapter", base_model=cfg.model, base_source=str(model_path),
                                                      config=cfg.model_dump(mode="json"), facts=facts))
        run.counts.update(steps=result.steps, tokens_seen=int(trainer.state.num_input_tokens_seen or 0))
        run.extra["result"] = result.model_dump()
    if keep_model:
        # without the mixed-precision forward wrapper accelerate adds, so the model computes in
        # the dtype of its weights, like a reloaded adapter
        model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        result._model, result._tokenizer = model.eval(), tokenizer
    return result


def _load_conversations(cfg: FinetuneConfig, run: RunRecorder) -> tuple[list[Any], list[Any]]:
    from tidekit.finetuning._examples import require_targets

    dataset = load_dataset(cfg.data.path)
    if all(c.split is None for c in dataset.conversations):
        # unsplit data: the persona-level split 'tidekit data split --seed N' would make, recorded
        split = split_dataset(dataset, seed=cfg.data.split_seed)
        dataset = split.dataset
        run.extra["auto_split"] = {"seed": split.seed, "ratios": split.ratios, "personas": split.personas}
    train = sorted(dataset.by_split(cfg.data.train_split), key=lambda c: c.id)
    require_targets(train, cfg.data.train_split, cfg.data.path)
    evals = sorted(dataset.by_split(cfg.data.eval_split), key=lambda c: c.id) if cfg.data.eval_split else []
    return train, evals


def _load_tokenizer(model: str) -> tuple[Path, Any, bool]:
    from transformers import AutoTokenizer

    path = resolve_model_path(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise BackendError(f"could not load the tokenizer of {model} from {path}: {exc}. Give a model folder with "
                           "tokenizer files, or a registry alias ('tidekit models').") from None
    if tokenizer.chat_template is None:
        raise ConfigError(f"model: {model} has no chat template; fine-tuning needs an instruct (chat) model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    spec = MODELS.get(model)
    if spec is not None:
        system_role = spec.system_role
    else:
        # the rule generation applies to models outside the registry
        from tidekit.backends._hf import _template_has_system

        system_role = _template_has_system(tokenizer)
    return path, tokenizer, system_role


def _examples(cfg: FinetuneConfig, train_convs: list[Any], eval_convs: list[Any],
              system_role: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    from tidekit.finetuning._examples import build_examples, default_system_prompt

    prompt = cfg.data.system_prompt if cfg.data.system_prompt is not None else default_system_prompt()
    train = build_examples(train_convs, prompt, system_role, cfg.data.targets)
    if cfg.data.max_train_examples is not None:
        train = train[: cfg.data.max_train_examples]
    evals = build_examples(eval_convs, prompt, system_role, cfg.data.targets)
    if cfg.eval.max_examples is not None:
        evals = evals[: cfg.eval.max_examples]
    return train, evals, prompt


def _load_model(path: Path, hw: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": getattr(torch, hw.base_dtype)}
    if hw.quantization == "4bit":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if hw.precision == "bf16" else torch.float16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
        kwargs["device_map"] = {"": 0}
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        raise BackendError(f"could not load the model from {path}: {exc}") from None


def _trainer(cfg: FinetuneConfig, hw: Any, model: Any, tokenizer: Any, train: list[dict[str, Any]],
             evals: list[dict[str, Any]], out: Path, callbacks: Sequence[Any], resuming: bool,
             layers: list[int] | None = None) -> tuple[Any, Any]:
    """The SFTTrainer; ``layers``: the blocks that get adapters (preflight's ``lora_layers``), None all."""
    from datasets import Dataset as HFDataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tidekit.finetuning._metrics import make_metrics_logger

    def to_hf(rows: list[dict[str, Any]]) -> Any:
        return HFDataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])

    t, e = cfg.train, cfg.eval
    evaluate = bool(evals)
    args = SFTConfig(
        output_dir=str(out / CHECKPOINTS_DIR),
        seed=cfg.seed,
        data_seed=cfg.seed,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        per_device_eval_batch_size=e.batch_size,
        max_length=t.max_length,
        packing=t.packing,
        packing_strategy="bfd",
        eval_packing=False,  # the validation loss stays comparable between packed and unpacked runs
        completion_only_loss=True,  # loss on the supporter reply only (prompt tokens are masked)
        bf16=hw.precision == "bf16",
        fp16=hw.precision == "fp16",
        use_cpu=hw.device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if evaluate and e.steps else "no",
        eval_steps=e.steps if evaluate else None,
        eval_on_start=evaluate and e.at_start and not resuming,  # the interrupted run logged it
        save_strategy="steps",
        save_steps=cfg.checkpoints.steps,
        save_total_limit=cfg.checkpoints.keep,
        report_to="none" if t.report_to == "none" else [t.report_to],  # metrics.jsonl is written either way
        run_name=t.run_name or out.resolve().name,
        include_num_input_tokens_seen="all" if t.packing else "non_padding",  # padding-free packed rows: all real
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, layers_to_transform=layers, bias="none",
                      task_type="CAUSAL_LM")
    logger = make_metrics_logger(out / METRICS_FILE)
    extra: list[Any] = [logger]
    trainer = SFTTrainer(model=model, args=args, train_dataset=to_hf(train),
                         eval_dataset=to_hf(evals) if evals else None, processing_class=tokenizer,
                         peft_config=lora, callbacks=[*extra, *callbacks])
    return trainer, logger


@contextmanager
def _compact_lm_head(device: str) -> Iterator[None]:
    """On a CPU, project only the labelled positions through the LM head while training.

    TRL's fused LM head gathers the positions that carry a label (the reply tokens) before the
    vocabulary projection only where its Triton kernels run (CUDA, XPU); on a CPU it projects every
    position, prompt and padding included. With a masked prompt that is most of them: in the
    quickstart 372 of 1,536 positions a batch are labelled, and gathering them first took a training
    step from 12.2 s to 8.7 s with the same loss (docs/benchmarks.md). TRL decides with a private
    helper, which this swaps for the length of the block; if a TRL release drops it, training
    runs as TRL does it.
    """
    import importlib

    trl_utils: Any = importlib.import_module("trl.trainer.utils")
    original = getattr(trl_utils, "_use_triton", None)
    if device != "cpu" or original is None:
        yield
        return
    trl_utils._use_triton = lambda _device: True
    try:
        yield
    finally:
        trl_utils._use_triton = original


@contextmanager
def _frozen_cache(cfg: FinetuneConfig, trainer: Any, layers: list[int] | None) -> Iterator[Any]:
    """With adapters on the last blocks only, the blocks below them run once per distinct example
    (:mod:`tidekit.finetuning._frozen`); yields the cache, or None where it does not apply."""
    from tidekit.finetuning._frozen import FrozenBlocksCache, frozen_blocks

    found = None if cfg.train.packing or cfg.train.gradient_checkpointing else frozen_blocks(trainer.model, layers)
    if found is None:
        yield None
        return
    with FrozenBlocksCache(*found) as cache:
        yield cache


def _evaluated_at(trainer: Any, step: int) -> bool:
    return any("eval_loss" in row and row.get("step") == step for row in trainer.state.log_history)


def _result(cfg: FinetuneConfig, out: Path, trainer: Any, logger: Any, hw: Any, n_train: int, n_eval: int,
            checkpoint: Path | None) -> FinetuneResult:
    summary = _summary(out)
    tokens = int(trainer.state.num_input_tokens_seen or 0) - logger.tokens_at_start
    return FinetuneResult(
        out=str(out), base_model=cfg.model, steps=int(trainer.state.global_step), train_examples=n_train,
        eval_examples=n_eval, **summary,
        tokens_per_s=round(tokens / logger.train_s, 2) if logger.train_s > 0 and tokens > 0 else None,
        train_s=round(logger.train_s, 3), precision=hw.precision, device=hw.device,
        resumed_from_step=int(checkpoint.name.removeprefix("checkpoint-")) if checkpoint else None)
