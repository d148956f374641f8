"""``tidekit serve`` with the real SmolLM2 (the ``server`` fixture in conftest.py): tidekit's own
openai backend against it, and 4xx validation over raw HTTP. The official openai client's view
is in test_conformance.py."""

from __future__ import annotations

import httpx
import pytest

from serve.conftest import MESSAGES
from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.data import Message

pytestmark = pytest.mark.slow


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
    ({"model": "smollm2-135m", "messages": MESSAGES, "n": 9}, 400, "n"),
    ({"model": "gpt-9", "messages": MESSAGES}, 404, "not served here"),
    ({"model": "smollm2-135m", "messages": [{"role": "user", "content": "word " * 9000}]}, 400, "context"),
    ({"model": "smollm2-135m", "messages": [{"role": "user", "content": "word " * 9000}], "stream": True}, 400,
     "context"),
    ({"model": "smollm2-135m", "messages": MESSAGES, "stream_options": {"include_usage": True}}, 400,
     "stream_options"),
    ({"model": "smollm2-135m", "messages": MESSAGES, "top_logprobs": 2}, 400, "logprobs"),
    ({"model": "smollm2-135m", "messages": MESSAGES, "tools": [{"type": "function"}]}, 400, "tools"),
    ({"model": "smollm2-135m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "text content"),
])
def test_bad_requests_get_clear_4xx(server: str, body: dict[str, object], status: int, fragment: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_malformed_json_is_a_400(server: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", content=b"{not json", timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
