"""The ``anthropic`` backend: Claude models through the official SDK's Messages API.

The system prompt goes in the request's ``system`` field (the Messages API has no system
role); consecutive turns of the same role are merged, as the API requires alternation. The
SDK retries 429/5xx/overloaded/timeouts with backoff; the key comes from ``ANTHROPIC_API_KEY``
(or ``api_key_env``). ``base_url`` points it at a proxy or a test server. The SDK's
``messages.create`` takes no sampling parameters (temperature, top_p, seed), so none are sent.

A request's ``response_format`` becomes one tool whose ``input_schema`` is the schema, with
``tool_choice`` forcing Claude to call it; the tool call's input, as JSON, is the reply's text.
The Messages API gives no token probabilities, so ``logprobs`` is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tidekit._manifest import ModelIdentity
from tidekit.backends._options import AnthropicConfig
from tidekit.backends._protocol import Capabilities, ChatRequest, ChatResult
from tidekit.backends._remote import api_key, run_concurrently
from tidekit.errors import MissingDependencyError

__all__ = ["AnthropicBackend"]

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "stop",
           "tool_use": "stop"}


class AnthropicBackend:
    """Replies from Anthropic's Messages API."""

    def __init__(self, config: AnthropicConfig) -> None:
        try:
            import anthropic
        except ImportError:
            raise MissingDependencyError("the anthropic backend", "anthropic", "pip install 'tidekit[api]'") from None
        self.config = config
        self._anthropic = anthropic
        self.client = anthropic.Anthropic(api_key=api_key(config, "ANTHROPIC_API_KEY", required=True),
                                          base_url=config.base_url, timeout=config.timeout_s,
                                          max_retries=config.max_retries)
        self.identity = ModelIdentity(alias=config.model, source=config.base_url or "https://api.anthropic.com",
                                      role="system")
        self.capabilities = Capabilities(batching=False, max_batch_size=1, concurrency=config.concurrency,
                                         structured_output=True)

    def _call(self, request: ChatRequest) -> ChatResult:
        p = request.params
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        turns: list[dict[str, str]] = []
        for m in request.messages:
            if m.role == "system":
                continue
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"] += "\n\n" + m.content
            else:
                turns.append({"role": m.role, "content": m.content})
        # the Messages API of this SDK generation takes no temperature/top_p/seed: Claude samples
        # with its own defaults, so outputs are not reproducible (the cache makes reruns stable)
        kwargs: dict[str, Any] = {"model": self.config.model, "max_tokens": p.max_new_tokens, "messages": turns}
        if system:
            kwargs["system"] = system
        if p.stop:
            kwargs["stop_sequences"] = p.stop
        fmt = request.response_format
        if fmt is not None:
            kwargs["tools"] = [{"name": fmt.name, "description": "Record the answer in this structure.",
                                "input_schema": fmt.json_schema}]
            kwargs["tool_choice"] = {"type": "tool", "name": fmt.name}
        response = self.client.messages.create(**kwargs)
        called = [block for block in response.content if block.type == "tool_use" and fmt is not None
                  and block.name == fmt.name]
        if called:
            text = json.dumps(called[0].input, ensure_ascii=False)
        else:
            text = "".join(getattr(block, "text", "") for block in response.content if block.type == "text")
        return ChatResult(id=request.id, text=text, prompt_tokens=response.usage.input_tokens,
                          completion_tokens=response.usage.output_tokens,
                          finish_reason=_FINISH.get(response.stop_reason or "end_turn", "stop"),
                          structured=None if fmt is None else bool(called))

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, self._anthropic.APIStatusError):
            return f"Anthropic API answered {exc.status_code}: {exc.message}"
        if isinstance(exc, self._anthropic.APIConnectionError):
            return f"could not reach {self.config.base_url or 'the Anthropic API'} after retries: {exc}"
        return f"{type(exc).__name__}: {exc}"

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return run_concurrently(requests, self._call, self.config.concurrency, self._describe)

    def close(self) -> None:
        self.client.close()
