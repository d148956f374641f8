"""The anthropic backend against a loopback server speaking the Messages wire format, through
the official SDK; key handling and error wording of the remote backends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.data import Message
from tidekit.errors import BackendError


class MessagesServer:
    """A minimal Anthropic Messages API: POST /v1/messages. Fails the first ``fail_first``
    calls with 529 (overloaded) to exercise the SDK's retries."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_left = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.bodies.append(body)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if outer.fail_left > 0:
                    outer.fail_left -= 1
                    self._send(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
                    return
                last = body["messages"][-1]["content"]
                text = f"[{body.get('system', '')}] heard: {last}"
                self._send(200, {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": 11, "output_tokens": 7},
                })

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def messages_server() -> Iterator[MessagesServer]:
    server = MessagesServer(fail_first=1)
    yield server
    server.close()


def _request(i: int) -> ChatRequest:
    return ChatRequest(id=str(i), messages=[Message(role="system", content="be gentle"),
                                            Message(role="user", content=f"hello {i}")],
                       params=GenerationParams(max_new_tokens=50, temperature=0.3, stop=["END"]))


def test_anthropic_backend_speaks_the_messages_api(messages_server: MessagesServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-test-123")
    backend = load_backend(BackendConfig(kind="anthropic", model="claude-test", base_url=messages_server.url,
                                         api_key_env="TEST_ANTHROPIC_KEY", concurrency=2, max_retries=2))
    results = backend.generate([_request(0), _request(1)])
    backend.close()
    assert [r.text for r in results] == ["[be gentle] heard: hello 0", "[be gentle] heard: hello 1"]
    assert results[0].prompt_tokens == 11 and results[0].completion_tokens == 7
    assert results[0].finish_reason == "stop"
    assert len(messages_server.bodies) == 3  # one 529 retried by the SDK
    body = messages_server.bodies[-1]
    assert body["system"] == "be gentle" and body["max_tokens"] == 50 and body["stop_sequences"] == ["END"]
    assert [m["role"] for m in body["messages"]] == ["user"]
    sent = messages_server.headers[-1]  # this SDK generation sends the key as a bearer token
    assert sent.get("x-api-key") == "sk-test-123" or sent.get("authorization") == "Bearer sk-test-123"
    assert "anthropic-version" in sent


def test_anthropic_backend_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(BackendError, match="ANTHROPIC_API_KEY"):
        load_backend(BackendConfig(kind="anthropic", model="claude-test"))


def test_anthropic_failures_become_request_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    server = MessagesServer(fail_first=10)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    try:
        backend = load_backend(BackendConfig(kind="anthropic", model="m", base_url=server.url, max_retries=1))
        result = backend.generate([_request(0)])[0]
    finally:
        server.close()
    assert result.text is None and result.error is not None and "529" in result.error


def test_openai_backend_reports_an_unreachable_server() -> None:
    with pytest.raises(BackendError, match="cannot reach"):
        load_backend(BackendConfig(kind="openai", model="m", base_url="http://127.0.0.1:9/v1", max_retries=0))
