"""Structured output and token probabilities on every backend: the OpenAI and Anthropic wire
formats against loopback servers through the official SDKs, the decode loop's mask with a
scripted constraint, and (slow) the real SmolLM2-135M decoding under the verdict schema."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
from tidekit.backends._protocol import ResponseFormat
from tidekit.data import Message
from tidekit.metrics import CRITERIA, expected_scores, parse_verdict, verdict_schema

VERDICT = {"emotion_recognition": 4, "distress_normalization": 3, "supportive_reflection": 5, "overall": 4}
FORMAT = ResponseFormat(name="empathy_verdict", json_schema=verdict_schema())


class _Server:
    """A loopback HTTP server whose POST handler is ``self.answer(path, body) -> (status, payload)``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # /v1/models, which the openai backend checks on load
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model", "created": 0,
                                                             "owned_by": "test"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.bodies.append(body)
                self._send(*outer.answer(self.path, body))

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

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _token_logprobs(text: str, digit_probs: dict[int, float]) -> list[dict[str, Any]]:
    """OpenAI-style logprobs of ``text`` split into tokens; each digit token lists the scale
    values with ``digit_probs`` as its alternatives (the rest of the mass on a non-digit)."""
    tokens, i = [], 0
    while i < len(text):
        j = i + 1
        while j < len(text) and not text[j].isdigit() and not text[i].isdigit() and text[j] not in ' "':
            j += 1
        tokens.append(text[i:j])
        i = j
    out = []
    for tok in tokens:
        if tok.isdigit():
            top = [{"token": str(k), "logprob": math.log(p), "bytes": None} for k, p in digit_probs.items()]
            top.append({"token": "x", "logprob": math.log(0.01), "bytes": None})
            out.append({"token": tok, "logprob": math.log(digit_probs.get(int(tok), 0.01)), "bytes": None,
                        "top_logprobs": top})
        else:
            out.append({"token": tok, "logprob": 0.0, "bytes": None,
                        "top_logprobs": [{"token": tok, "logprob": 0.0, "bytes": None}]})
    return out


