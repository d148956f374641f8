"""Malformed requests, fuzz-style: odd JSON types in every field, huge and negative integers, lone
surrogates in every string, invalid UTF-8, wrong or missing content types, empty and junk bodies,
deep nesting, wrong methods and paths. Not one may get a 5xx; every error must be OpenAI's
envelope ``{"error": {"message", "type", "param", "code"}}``; the server must answer ``/health``
afterwards. Run against the app with the ``mock`` backend (fast), and against a real
``tidekit serve`` with SmolLM2 over loopback (slow; ``max_tokens=2`` so that a mutation that
happens to be valid costs two tokens)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serve.conftest import MODEL, _launch

JUNK: list[Any] = [None, True, False, 0, -1, 1.5, -1e308, 1e-320, 2**64, -(2**63) - 1, 10**40, "", "\ud800",
                   "x\udfffy", "word " * 300, [], [None], [1, "a", {}], {}, {"\ud800": 1},
                   {"a": {"b": [1, {"c": "\udc00"}]}}, [[[[[]]]]]]

CHAT = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 2, "temperature": 0, "top_p": 0.9, "seed": 1, "stop": ["\n"], "n": 1, "stream": False,
        "logprobs": False, "top_logprobs": 0, "response_format": {"type": "text"}, "user": "u"}
COMPLETION = {"model": MODEL, "prompt": "Once upon", "max_tokens": 2, "temperature": 0, "seed": 3, "stop": "x",
              "logprobs": 1, "n": 1, "echo": False}
RESPONSES = {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
             "instructions": "Be brief.", "max_output_tokens": 2, "temperature": 0, "store": False,
             "text": {"format": {"type": "text"}}, "reasoning": {"effort": "low"}}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "v", "schema": {
    "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}
ROUTES = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETION, "/v1/responses": RESPONSES}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key/index path into ``value`` (the fields a mutation replaces)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*prefix, i)
            yield from _paths(item, (*prefix, i))


def _replace(body: dict[str, Any], path: tuple[Any, ...], junk: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = junk
    return out


def mutations() -> Iterator[tuple[str, bytes, dict[str, str], bool]]:
    """(route, body bytes, headers, a field mutation?) of every malformed (or oddly formed) request."""
    headers = {"content-type": "application/json"}
    for route, base in ROUTES.items():
        bodies = [base, {**base, "stream": True}]
        if route == "/v1/chat/completions":
            bodies.append({**base, "response_format": SCHEMA_FORMAT})
        for body in bodies:
            for path in _paths(body):
                for junk in JUNK:
                    yield route, json.dumps(_replace(body, path, junk)).encode(), headers, True
            for key in list(body):
                yield route, json.dumps({k: v for k, v in body.items() if k != key}).encode(), headers, True
        raw = json.dumps(base).encode()
        for bad in (b"", b"   ", b"null", b"[]", b"0", b'"text"', b"{", b'{"model": }', b"\xff\xfe\x00",
                    raw.replace(b"Hi", b"H\xc3\x28i"), raw.replace(b"Hi", b"H\xed\xa0\x80i"),
                    raw.replace(b'"max', b'"zz": NaN, "max'), raw.replace(b'"max', b'"zz": Infinity, "max'),
                    raw.replace(b'"max', b'"zz": ' + b"9" * 5000 + b', "max'),
                    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                    raw[: len(raw) // 2], raw + b"junk"):
            yield route, bad, headers, False
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
            yield route, raw, {"content-type": kind} if kind else {}, False
        yield route, raw, {"content-type": "application/json", "content-length": "abc"}, False


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, f"{what}: {body}"
        assert set(body["error"]) == {"message", "type", "param", "code"}, f"{what}: {body}"
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], what


def _raw_bad_length(base_url: str, route: str, body: bytes) -> None:
    """POST with ``Content-Length: abc`` over a socket: the answer must be a 4xx."""
    import socket

    host, port = base_url.split("//", 1)[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     "Content-Length: abc\r\n\r\n".encode() + body)
        status = sock.recv(64).split(b"\r\n")[0]
    assert status.startswith(b"HTTP/1.1 4"), status


def _run_all(client: httpx.Client, every: int = 1) -> int:
    """Send the mutations (every ``every``-th field mutation; all raw bodies) and the wrong methods."""
    sent = 0
    for i, (route, body, headers, field) in enumerate(mutations()):
        if field and i % every:
            continue
        try:
            response = client.post(route, content=body, headers=headers)
        except httpx.LocalProtocolError:  # httpx will not send a malformed Content-Length: send it raw
            assert "content-length" in headers
            _raw_bad_length(str(client.base_url), route, body)
            continue
        _check(response, f"POST {route} {body[:120]!r} {headers}")
        sent += 1
    for method, path in (("GET", "/v1/chat/completions"), ("PUT", "/v1/completions"), ("DELETE", "/health"),
                         ("GET", "/v1/nothing"), ("POST", "/v1/models"), ("GET", "/")):
        response = client.request(method, path)
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        _check(response, f"{method} {path}")
    return sent


class _Echo:
    """A backend answering every row with its last message, able to take raw prompts and schemas
    (it ignores them): the server's own validation is what is under test here."""

    def __init__(self) -> None:
        from tidekit.backends import Capabilities

        self.capabilities = Capabilities(batching=True, max_batch_size=8, structured_output=True, logprobs=True,
                                         context_length=2048)

    def generate(self, requests: Any) -> list[Any]:
        from tidekit.backends import ChatResult

        return [ChatResult(id=r.id, text=r.messages[-1].content[:20], prompt_tokens=3, completion_tokens=2,
                           finish_reason="length") for r in requests]

    def encode_text(self, text: str) -> list[int]:
        return [ord(c) for c in text]


