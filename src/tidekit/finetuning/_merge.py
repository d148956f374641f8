"""Merge a LoRA adapter into its base model: full weights any transformers (or vLLM) loads.

``tidekit finetune merge ADAPTER --out DIR`` loads the base model in fp32, applies the adapter
(W + B A * alpha / r), drops the PEFT wrappers and saves a plain model folder (config,
safetensors weights, tokenizer, generation config) with a model card and a manifest. The
merged weights are stored in the base checkpoint's dtype unless ``dtype`` says otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tidekit._io import write_text
from tidekit._manifest import MANIFEST_NAME, ModelIdentity, RunRecorder, read_manifest
from tidekit._version import __version__
from tidekit.backends import resolve_model_path, weights_fingerprint
from tidekit.errors import BackendError, ConfigError, DataError

__all__ = ["MergeResult", "merge_adapter"]

MergeDtype = Literal["auto", "float32", "bfloat16", "float16"]


class MergeResult(BaseModel):
    """Where the merged model went and what it is."""

    out: str = Field(description="Folder of the merged model.")
    base_model: str = Field(description="Base model alias or folder the adapter was applied to.")
    adapter: str = Field(description="Adapter folder merged in.")
    dtype: str = Field(description="dtype of the saved weights.")
    parameters: int = Field(description="Parameter count of the merged model.")
    skipped: bool = Field(default=False, description="True when OUT already held this merge.")


def _base_of(adapter: Path) -> str:
    """The base model an adapter was trained on: tidekit's manifest alias, else PEFT's record."""
    manifest = adapter / MANIFEST_NAME
    if manifest.is_file():
        record = read_manifest(manifest)
        model = record.config.get("model")
        if record.command == "finetune" and isinstance(model, str):
            return model
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{adapter}: the adapter does not say which base model it belongs to; pass --base MODEL")
    return str(base)


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | None = None, dtype: MergeDtype = "auto",
                  force: bool = False) -> MergeResult:
    """Merge the LoRA adapter in ``adapter`` into its base model and save full weights to ``out``.

    ``base``: the base model (alias or folder) when the adapter's own record should not be used.
    ``dtype``: dtype of the saved weights; ``auto`` keeps the base checkpoint's.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").is_file():
        raise DataError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json); give the OUT folder of "
                        "'tidekit finetune'")
    if out.resolve() == adapter.resolve():
        raise ConfigError("--out must differ from the adapter folder (the merged model is a separate folder)")
    base_name = base or _base_of(adapter)
    base_path = resolve_model_path(base_name)
    adapter_sha = weights_fingerprint(adapter)
    done = out / MANIFEST_NAME
    if done.is_file() and not force:
        record = read_manifest(done)
        if record.command == "finetune merge" and record.status == "finished":
            if record.extra.get("adapter_sha256") == adapter_sha and record.extra.get("base") == base_name \
                    and record.config.get("dtype") == dtype:
                return MergeResult.model_validate({**record.extra["result"], "skipped": True})
            raise ConfigError(f"{out} already holds another merged model; choose another --out or pass --force")

    config = {"adapter": str(adapter), "base": base_name, "dtype": dtype}
    with RunRecorder(out, command="finetune merge", config=config, inputs={"adapter": str(adapter)}) as run:
        with run.step("load"):
            try:
                model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
            except (OSError, ValueError) as exc:
                raise BackendError(f"could not load the base model {base_name} from {base_path}: {exc}") from None
            saved_dtype = str(getattr(model.config, "dtype", None) or "float32").removeprefix("torch.")
            target = saved_dtype if dtype == "auto" else dtype
            try:
                peft_model = PeftModel.from_pretrained(model, str(adapter))
            except (ValueError, RuntimeError, KeyError) as exc:
                raise BackendError(f"could not apply {adapter} to {base_name}: {exc}. Pass the base it was trained "
                                   "on with --base.") from None
            tokenizer = AutoTokenizer.from_pretrained(str(adapter if (adapter / "tokenizer_config.json").is_file()
                                                          else base_path))
        with run.step("merge"):
            merged = peft_model.merge_and_unload()
            merged = merged.to(getattr(torch, target))
            parameters = sum(p.numel() for p in merged.parameters())
        with run.step("save"):
            merged.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            from tidekit.finetuning._card import render_card

            trained = read_manifest(adapter / MANIFEST_NAME) if (adapter / MANIFEST_NAME).is_file() else None
            facts = {**(trained.extra.get("result", {}) if trained else {}), "adapter": str(adapter), "dtype": target,
                     "tidekit_version": __version__}
            write_text(out / "README.md", render_card(kind="merged", base_model=base_name, base_source=str(base_path),
                                                      config=trained.config if trained else {}, facts=facts))
        run.models += [ModelIdentity(alias=base_name, source=str(base_path), sha256=weights_fingerprint(base_path),
                                     role="base"),
                       ModelIdentity(alias=adapter.name, source=str(adapter), sha256=adapter_sha, role="adapter")]
        result = MergeResult(out=str(out), base_model=base_name, adapter=str(adapter), dtype=target,
                             parameters=parameters)
        run.counts["parameters"] = parameters
        run.extra.update(result=result.model_dump(), adapter_sha256=adapter_sha, base=base_name)
    return result
