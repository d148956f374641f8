"""``tidekit serve --safety``: a reply to crisis content carries crisis resources, is marked, and is
logged by request id without the text; off by default, and silent for ordinary messages. Plain
and streamed replies, with a backend that returns whole replies and one that streams pieces."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from tidekit.backends import ChatRequest, ChatResult
from tidekit.safety import CRISIS_PARAGRAPH, RULES, SAFETY_HEADER
from tidekit.serve import ServeConfig, create_app

CRISIS = "Some nights I think everyone would be better off without me."
CALM = "I have not slept well since the fire."
PLAIN_REPLY = "That sounds so heavy, and I am glad you said it out loud."
RESOURCE_REPLY = "I'm really glad you told me. You can call or text 988 any time, day or night."


class _Whole:
    """Answers every request with one fixed reply (a backend without ``stream``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return [ChatResult(id=r.id, text=self.text, prompt_tokens=5, completion_tokens=7, finish_reason="stop")
                for r in requests]


class _Pieces(_Whole):
    """Streams the fixed reply word by word, as the ``hf`` backend streams decoded text."""

    def stream(self, request: ChatRequest) -> Generator[str, None, ChatResult]:
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        return ChatResult(id=request.id, text=self.text, prompt_tokens=5, completion_tokens=len(words),
                          finish_reason="stop")


def _client(backend: _Whole, safety: bool = True) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(create_app(backend, "fake", safety=safety))  # type: ignore[arg-type]


def _body(user: str, stream: bool = False, earlier: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are a supportive listener."}]
    if earlier is not None:
        messages += [{"role": "user", "content": earlier}, {"role": "assistant", "content": "I'm listening."}]
    messages.append({"role": "user", "content": user})
    return {"model": "fake", "messages": messages, "stream": stream}


def _chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def test_the_paragraph_is_itself_a_crisis_resource_and_says_it_is_no_substitute() -> None:
    assert RULES["crisis_resources"].match(CRISIS_PARAGRAPH)
    assert "not a substitute for emergency help" in CRISIS_PARAGRAPH


def test_plain_reply_to_crisis_content_gets_resources_marked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tidekit.serve"):
        response = _client(_Whole(PLAIN_REPLY)).post("/v1/chat/completions", json=_body(CRISIS))
    assert response.status_code == 200
    assert response.headers[SAFETY_HEADER] == "crisis"
    reply = response.json()
    assert reply["choices"][0]["message"]["content"] == PLAIN_REPLY + "\n\n" + CRISIS_PARAGRAPH
    assert reply["tidekit_safety"] == {"crisis_screen": True, "resources_added": True}
    assert reply["usage"]["completion_tokens"] == 7  # the model's tokens, not the paragraph's
    logged = [r for r in caplog.records if r.name == "tidekit.serve"]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert reply["id"] in logged[0].getMessage() and "appended" in logged[0].getMessage()
    assert "better off" not in caplog.text and "heavy" not in caplog.text  # never the texts themselves


def test_a_reply_that_offers_resources_is_left_as_it_is_but_still_marked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tidekit.serve"):
        response = _client(_Whole(RESOURCE_REPLY)).post("/v1/chat/completions", json=_body(CRISIS))
    reply = response.json()
    assert reply["choices"][0]["message"]["content"] == RESOURCE_REPLY
    assert reply["tidekit_safety"] == {"crisis_screen": True, "resources_added": False}
    assert response.headers[SAFETY_HEADER] == "crisis"
    assert "already in the reply" in caplog.text


def test_an_earlier_disclosure_in_the_conversation_still_counts() -> None:
    response = _client(_Whole(PLAIN_REPLY)).post("/v1/chat/completions", json=_body(CALM, earlier=CRISIS))
    assert response.json()["tidekit_safety"]["resources_added"] is True


@pytest.mark.parametrize("safety", [True, False])
def test_ordinary_messages_and_the_default_are_served_unchanged(safety: bool,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    user = CALM if safety else CRISIS  # with the guardrail off even crisis content passes through
    with caplog.at_level(logging.WARNING, logger="tidekit.serve"):
        response = _client(_Whole(PLAIN_REPLY), safety=safety).post("/v1/chat/completions", json=_body(user))
    reply = response.json()
    assert reply["choices"][0]["message"]["content"] == PLAIN_REPLY
    assert "tidekit_safety" not in reply and SAFETY_HEADER not in response.headers
    assert not [r for r in caplog.records if r.name == "tidekit.serve"]


@pytest.mark.parametrize("backend_cls", [_Whole, _Pieces])
def test_stream_sends_the_paragraph_as_a_last_content_chunk_before_finish(backend_cls: type[_Whole]) -> None:
    response = _client(backend_cls(PLAIN_REPLY)).post("/v1/chat/completions", json=_body(CRISIS, stream=True))
    assert response.status_code == 200 and response.headers[SAFETY_HEADER] == "crisis"
    assert response.text.rstrip().endswith("data: [DONE]")
    chunks = _chunks(response.text)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == PLAIN_REPLY + "\n\n" + CRISIS_PARAGRAPH
    marked = [c for c in chunks if "tidekit_safety" in c]
    assert len(marked) == 1 and marked[0]["choices"][0]["delta"]["content"].endswith(CRISIS_PARAGRAPH)
    assert chunks.index(marked[0]) == len(chunks) - 2  # then only the finish chunk
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_whose_reply_has_resources_gets_no_extra_chunk() -> None:
    response = _client(_Pieces(RESOURCE_REPLY)).post("/v1/chat/completions", json=_body(CRISIS, stream=True))
    chunks = _chunks(response.text)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == RESOURCE_REPLY
    assert not [c for c in chunks if "tidekit_safety" in c]
    assert response.headers[SAFETY_HEADER] == "crisis"


def test_serve_config_and_cli_flag_turn_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import tidekit.serve
    from tidekit.cli._serve import serve_cmd

    assert ServeConfig().safety is False
    seen: list[ServeConfig] = []
    monkeypatch.setattr(tidekit.serve, "serve", lambda config, on_ready=None: seen.append(config))
    for args in (["--safety"], [], ["safety=true"]):
        result = CliRunner().invoke(serve_cmd, ["--model", "smollm2-135m", *args])
        assert result.exit_code == 0, result.output
    assert [c.safety for c in seen] == [True, False, True]


@pytest.mark.slow
def test_real_server_with_safety_appends_resources_over_loopback(safe_server: str) -> None:
    import httpx

    body = {"model": "smollm2-135m", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": CRISIS}]}
    response = httpx.post(f"{safe_server}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200 and response.headers[SAFETY_HEADER] == "crisis"
    reply = response.json()
    assert RULES["crisis_resources"].match(reply["choices"][0]["message"]["content"])
    assert reply["tidekit_safety"]["crisis_screen"] is True

    with httpx.stream("POST", f"{safe_server}/v1/chat/completions", json={**body, "stream": True},
                      timeout=120) as streamed:
        assert streamed.headers[SAFETY_HEADER] == "crisis"
        text = "".join(streamed.iter_text())
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in _chunks(text) if c["choices"])
    assert RULES["crisis_resources"].match(content)
    calm = httpx.post(f"{safe_server}/v1/chat/completions",
                      json={**body, "messages": [{"role": "user", "content": CALM}]}, timeout=120)
    assert SAFETY_HEADER not in calm.headers and "tidekit_safety" not in calm.json()
