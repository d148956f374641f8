"""The server's batching scheduler: requests from many clients decoded together, waves of rows.

One thread owns the backend. It takes the queued jobs (a job is one HTTP request: ``n`` rows,
or one row per prompt of ``/v1/completions``), gathers as many rows as fit ``max_batch``, and
decodes them in one batch through the backend's ``run_batch`` (the ``hf`` backend: the same
``decode_batch`` loop ``tidekit generate`` runs, each row with its own sampling parameters,
stop strings, seed and max tokens). Requests that arrive while a batch decodes wait for the next
one (a wave scheduler: the lean decoder's rows share one cache layout fixed at prefill, so a row
cannot join mid-decode without a second cache layout; see docs/serving.md for what that costs).

A row leaves its batch at the next step when its client disconnects or its ``request_timeout``
passes (``decode_batch``'s ``cancelled`` hook), so an abandoned long request frees the model at
once. The queue is bounded: :meth:`Scheduler.submit` raises :class:`QueueFull` (the app answers
429 with ``Retry-After``). Backends without ``run_batch`` (``openai``, ``anthropic``, ``mock``)
get each wave through ``generate`` (a streaming job through ``stream`` where they have it).

Results go back to the asyncio side as events on each job's queue (``loop.call_soon_threadsafe``):
``("piece", choice, text)`` while streaming, then ``("done", None, [ChatResult, ...])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tidekit.backends import Backend, ChatRequest, ChatResult

__all__ = ["Job", "QueueFull", "Scheduler", "TextStream"]

log = logging.getLogger("tidekit.serve")
GATHER_S = 0.01  # how long a batch waits, once a job is queued, for others arriving with it
# ... and at most this long while fewer rows are queued than the last batch had: clients whose
# replies just finished send their next requests within milliseconds of each other, and a batch
# started on the first of them would make the rest wait a whole batch
REGATHER_S = 0.05


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already: the client should retry later."""


