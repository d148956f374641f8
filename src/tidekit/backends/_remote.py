"""What the two remote backends (``openai``, ``anthropic``) share: the API key, bounded
concurrency, and turning one failed call into a recorded error instead of a crash.

The official SDKs already retry 429, 5xx, connection errors and timeouts with exponential
backoff (``max_retries``); tidekit configures that rather than wrapping a second retry loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from tidekit.backends._options import RemoteConfig
from tidekit.backends._protocol import ChatRequest, ChatResult
from tidekit.errors import BackendError

__all__ = ["api_key", "run_concurrently"]


def api_key(config: RemoteConfig, default_env: str, required: bool) -> str:
    """The API key from ``config.api_key_env`` (or ``default_env``); BackendError if required and unset."""
    env = config.api_key_env or default_env
    key = os.environ.get(env, "").strip()
    if key:
        return key
    if required:
        raise BackendError(f"the {config.kind} backend needs an API key: set the environment variable {env} "
                           "(or name another one with api_key_env)")
    return "not-needed"  # local OpenAI-compatible servers accept any key


def run_concurrently(
    requests: Sequence[ChatRequest],
    call: Callable[[ChatRequest], ChatResult],
    concurrency: int,
    describe: Callable[[Exception], str],
) -> list[ChatResult]:
    """Run ``call`` on each request with at most ``concurrency`` in flight; keep order.

    An exception from one call becomes that request's error (``describe`` words it).
    """

    def one(request: ChatRequest) -> ChatResult:
        t0 = time.perf_counter()
        try:
            result = call(request)
        except Exception as exc:  # SDK errors vary by kind; every one is recorded, none is fatal
            return ChatResult(id=request.id, error=describe(exc), finish_reason="error",
                              latency_s=round(time.perf_counter() - t0, 4))
        result.latency_s = round(time.perf_counter() - t0, 4)
        return result

    if len(requests) <= 1 or concurrency <= 1:
        return [one(r) for r in requests]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(requests))) as pool:
        return list(pool.map(one, requests))
