"""The server's non-streaming-backend path (a backend without ``stream``, e.g. ``openai`` or
``anthropic`` behind ``tidekit serve``), with a narrow fake backend: the whole reply arrives as one
chunk, and the finish reason and token counts still come from the backend's result."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tidekit.backends import ChatRequest, ChatResult
from tidekit.serve import create_app


class _WholeReplies:
    """Answers every request with 'one two three', cut by max_tokens=3 ('length')."""

    def __init__(self) -> None:
        self.seen: list[ChatRequest] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        self.seen.extend(requests)
        return [ChatResult(id=r.id, text="one two three", prompt_tokens=5, completion_tokens=3,
                           finish_reason="length") for r in requests]


def _events(text: str) -> list[dict[str, object] | str]:
    out: list[dict[str, object] | str] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_generate_only_backend_streams_one_chunk_with_length_and_usage() -> None:
    from fastapi.testclient import TestClient

    backend = _WholeReplies()
    client = TestClient(create_app(backend, "fake"))  # type: ignore[arg-type]
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    assert "".join(str(c["choices"][0]["delta"].get("content", "")) for c in chunks if c["choices"]) == "one two three"  # type: ignore[index]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"  # type: ignore[index]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3,
                                                                   "total_tokens": 8}
    # no temperature sent: OpenAI's default 1.0, with a fresh seed
    assert backend.seen[0].params.temperature == 1.0 and backend.seen[0].params.seed is not None


def test_server_default_temperature_zero_is_greedy_without_a_seed() -> None:
    from fastapi.testclient import TestClient

    backend = _WholeReplies()
    client = TestClient(create_app(backend, "fake", default_temperature=0.0))  # type: ignore[arg-type]
    reply = client.post("/v1/chat/completions", json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.json()["choices"][0]["finish_reason"] == "length"
    assert backend.seen[0].params.temperature == 0.0 and backend.seen[0].params.seed is None