@dataclass
class Job:
    """One HTTP request's rows, the way back to its handler, and whether it is still wanted."""

    requests: list[ChatRequest]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[tuple[str, int | None, Any]]
    deadline: float  # time.monotonic() after which the job is abandoned (request timeout)
    stream: bool = False
    raw_prompts: list[str] | None = None  # /v1/completions: prompts decoded without the chat template
    cancel: threading.Event = field(default_factory=threading.Event)

    def cancelled(self) -> bool:
        return self.cancel.is_set() or time.monotonic() > self.deadline

    def emit(self, kind: str, choice: int | None, value: Any) -> None:
        """Hand an event to the handler's event loop (called from the scheduler thread)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is shutting down
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, choice, value))

    def finish(self, results: Sequence[ChatResult]) -> None:
        self.emit("done", None, list(results))


class TextStream:
    """One streamed row's text: what may be sent after each step.

    Never a stop string, nor the start of one the next tokens may complete (what is sent cannot
    be taken back; the decoder cuts the final text the same way), nor half a multi-byte character.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.sent = ""

    def update(self, text: str) -> str:
        """The new piece to send given the row's whole decoded ``text`` so far ('' for none)."""
        if text.endswith("\ufffd"):
            return ""
        for stop in self.stops:
            if stop in text:
                text = text[:text.index(stop)]
        held = max((k for stop in self.stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
        text = text[:len(text) - held]
        if len(text) > len(self.sent) and text.startswith(self.sent):
            piece, self.sent = text[len(self.sent):], text
            return piece
        return ""

    def rest(self, final: str) -> str:
        """What the final text adds to what was sent."""
        return final[len(self.sent):] if final.startswith(self.sent) else ""


class Scheduler:
    """The thread that decodes queued jobs in batches (see the module docstring)."""

    def __init__(self, backend: Backend, max_batch: int, max_queue: int) -> None:
        self.backend, self.max_batch, self.max_queue = backend, max(1, max_batch), max(0, max_queue)
        self._queue: deque[Job] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.running = 0  # rows in the batch being decoded
        self.batches = 0  # batches decoded so far
        self.largest = 0  # most rows in one batch so far
        self._last_rows = 0  # rows of the last batch (how many to wait for, briefly)
        self._thread = threading.Thread(target=self._loop, name="tidekit-serve-scheduler", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, job: Job) -> None:
        """Queue ``job``; :class:`QueueFull` when ``max_queue`` jobs wait already."""
        with self._cv:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are queued already (--max-queue {self.max_queue})")
            self._queue.append(job)
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=5)

    # ---- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            if not jobs:
                continue
            self.running = self._last_rows = sum(len(j.requests) for j in jobs)
            self.batches += 1
            self.largest = max(self.largest, self.running)
            try:
                self._run_isolated(jobs)
            finally:
                self.running = 0

    def _run_isolated(self, jobs: list[Job]) -> None:
        """Decode ``jobs``; if the batch fails, each job again alone, so only a job that breaks the
        backend by itself hears of it ("failed"). Whatever is raised (a Rust panic from a native
        library is a ``BaseException``), the thread lives on: a dead scheduler would hang every
        later request."""
        try:
            self._run(jobs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            if len(jobs) > 1:
                log.warning("a batch of %d requests failed (%s: %s); decoding each alone", len(jobs),
                            type(exc).__name__, exc)
                for job in jobs:
                    if not job.cancelled():
                        self._run_isolated([job])
                    else:
                        job.finish([_abandoned(r) for r in job.requests])
                return
            log.exception("a request failed in the backend")
            jobs[0].emit("failed", None, f"{type(exc).__name__}: {exc}")

    def _take(self) -> list[Job] | None:
        """The next wave: queued jobs, in order, up to ``max_batch`` rows (None: closed)."""
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if self._closed:
                return None
            start = time.monotonic()
            while (rows := self._rows()) < self.max_batch:
                wait = REGATHER_S if rows < min(self._last_rows, self.max_batch) else GATHER_S
                left = start + wait - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            jobs: list[Job] = []
            rows = 0
            while self._queue:
                job = self._queue[0]
                if job.cancelled():
                    self._queue.popleft()
                    job.finish([_abandoned(r) for r in job.requests])
                    continue
                if jobs and rows + len(job.requests) > self.max_batch:
                    break
                jobs.append(self._queue.popleft())
                rows += len(job.requests)
            return jobs

    def _rows(self) -> int:
        return sum(len(j.requests) for j in self._queue)

    def _run(self, jobs: list[Job]) -> None:
        run_batch = getattr(self.backend, "run_batch", None)
        if run_batch is None:
            self._run_plain(jobs)
            return
        owners = [(job, k) for job in jobs for k in range(len(job.requests))]
        requests = [job.requests[k] for job, k in owners]
        encode = getattr(self.backend, "encode_text", None)
        prompts = [encode(job.raw_prompts[k]) if job.raw_prompts is not None and encode is not None else None
                   for job, k in owners]
        streams = {i: TextStream(requests[i].params.stop) for i, (job, _) in enumerate(owners) if job.stream}
        tokenizer = getattr(self.backend, "tokenizer", None)

        def on_step(i: int, token_ids: list[int], _finished: bool) -> None:
            stream = streams.get(i)
            if stream is not None and tokenizer is not None:
                piece = stream.update(str(tokenizer.decode(token_ids, skip_special_tokens=True)))
                if piece:
                    owners[i][0].emit("piece", owners[i][1], piece)

        results = run_batch(requests, prompts=prompts, on_step=on_step if streams else None,
                            cancelled=lambda i: owners[i][0].cancelled())
        start = 0
        for job in jobs:
            mine = results[start:start + len(job.requests)]
            for k, result in enumerate(mine):
                stream = streams.get(start + k)
                if stream is not None and result.text and (rest := stream.rest(result.text)):
                    job.emit("piece", k, rest)
            job.finish(mine)
            start += len(job.requests)

    def _run_plain(self, jobs: list[Job]) -> None:
        """A backend without ``run_batch``: a streaming one-row job through ``stream``, the rest
        in one ``generate`` call (remote backends spread it over their own concurrency)."""
        batch: list[Job] = []
        for job in jobs:
            stream = getattr(self.backend, "stream", None)
            if job.stream and stream is not None and len(job.requests) == 1:
                job.finish([_drain(stream(job.requests[0]), job)])
            else:
                batch.append(job)
        if not batch:
            return
        results = self.backend.generate([r for job in batch for r in job.requests])
        start = 0
        for job in batch:
            mine = results[start:start + len(job.requests)]
            for k, result in enumerate(mine):
                if job.stream and result.text:
                    job.emit("piece", k, result.text)
            job.finish(mine)
            start += len(job.requests)


def _drain(pieces: Any, job: Job) -> ChatResult:
    """Forward a backend's ``stream`` generator to ``job``; its return value is the result."""
    request = job.requests[0]
    sent: list[str] = []
    try:
        while True:
            if job.cancelled():
                pieces.close()
                return _abandoned(request)
            try:
                piece = next(pieces)
            except StopIteration as end:
                if isinstance(end.value, ChatResult):
                    return end.value
                return ChatResult(id=request.id, text="".join(sent), finish_reason="stop")
            sent.append(piece)
            job.emit("piece", 0, piece)
    except Exception as exc:  # the backend refused this request (e.g. too long a prompt): its error
        return ChatResult(id=request.id, error=str(exc), finish_reason="error")


def _abandoned(request: ChatRequest) -> ChatResult:
    return ChatResult(id=request.id, error="cancelled: the request was abandoned or timed out", finish_reason="error")
