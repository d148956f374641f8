"""OpenAI conformance of ``tidekit serve``, driven by the official ``openai`` client against a
real server (SmolLM2 on 127.0.0.1, the ``server`` fixture): plain replies, streams,
``stream_options.include_usage``, stop strings, ``max_tokens``, the default temperature and bad
requests, each checked the way an OpenAI client reads them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from serve.conftest import MESSAGES, MODEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[Any]:
    import openai

    with openai.OpenAI(base_url=f"{server}/v1", api_key="anything", max_retries=0) as c:
        yield c


def _stream(client: Any, **kwargs: Any) -> tuple[str, list[Any]]:
    """The streamed text and every chunk, as the client parsed them."""
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_models_lists_the_served_name(client: Any) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_plain_and_stream_cut_by_max_tokens_say_length(client: Any) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0)
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 12 and reply.usage.prompt_tokens > 10
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12

    text, chunks = _stream(client, max_tokens=12, temperature=0)
    assert text == reply.choices[0].message.content  # greedy: the same reply, piece by piece
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # streamed, not one piece
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and not any(finishes[:-1])  # only the last chunk carries it
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage anywhere
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.object == "chat.completion.chunk" for c in chunks)


def test_stream_with_include_usage_ends_with_the_token_counts(client: Any) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=9, temperature=0)
    text, chunks = _stream(client, max_tokens=9, temperature=0, stream_options={"include_usage": True})
    assert text == plain.choices[0].message.content
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        plain.usage.prompt_tokens, 9, plain.usage.prompt_tokens + 9)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "length"


def test_stop_string_ends_the_reply_before_it_with_stop(client: Any) -> None:
    full = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0)
    text = full.choices[0].message.content
    words = text.split()
    assert len(words) >= 4, text
    stop = words[3]
    expected = text[:text.index(stop)]

    cut = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == expected
    assert cut.choices[0].finish_reason == "stop" and cut.usage.completion_tokens < 24

    streamed, chunks = _stream(client, max_tokens=24, temperature=0, stop=stop)
    assert streamed == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_finish_reason_matches_the_token_count_when_the_model_may_end(client: Any) -> None:
    messages = [{"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": "Say hello."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=48, temperature=0)
    ended = reply.usage.completion_tokens < 48
    assert reply.choices[0].finish_reason == ("stop" if ended else "length")
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=48, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reply.choices[0].finish_reason


def test_default_temperature_samples_like_openai_and_seed_repeats(client: Any) -> None:
    # no temperature: 1.0 with a fresh seed per request, so replies vary (OpenAI's default)
    replies = {client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24).choices[0].message.content
               for _ in range(4)}
    assert len(replies) > 1
    # a seed makes a sampled reply repeatable; temperature 0 is greedy whatever the seed
    seeded = [client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16, seed=7)
              .choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]
    greedy = [client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16, temperature=0, seed=s)
              .choices[0].message.content for s in (1, 2)]
    assert greedy[0] == greedy[1]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"temperature": 7}, "temperature"),
    ({"n": 9}, "n"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"seed": 2**64}, "seed"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}}},
     "schema"),
    ({"messages": [{"role": "user", "content": "word " * 9000}]}, "context"),
    ({"messages": [{"role": "user", "content": "word " * 9000}], "stream": True}, "context"),
])
def test_bad_requests_raise_bad_request_error(client: Any, kwargs: dict[str, Any], fragment: str) -> None:
    import openai

    call = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**call)
    assert caught.value.status_code == 400
    assert fragment in caught.value.message


def test_unknown_model_raises_not_found(client: Any) -> None:
    import openai

    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-9", messages=MESSAGES, max_tokens=4)


def test_n_choices_are_distinct_samples_and_repeat_with_a_seed(client: Any) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, n=3, seed=11,
                                           temperature=1.0)
    texts = [c.message.content for c in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1, 2] and len(set(texts)) > 1
    again = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, n=3, seed=11,
                                           temperature=1.0)
    assert [c.message.content for c in again.choices] == texts
    assert reply.usage.completion_tokens <= 36
    single = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1, temperature=0)
    assert reply.usage.prompt_tokens == single.usage.prompt_tokens  # one prompt, counted once
    streamed = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, n=3, seed=11,
                                                   temperature=1.0, stream=True))
    by_choice = ["".join(c.choices[0].delta.content or "" for c in streamed if c.choices and c.choices[0].index == k)
                 for k in range(3)]
    assert by_choice == texts


def test_logprobs_are_those_of_the_reply_tokens(client: Any) -> None:
    import math

    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0,
                                           logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 8
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        # greedy: the chosen token is the most likely one
        assert math.isclose(token.top_logprobs[0].logprob, token.logprob, abs_tol=1e-6)
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0)
    assert plain.choices[0].logprobs is None


def test_response_format_json_schema_replies_validate(client: Any) -> None:
    import json

    import jsonschema

    schema = {"type": "object", "properties": {
        "feeling": {"type": "string", "enum": ["calm", "worried", "sad"]},
        "intensity": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 40}},
        "required": ["feeling", "intensity", "summary"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "assessment", "schema": schema, "strict": True}}
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=80, n=3, temperature=1.0,
                                           seed=5, response_format=fmt)
    for choice in reply.choices:
        jsonschema.validate(json.loads(choice.message.content), schema)
    anything = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=60, temperature=0,
                                              response_format={"type": "json_object"})
    assert isinstance(json.loads(anything.choices[0].message.content), dict)


def test_completions_continue_a_raw_prompt_with_logprobs(client: Any) -> None:
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0,
                                      logprobs=2)
    choice = reply.choices[0]
    assert reply.object == "text_completion" and choice.text and reply.usage.completion_tokens == 4
    assert len(choice.logprobs.tokens) == 4 and all(len(top) == 2 for top in choice.logprobs.top_logprobs)
    assert "".join(choice.logprobs.tokens) == choice.text
    streamed = list(client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4,
                                              temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == choice.text
    two = client.completions.create(model=MODEL, prompt=["One, two,", "Red, green,"], max_tokens=3, temperature=0)
    assert [c.index for c in two.choices] == [0, 1] and two.choices[0].text != two.choices[1].text


def test_responses_text_subset_echoes_the_temperature(client: Any) -> None:
    first = client.responses.create(model=MODEL, input="Say hello.", instructions="Be brief.", max_output_tokens=8,
                                    temperature=0)
    second = client.responses.create(model=MODEL, input=[{"role": "user", "content": "Say hello."}],
                                     instructions="Be brief.", max_output_tokens=8, temperature=0)
    assert first.output_text and first.output_text == second.output_text  # greedy: the same reply
    assert first.temperature == 0 and first.usage.output_tokens <= 8
    assert first.status in ("completed", "incomplete")


def test_openapi_lists_the_real_responses(client: Any, server: str) -> None:
    import httpx

    spec = httpx.get(f"{server}/openapi.json", timeout=30).json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert {"200", "400", "404", "413", "429", "504"} <= set(chat["responses"])
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ChatCompletionRequest")
    assert "ChatCompletionRequest" in spec["components"]["schemas"]
    assert {"/v1/completions", "/v1/responses", "/v1/models", "/health"} <= set(spec["paths"])
    assert httpx.head(f"{server}/health", timeout=10).status_code == 200