def test_no_malformed_request_gets_a_5xx_and_every_error_is_the_envelope() -> None:
    from fastapi.testclient import TestClient

    from tidekit.serve import create_app

    app = create_app(_Echo(), MODEL, default_max_tokens=2)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        sent = _run_all(client)  # type: ignore[arg-type]
        assert sent > 1000
        assert client.get("/health").status_code == 200


@pytest.fixture(scope="module")
def short_server() -> Iterator[str]:
    with _launch("max_tokens=2") as url:
        yield url


@pytest.mark.slow
def test_real_server_survives_every_malformed_request(short_server: str) -> None:
    with httpx.Client(base_url=short_server, timeout=120) as client:
        # a fifth of the field mutations (the fast test sends them all through the same validation):
        # what passes validation reaches the real tokenizer, grammar compiler and decoder
        assert _run_all(client, every=5) > 600
        health = client.get("/health")
        head = client.head("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok" and head.status_code == 200


def test_oversized_and_odd_length_headers_are_refused_before_reading() -> None:
    from fastapi.testclient import TestClient

    from tidekit.backends import MockBackend, MockConfig
    from tidekit.serve import create_app

    client = TestClient(create_app(MockBackend(MockConfig(model="fake", reply="echo")), MODEL, max_body_bytes=4096))
    big = client.post("/v1/chat/completions", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    assert "--max-body-bytes" in big.json()["error"]["message"]
    ok = client.post("/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": "hi"}]})
    assert ok.status_code == 200


def test_lone_surrogate_names_the_field() -> None:
    from fastapi.testclient import TestClient

    from tidekit.backends import MockBackend, MockConfig
    from tidekit.serve import create_app

    client = TestClient(create_app(MockBackend(MockConfig(model="fake", reply="echo")), MODEL))
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "a\ud800b"}]})
    response = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages.0.content" and "surrogate" in error["message"]
    for seed in (2**64, -(2**63) - 1):
        response = client.post("/v1/chat/completions", json={**CHAT, "seed": seed})
        assert response.status_code == 400 and response.json()["error"]["param"] == "seed"
