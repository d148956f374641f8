"""The engine every stage calls a model through: batched, cached, resumable, error-tolerant.

:func:`run_requests` orders requests longest first (similar lengths share a batch, so little
padding is computed), cuts them into batches the backend can take, skips every request whose
result is in the cache, commits each finished batch to the cache in one transaction, records a
failed request as that request's error instead of stopping, and stops (raising) once more than
``max_errors`` have failed.

The schedule is fixed: the batches are a function of the whole request list alone (order, then
the backend's batch size), never of what is cached. A batch whose results are all cached is
skipped; a batch with any missing request is recomputed whole, with the composition the
uninterrupted run gave it, and its cached rows are checked against the recomputed ones (a
difference is reported in :class:`RunStats`, the cached row is kept). So a run killed and rerun,
or sharded on Ray (whose shards are schedule batches), computes every request in the batch the
uninterrupted run computed it in. Backends that are also batch-invariant
(``Capabilities.batch_invariant``: ``hf`` with ``reproducible: true``) give the same outputs in
any batch, so ``--limit`` and the batch size do not change them either.

Keys: sha256 of (model identity, messages, parameters, seed). Sampled requests get their own
seed, derived from the parameters' seed and the request id, so a sampled output does not
depend on which other requests shared its batch; greedy requests ignore the seed (it is not in
their key).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tidekit._manifest import ModelIdentity
from tidekit.backends import Backend, ChatRequest, ChatResult
from tidekit.errors import BackendError
from tidekit.generation._cache import ResultCache

__all__ = ["RunStats", "TooManyErrors", "batch_plan", "request_key", "request_seed", "run_requests",
           "schedule_digest"]

KEY_VERSION = 1


class TooManyErrors(BackendError):
    """More requests failed than ``max_errors`` allows; finished work is cached."""


def request_seed(request: ChatRequest) -> int | None:
    """The seed a request is decoded with: None when greedy, else derived from (seed, id)."""
    if request.params.temperature == 0:
        return None
    base = request.params.seed if request.params.seed is not None else 0
    digest = hashlib.sha256(f"{base}:{request.id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def request_key(identity: ModelIdentity, request: ChatRequest) -> str:
    """The cache key of ``request`` on the model ``identity``."""
    params = request.params.model_dump(mode="json", exclude={"seed"})
    payload = {
        "v": KEY_VERSION,
        "model": identity.model_dump(mode="json", exclude={"role"}),
        "messages": [m.model_dump(mode="json") for m in request.messages],
        "params": params,
        "seed": request_seed(request),
    }
    # added only when set, so the keys of requests without them stay what they were
    if request.response_format is not None:
        payload["response_format"] = request.response_format.model_dump(mode="json")
    if request.logprobs:
        payload["logprobs"] = request.logprobs
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _size(request: ChatRequest) -> int:
    return sum(len(m.content) for m in request.messages)


def batch_plan(requests: Sequence[ChatRequest], batch_size: int) -> list[list[int]]:
    """Indices of ``requests`` grouped into batches: longest first, deterministic."""
    order = sorted(range(len(requests)), key=lambda i: (-_size(requests[i]), i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def schedule_digest(requests: Sequence[ChatRequest], plan: Sequence[Sequence[int]]) -> str:
    """sha256 of the schedule: the request ids of each batch, in order (recorded in manifests)."""
    ids = [[requests[i].id for i in batch] for batch in plan]
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


@dataclass
class RunStats:
    """What :func:`run_requests` did with its schedule (pass one in to have it filled)."""

    batch_size: int = 0  # requests per schedule batch
    batches: int = 0  # batches in the schedule
    computed_batches: int = 0  # batches sent to the backend (the others were all cached)
    schedule: str = ""  # schedule_digest of the plan
    checked: int = 0  # cached results recomputed because their batch had a missing request
    mismatched: list[str] = field(default_factory=list)  # ids of those whose recomputed output differed


def _batch_size(backend: Backend) -> int:
    caps = backend.capabilities
    if caps.batching:
        return max(1, caps.max_batch_size)
    return max(1, caps.concurrency) * 4  # enough to keep every connection busy between commits


def run_requests(
    backend: Backend,
    requests: Sequence[ChatRequest],
    *,
    cache: str | Path | None = None,
    progress: bool | str = True,
    max_errors: int | None = None,
    stats: RunStats | None = None,
) -> list[ChatResult]:
    """Answer ``requests`` with ``backend``; results in the same order.

    ``cache``: SQLite file of finished results (created if absent; None keeps them in memory).
    ``progress``: show a progress bar (a string sets its label). ``max_errors``: raise
    :class:`TooManyErrors` as soon as more requests than this have failed (None: never).
    ``stats``: filled with the schedule and the checks of cached rows (see :class:`RunStats`).
    """
    stats = stats if stats is not None else RunStats()
    seeded = [r if r.params.temperature == 0 else
              r.model_copy(update={"params": r.params.model_copy(update={"seed": request_seed(r)})})
              for r in requests]
    keys = [request_key(backend.identity, r) for r in requests]
    store = ResultCache(cache)
    try:
        found = store.get_many(keys)
        results: list[ChatResult | None] = [
            found[k].model_copy(update={"id": r.id}) if k in found else None for k, r in zip(keys, requests, strict=True)
        ]
        bar = _progress_bar(progress, len(requests), sum(r is not None for r in results))
        errors: list[ChatResult] = []
        generated_tokens, t0 = 0, time.perf_counter()
        plan = batch_plan(requests, _batch_size(backend))
        stats.batch_size, stats.batches, stats.schedule = _batch_size(backend), len(plan), schedule_digest(requests, plan)
        try:
            for batch in plan:
                if all(results[i] is not None for i in batch):
                    continue
                # the whole batch, cached rows too, so every row sees the batch the schedule gave
                # it; identical requests run once
                todo: dict[str, int] = {}  # key -> first index of it in the batch
                for i in batch:
                    todo.setdefault(keys[i], i)
                stats.computed_batches += 1
                answers = backend.generate([seeded[i] for i in todo.values()])
                if len(answers) != len(todo):
                    raise BackendError(f"backend {backend.identity.alias} returned {len(answers)} results for "
                                       f"{len(todo)} requests; this is a bug in that backend")
                finished = []
                by_key = dict(zip(todo, answers, strict=True))
                for key, answer in by_key.items():
                    if key in found:  # checked, not overwritten
                        stats.checked += 1
                        if (answer.error, answer.text) != (None, found[key].text):
                            stats.mismatched.append(requests[todo[key]].id)
                    elif answer.error is None:
                        finished.append((key, backend.identity.alias, answer))
                        generated_tokens += answer.completion_tokens or 0
                store.put_many(finished)
                done = 0
                for i in batch:
                    if results[i] is None and keys[i] in by_key:
                        answer = by_key[keys[i]].model_copy(update={"id": requests[i].id})
                        results[i] = answer
                        done += 1
                        if answer.error is not None:
                            errors.append(answer)
                if bar is not None:
                    rate = generated_tokens / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix_str(f"{rate:,.0f} tok/s, {len(errors)} errors", refresh=False)
                    bar.update(done)
                if max_errors is not None and len(errors) > max_errors:
                    raise TooManyErrors(_too_many(errors, max_errors))
        finally:
            if bar is not None:
                bar.close()
    finally:
        store.close()
    return [r for r in results if r is not None]


def _too_many(errors: Sequence[ChatResult], max_errors: int) -> str:
    shown = "; ".join(f"{e.id}: {e.error}" for e in errors[:3])
    return (f"{len(errors)} request(s) failed, more than max_errors={max_errors}, so the run stopped. First: "
            f"{shown}. Finished results are cached: fix the cause and rerun to resume, or allow more "
            "failures with --max-errors.")


def _progress_bar(progress: bool | str, total: int, initial: int):
    if progress is False or total == 0:
        return None
    from tqdm.auto import tqdm

    label = progress if isinstance(progress, str) else "generating"
    return tqdm(total=total, initial=initial, desc=label, unit="req", dynamic_ncols=True, mininterval=0.5)
