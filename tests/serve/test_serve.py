"""``tidekit serve`` with the real SmolLM2, in its own process on 127.0.0.1: the official openai
client (plain and streaming), tidekit's openai backend, and 4xx validation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.data import Message

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "system", "content": "You are a supportive listener."},
            {"role": "user", "content": "I have not slept well since the fire."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "serve", "--model", "smollm2-135m", "--port", str(port)],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"tidekit serve exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise RuntimeError("tidekit serve did not start within 300 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_client_plain_and_streaming(server: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server}/v1", api_key="anything")
    assert [m.id for m in client.models.list()] == ["smollm2-135m"]
    reply = client.chat.completions.create(model="smollm2-135m", messages=MESSAGES, max_tokens=12)  # type: ignore[arg-type]
    text = reply.choices[0].message.content
    assert text and reply.usage is not None and reply.usage.completion_tokens == 12
    assert reply.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(model="smollm2-135m", messages=MESSAGES, max_tokens=12,  # type: ignore[arg-type]
                                            stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 3  # streamed as generated, not in one piece
    assert "".join(pieces) == text  # greedy: the same reply


def test_tidekit_openai_backend_against_tidekit_serve(server: str) -> None:
    backend = load_backend(BackendConfig(kind="openai", model="smollm2-135m", base_url=f"{server}/v1"))
    request = ChatRequest(id="a", messages=[Message(**m) for m in MESSAGES],  # type: ignore[arg-type]
                          params=GenerationParams(max_new_tokens=12))
    result = backend.generate([request])[0]
    backend.close()
    assert result.error is None and result.text and result.completion_tokens == 12


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"model": "smollm2-135m", "messages": []}, 400, "messages"),
    ({"model": "smollm2-135m", "messages": MESSAGES, "temperature": 7}, 400, "temperature"),
    ({"model": "smollm2-135m", "messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
    ({"model": "smollm2-135m", "messages": MESSAGES, "n": 2}, 400, "n"),
    ({"model": "gpt-9", "messages": MESSAGES}, 404, "not served here"),
    ({"model": "smollm2-135m", "messages": [{"role": "user", "content": "word " * 9000}]}, 400, "context"),
])
def test_bad_requests_get_clear_4xx(server: str, body: dict[str, object], status: int, fragment: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_malformed_json_is_a_400(server: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", content=b"{not json", timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
