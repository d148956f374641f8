"""The ``mock`` backend: deterministic replies without model weights.

Why: tests of the engine, judge, builder and server, and dry runs of a whole study
(``kind: mock`` for every model), need a backend that answers instantly, the same way on every
run and machine, and that can fail on purpose. Replies depend only on the request and the
:class:`~tidekit.backends._options.MockConfig`, so the model identity (alias, reply mode and a
digest of the reply-shaping settings) is stable and so are cache keys.

What it does with a request, in order:

1. fails it (``ChatResult.error = fail_message``) when its last message contains ``fail_on``, or
   while the same request has failed fewer than ``fail_times`` times;
2. when Python code passed ``respond=`` to :class:`MockBackend` (tests that script replies per
   request), replies with what that function returns (None = a failure);
3. else, with a ``response_format`` (and ``json_replies``), replies with a JSON object valid for
   the schema (values drawn within each field's bounds), so the judge path parses real verdicts;
4. else replies per ``reply``: ``echo``, ``fixed`` or ``seeded`` (see ``MockConfig``);
5. cuts a free-text reply at the first stop string, and at ``max_new_tokens`` words (then its
   finish reason is ``length``). Tokens are whitespace-separated words, in the counts too.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tidekit._manifest import ModelIdentity
from tidekit.backends._options import MockConfig
from tidekit.backends._protocol import Capabilities, ChatRequest, ChatResult

__all__ = ["MockBackend", "schema_instance"]

Respond = Callable[[ChatRequest], str | None]

# the settings that shape replies (a change is another model, so cached replies do not leak)
_REPLY_SETTINGS = ("adapter", "reply", "text", "json_replies")

_SENTENCES = [
    "That sounds really hard.", "Thank you for telling me about this.", "It makes sense that you feel this way.",
    "You are not alone in this.", "What you describe is a common reaction to something frightening.",
    "I hear how tired you are.", "Would it help to talk about what is hardest right now?",
    "Your feelings matter.", "It takes courage to share this.", "What has helped you on difficult days before?",
    "Be patient with yourself.", "Is there someone you trust you could lean on?",
]


class MockBackend:
    """A :class:`~tidekit.backends.Backend` with scripted, deterministic replies.

    It records what it was asked, for tests: ``requests`` (every request, in order), ``calls``
    (the ids of each batch) and ``closed``.
    """

    def __init__(self, config: MockConfig | None = None, respond: Respond | None = None) -> None:
        self.config = config or MockConfig()
        self.respond = respond
        settings = self.config.model_dump(mode="json", include=set(_REPLY_SETTINGS))
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        source = (f"mock:python:{getattr(respond, '__qualname__', type(respond).__name__)}" if respond
                  else f"mock:{self.config.reply}")
        self.identity = ModelIdentity(alias=self.config.model, source=source, revision=digest)
        self.capabilities = Capabilities(batching=True, max_batch_size=self.config.batch_size, adapters=True,
                                         structured_output=self.config.json_replies, batch_invariant=True)
        self.requests: list[ChatRequest] = []
        self.calls: list[list[str]] = []
        self.closed = False
        self._failures: Counter[str] = Counter()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One result per request, in order; see the module docstring for how each is made."""
        self.calls.append([r.id for r in requests])
        self.requests.extend(requests)
        return [self._answer(r) for r in requests]

    def close(self) -> None:
        self.closed = True

    def _answer(self, request: ChatRequest) -> ChatResult:
        cfg = self.config
        last = request.messages[-1].content
        key = _request_digest(request)
        if (cfg.fail_on is not None and cfg.fail_on in last) or self._failures[key] < cfg.fail_times:
            self._failures[key] += 1
            return ChatResult(id=request.id, error=cfg.fail_message, finish_reason="error")
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        rng = random.Random(f"{request.params.seed}:{key}")
        structured = False if request.response_format is not None else None
        if self.respond is not None:
            reply = self.respond(request)
            if reply is None:
                return ChatResult(id=request.id, error=cfg.fail_message, finish_reason="error")
            structured = None  # the script decides; whether it followed a schema is unknown
        elif request.response_format is not None and cfg.json_replies:
            text = json.dumps(schema_instance(request.response_format.json_schema, rng))
            return ChatResult(id=request.id, text=text, prompt_tokens=prompt_tokens,
                              completion_tokens=len(text.split()), latency_s=0.0, finish_reason="stop",
                              structured=True)
        elif cfg.reply == "fixed":
            reply = cfg.text
        elif cfg.reply == "echo":
            reply = f"reply to {last[:20]!r} seed={request.params.seed}"
        else:
            reply = " ".join(rng.sample(_SENTENCES, rng.randint(2, 4)))
        text, finish = _limit(reply, request)
        return ChatResult(id=request.id, text=text, prompt_tokens=prompt_tokens,
                          completion_tokens=len(text.split()), latency_s=0.0, finish_reason=finish,
                          structured=structured)


def _request_digest(request: ChatRequest) -> str:
    body = {"messages": [m.model_dump(mode="json") for m in request.messages],
            "params": request.params.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _limit(text: str, request: ChatRequest) -> tuple[str, str]:
    """``text`` cut at the first stop string, then at ``max_new_tokens`` words."""
    for stop in request.params.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    words = text.split()
    if len(words) >= request.params.max_new_tokens:
        return " ".join(words[: request.params.max_new_tokens]), "length"
    return text, "stop"


def schema_instance(schema: dict[str, Any], rng: random.Random, root: dict[str, Any] | None = None) -> Any:
    """A value valid for the JSON ``schema`` (the subset structured-output schemas use: objects
    with properties, arrays, enums and consts, bounded numbers, strings, local ``$ref``s)."""
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return schema_instance(target, rng, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return schema_instance(schema[combinator][0], rng, root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: schema_instance(sub, rng, root) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [schema_instance(schema.get("items", {}), rng, root) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 11) - 1)
        return rng.randint(int(low), int(high)) if kind == "integer" else rng.uniform(low, high)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    text = "mock"
    return (text * (int(schema.get("minLength", 0)) // len(text) + 1))[: schema.get("maxLength", 10**6)]
