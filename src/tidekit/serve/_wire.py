"""The bodies ``tidekit serve`` answers with, in OpenAI's shapes: chat completions (whole and
chunks), completions, responses, their usage and log-probabilities. Pure functions of results,
so the routes stay short and the shapes are tested in one place."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tidekit.backends import ChatResult, TokenLogprob

__all__ = [
    "chat_chunk",
    "chat_logprobs",
    "chat_reply",
    "completion_chunk",
    "completion_reply",
    "responses_reply",
    "sse",
    "usage",
]


def sse(body: dict[str, Any] | str) -> str:
    """One server-sent event."""
    return f"data: {body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)}\n\n"


def usage(results: Sequence[ChatResult]) -> dict[str, int]:
    """Token counts of a request: the prompt once per distinct prompt row, every completion."""
    prompt = sum(r.prompt_tokens or 0 for r in _distinct_prompts(results))
    completion = sum(r.completion_tokens or 0 for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _distinct_prompts(results: Sequence[ChatResult]) -> list[ChatResult]:
    # n choices of one prompt share it; the rows carry ids "<request id>/<prompt index>/<choice>"
    seen: dict[str, ChatResult] = {}
    for r in results:
        seen.setdefault(r.id.rsplit("/", 1)[0], r)
    return list(seen.values())


def finish_reason(result: ChatResult) -> str:
    return result.finish_reason if result.finish_reason in ("stop", "length") else "stop"


def chat_logprobs(result: ChatResult) -> dict[str, Any] | None:
    if result.logprobs is None:
        return None

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {"content": [{**entry(t.token, t.logprob), "top_logprobs": [entry(a, lp) for a, lp in t.top]}
                        for t in result.logprobs], "refusal": None}


def chat_reply(request_id: str, model: str, results: Sequence[ChatResult], texts: Sequence[str]) -> dict[str, Any]:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason(r), "logprobs": chat_logprobs(r)}
                        for i, (r, text) in enumerate(zip(results, texts, strict=True))],
            "usage": usage(results)}


def chat_chunk(request_id: str, model: str, created: int, choice: int, delta: dict[str, Any],
               finish: str | None = None, include_usage: bool = False,
               extra: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [{"index": choice, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if include_usage:
        body["usage"] = None  # OpenAI's shape: null on every chunk but the last
    body.update(extra or {})
    return sse(body)


def usage_chunk(request_id: str, model: str, created: int, kind: str, results: Sequence[ChatResult]) -> str:
    return sse({"id": request_id, "object": kind, "created": created, "model": model, "choices": [],
                "usage": usage(results)})


def completion_logprobs(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """The legacy completions shape: parallel lists of tokens, their logprobs, top alternatives, offsets."""
    if logprobs is None:
        return None
    offsets, at = [], 0
    for t in logprobs:
        offsets.append(at)
        at += len(t.token)
    return {"tokens": [t.token for t in logprobs], "token_logprobs": [t.logprob for t in logprobs],
            "top_logprobs": [dict(t.top) for t in logprobs], "text_offset": offsets}


def completion_reply(request_id: str, model: str, results: Sequence[ChatResult], texts: Sequence[str]) -> dict[str, Any]:
    return {"id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "text": text, "finish_reason": finish_reason(r),
                         "logprobs": completion_logprobs(r.logprobs)}
                        for i, (r, text) in enumerate(zip(results, texts, strict=True))],
            "usage": usage(results)}


def completion_chunk(request_id: str, model: str, created: int, choice: int, text: str,
                     finish: str | None = None, include_usage: bool = False,
                     extra: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"id": request_id, "object": "text_completion", "created": created, "model": model,
                            "choices": [{"index": choice, "text": text, "finish_reason": finish, "logprobs": None}]}
    if include_usage:
        body["usage"] = None
    body.update(extra or {})
    return sse(body)


def responses_reply(request_id: str, model: str, result: ChatResult, text: str, settings: dict[str, Any],
                    text_format: dict[str, Any] | None) -> dict[str, Any]:
    """A ``response`` object of the Responses API: one assistant message of output text.

    ``settings`` echoes the sampling the server used (``temperature``, ``top_p``,
    ``max_output_tokens``), as OpenAI's response object does, so a caller can check them.
    """
    cut = result.finish_reason == "length"
    counts = usage([result])
    return {
        "id": f"resp_{request_id}", "object": "response", "created_at": int(time.time()), "model": model,
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None, "error": None,
        "output": [{"type": "message", "id": f"msg_{request_id}", "status": "incomplete" if cut else "completed",
                    "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": [],
                                                      "logprobs": []}]}],
        "usage": {"input_tokens": counts["prompt_tokens"], "output_tokens": counts["completion_tokens"],
                  "total_tokens": counts["total_tokens"], "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
        "parallel_tool_calls": False, "tool_choice": "none", "tools": [], "metadata": {}, "instructions": None,
        "text": {"format": text_format or {"type": "text"}}, "store": False, **settings,
    }
