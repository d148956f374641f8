"""The server's non-streaming-backend path (a backend without ``stream``, e.g. ``openai`` or
``anthropic`` behind ``tidekit serve``), with the ``mock`` backend: the whole reply arrives as one
chunk, and the finish reason and token counts still come from the backend's result."""

from __future__ import annotations

import json

from tidekit.backends import MockBackend, MockConfig
from tidekit.serve import create_app


def _whole_replies() -> MockBackend:
    """The library's ``mock`` backend answering every request 'one two three' (cut by
    max_tokens=3: 'length'); it has no ``stream``, and records the requests it saw."""
    return MockBackend(MockConfig(model="fake", reply="fixed", text="one two three"))


def _events(text: str) -> list[dict[str, object] | str]:
    out: list[dict[str, object] | str] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_generate_only_backend_streams_one_chunk_with_length_and_usage() -> None:
    from fastapi.testclient import TestClient

    backend = _whole_replies()
    client = TestClient(create_app(backend, "fake"))
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    assert "".join(str(c["choices"][0]["delta"].get("content", "")) for c in chunks if c["choices"]) == "one two three"  # type: ignore[index]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"  # type: ignore[index]
    # the mock counts words: the usage is the backend's count, not the server's own
    prompt = sum(len(m.content.split()) for m in backend.requests[0].messages)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": prompt, "completion_tokens": 3,
                                                                   "total_tokens": prompt + 3}
    # no temperature sent: OpenAI's default 1.0, with a fresh seed
    assert backend.requests[0].params.temperature == 1.0 and backend.requests[0].params.seed is not None


def test_server_default_temperature_zero_is_greedy_without_a_seed() -> None:
    from fastapi.testclient import TestClient

    backend = _whole_replies()
    client = TestClient(create_app(backend, "fake", default_temperature=0.0))
    reply = client.post("/v1/chat/completions", json={"model": "fake", "messages": [{"role": "user", "content": "hi"}],
                                                       "max_tokens": 3})
    assert reply.json()["choices"][0]["finish_reason"] == "length"
    assert backend.requests[0].params.temperature == 0.0 and backend.requests[0].params.seed is None