class ChatServer(_Server):
    """A minimal OpenAI chat-completions server; ``refuse`` lists body fields it answers 400 to."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse = refuse
        super().__init__()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        refused = [f for f in self.refuse if f in body]
        if refused:
            return 400, {"error": {"message": f"{refused[0]} is not supported", "type": "invalid_request_error",
                                   "param": refused[0], "code": None}}
        text = json.dumps(VERDICT) if "response_format" in body else "The reply is kind. overall: 4"
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": _token_logprobs(text, {3: 0.2, 4: 0.5, 5: 0.29})}
        return 200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [choice], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}


class MessagesServer(_Server):
    """A minimal Anthropic Messages server that calls the forced tool when one is offered."""

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("tools"):
            content = [{"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"], "input": VERDICT}]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": "I think it is a 4."}], "end_turn"
        return 200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                     "content": content, "stop_reason": stop, "stop_sequence": None,
                     "usage": {"input_tokens": 11, "output_tokens": 7}}


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


def _request(i: int, fmt: ResponseFormat | None = FORMAT, logprobs: int = 5) -> ChatRequest:
    return ChatRequest(id=str(i), messages=[Message(role="system", content="rate"), Message(role="user", content="hi")],
                       params=GenerationParams(max_new_tokens=64), response_format=fmt, logprobs=logprobs)


def test_openai_sends_the_schema_and_reads_token_probabilities(chat_server: ChatServer) -> None:
    backend = load_backend(BackendConfig(kind="openai", model="m", base_url=chat_server.url + "/v1"))
    assert backend.capabilities.structured_output and backend.capabilities.logprobs
    result = backend.generate([_request(0)])[0]
    backend.close()
    body = chat_server.bodies[-1]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "empathy_verdict", "schema": verdict_schema(), "strict": True}}
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert result.structured is True and parse_verdict(result.text) == VERDICT
    assert result.logprobs is not None and "".join(t.token for t in result.logprobs) == result.text
    expected = expected_scores(result.logprobs)
    # p(3, 4, 5) = 0.2, 0.5, 0.29 renormalised over the scale: (0.6 + 2.0 + 1.45) / 0.99
    assert expected is not None and expected["overall"] == pytest.approx(4.05 / 0.99)


def test_openai_falls_back_to_text_where_the_server_refuses_the_schema() -> None:
    server = ChatServer(refuse=("response_format",))
    try:
        backend = load_backend(BackendConfig(kind="openai", model="m", base_url=server.url + "/v1", max_retries=0))
        first, second = backend.generate([_request(0)]), backend.generate([_request(1)])
        backend.close()
    finally:
        server.close()
    assert first[0].structured is False and first[0].error is None and first[0].text
    assert ["response_format" in b for b in server.bodies] == [True, False, False]  # refused once, then left out
    assert second[0].structured is False and second[0].logprobs  # logprobs still asked for and read


def test_anthropic_forces_the_verdict_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    server = MessagesServer()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    try:
        backend = load_backend(BackendConfig(kind="anthropic", model="claude-test", base_url=server.url))
        structured, free = backend.generate([_request(0), _request(1, fmt=None)])
        backend.close()
    finally:
        server.close()
    tool_body = next(b for b in server.bodies if "tools" in b)
    assert tool_body["tools"][0]["input_schema"] == verdict_schema()
    assert tool_body["tool_choice"] == {"type": "tool", "name": "empathy_verdict"}
    assert structured.structured is True and json.loads(structured.text or "") == VERDICT
    assert free.structured is None and free.text == "I think it is a 4."


class _AllowOnly:
    """A scripted constraint: only ``allowed`` tokens, in turn, one per step."""

    def __init__(self, allowed: list[set[int]]) -> None:
        self.allowed, self.step, self.accepted = allowed, 0, []  # type: list[set[int]], int, list[int]

    def fill(self, bitmask: Any, index: int) -> None:
        bitmask[index] = 0
        for token in self.allowed[min(self.step, len(self.allowed) - 1)]:
            bitmask[index, token // 32] |= (1 << (token % 32)) if token % 32 < 31 else -(1 << 31)

    def accept(self, token: int) -> bool:
        ok = token in self.allowed[min(self.step, len(self.allowed) - 1)]
        self.step += 1
        self.accepted.append(token)
        return ok


def test_the_mask_leaves_only_allowed_tokens_and_other_rows_untouched() -> None:
    import torch

    from tidekit.backends._decode import _mask_disallowed, _top_logprobs

    logits = torch.randn(3, 100)
    before = logits.clone()
    constraint = _AllowOnly([{5, 31, 63, 99}])
    masked = _mask_disallowed(logits, [None, constraint, None])
    assert torch.equal(masked[0], before[0]) and torch.equal(masked[2], before[2])
    assert torch.isfinite(masked[1]).nonzero().flatten().tolist() == [5, 31, 63, 99]
    chosen = masked.argmax(-1)
    top = _top_logprobs(masked, chosen, [0, 10, 0])
    assert set(top) == {1} and sorted(t for t, _ in top[1][1]) == [5, 31, 63, 99]  # -inf alternatives left out
    assert sum(math.exp(lp) for _, lp in top[1][1]) == pytest.approx(1.0)


@pytest.mark.slow
def test_smollm2_decodes_under_the_verdict_schema_with_scale_probabilities() -> None:
    from tidekit.generation import request_key
    from tidekit.metrics import build_rubric

    rubric = build_rubric()
    messages = rubric.messages("Since the crash I can't sleep, I keep hearing the brakes.",
                               "That sounds frightening and exhausting. It makes sense that your body is on alert.")
    backend = load_backend(BackendConfig(model="smollm2-135m"))
    try:
        constrained = ChatRequest(id="c", messages=messages, params=GenerationParams(max_new_tokens=64),
                                  response_format=FORMAT, logprobs=5)
        free = ChatRequest(id="f", messages=messages, params=GenerationParams(max_new_tokens=64))
        out, plain = backend.generate([constrained, free])
    finally:
        backend.close()
    assert out.structured is True and out.finish_reason == "stop"
    verdict = json.loads(out.text or "")
    assert list(verdict) == list(CRITERIA) and all(v in range(1, 6) for v in verdict.values())
    assert out.logprobs is not None and len(out.logprobs) == out.completion_tokens
    expected = expected_scores(out.logprobs)
    assert expected is not None and all(1.0 <= expected[k] <= 5.0 for k in CRITERIA)
    digit_positions = [t for t in out.logprobs if t.token.strip().isdigit()]
    assert len(digit_positions) == 4 and all({a for a, _ in t.top} == {"1", "2", "3", "4", "5"}
                                             for t in digit_positions)
    assert plain.structured is None and plain.logprobs is None  # an unconstrained row in the same batch
    assert request_key(backend.identity, constrained) != request_key(backend.identity, free.model_copy(
        update={"id": "c"}))
