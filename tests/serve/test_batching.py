"""The server's scheduler: concurrent requests decoded in one batch, rows that leave when their
client disconnects or their time is up, a bounded queue (429 with Retry-After), the body limit.

Fast tests drive the scheduler and app with a fake backend that records its batches; slow ones
run a real ``tidekit serve`` with SmolLM2 over loopback."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from serve.conftest import MESSAGES, MODEL, PIDS, _launch
from tidekit.backends import Capabilities, ChatRequest, ChatResult
from tidekit.data import Message
from tidekit.serve._scheduler import Job, QueueFull, Scheduler, TextStream


class _Steps:
    """A fake ``run_batch`` backend: decodes ``max_new_tokens`` steps of 10 ms per batch, records
    each batch's request ids and which rows were cancelled, and can be held before it starts."""

    def __init__(self) -> None:
        self.capabilities = Capabilities(batching=True, max_batch_size=16, context_length=2048)
        self.batches: list[list[str]] = []
        self.cancelled_rows: list[str] = []
        self.hold = threading.Event()
        self.hold.set()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return self.run_batch(requests)

    def run_batch(self, requests: Sequence[ChatRequest], prompts: Any = None, on_step: Any = None,
                  cancelled: Any = None) -> list[ChatResult]:
        self.hold.wait(10)
        self.batches.append([r.id for r in requests])
        live = set(range(len(requests)))
        tokens: dict[int, list[int]] = {i: [] for i in live}
        for _ in range(max(r.params.max_new_tokens for r in requests)):
            time.sleep(0.01)
            for i in sorted(live):
                if cancelled is not None and cancelled(i):
                    live.discard(i)
                    self.cancelled_rows.append(requests[i].id)
                    continue
                tokens[i].append(1)
                if on_step is not None:
                    on_step(i, tokens[i], False)
                if len(tokens[i]) >= requests[i].params.max_new_tokens:
                    live.discard(i)
            if not live:
                break
        return [ChatResult(id=r.id, text="x" * len(tokens[i]), prompt_tokens=1, completion_tokens=len(tokens[i]),
                           finish_reason="length") for i, r in enumerate(requests)]


def _request(rid: str, tokens: int) -> ChatRequest:
    from tidekit.backends import GenerationParams

    return ChatRequest(id=rid, messages=[Message(role="user", content="hi")],
                       params=GenerationParams(max_new_tokens=tokens))


async def _submit_and_wait(scheduler: Scheduler, jobs: list[tuple[str, int]]) -> list[list[ChatResult]]:
    loop = asyncio.get_running_loop()
    made = [Job(requests=[_request(rid, n)], loop=loop, events=asyncio.Queue(), deadline=time.monotonic() + 30)
            for rid, n in jobs]
    for job in made:
        scheduler.submit(job)
    out = []
    for job in made:
        while True:
            kind, _, value = await job.events.get()
            if kind == "done":
                out.append(value)
                break
    return out


def test_jobs_queued_together_share_one_batch_and_later_ones_the_next() -> None:
    backend = _Steps()
    backend.hold.clear()  # the first job starts a batch and holds it, so the next eight queue up
    scheduler = Scheduler(backend, max_batch=8, max_queue=16)  # type: ignore[arg-type]

    async def scenario() -> list[list[ChatResult]]:
        first = asyncio.ensure_future(_submit_and_wait(scheduler, [("first", 3)]))
        await asyncio.sleep(0.2)
        rest = asyncio.ensure_future(_submit_and_wait(scheduler, [(f"r{i}", 3) for i in range(10)]))
        await asyncio.sleep(0.1)
        backend.hold.set()
        return [*(await first), *(await rest)]

    results = asyncio.run(scenario())
    scheduler.close()
    assert all(r[0].completion_tokens == 3 for r in results)
    assert backend.batches[0] == ["first"]
    assert backend.batches[1] == [f"r{i}" for i in range(8)]  # max_batch rows, in arrival order
    assert backend.batches[2] == ["r8", "r9"]


def test_a_cancelled_row_leaves_at_the_next_step_and_the_others_finish() -> None:
    backend = _Steps()
    scheduler = Scheduler(backend, max_batch=8, max_queue=8)  # type: ignore[arg-type]

    async def scenario() -> tuple[float, list[ChatResult], list[ChatResult]]:
        loop = asyncio.get_running_loop()
        long = Job(requests=[_request("long", 1000)], loop=loop, events=asyncio.Queue(),
                   deadline=time.monotonic() + 60)
        short = Job(requests=[_request("short", 20)], loop=loop, events=asyncio.Queue(),
                    deadline=time.monotonic() + 60)
        scheduler.submit(long)
        scheduler.submit(short)
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        long.cancel.set()
        done_long = (await long.events.get())[2]
        elapsed = time.monotonic() - t0
        while (event := await short.events.get())[0] != "done":
            pass
        return elapsed, done_long, event[2]

    elapsed, long_results, short_results = asyncio.run(scenario())
    scheduler.close()
    assert backend.cancelled_rows == ["long"] and elapsed < 0.5
    assert short_results[0].completion_tokens == 20
    assert long_results[0].completion_tokens is not None and long_results[0].completion_tokens < 1000


def test_a_job_past_its_deadline_is_dropped_before_it_runs_and_the_queue_is_bounded() -> None:
    backend = _Steps()
    backend.hold.clear()
    scheduler = Scheduler(backend, max_batch=1, max_queue=1)  # type: ignore[arg-type]

    async def scenario() -> list[ChatResult]:
        loop = asyncio.get_running_loop()
        running = Job(requests=[_request("a", 2)], loop=loop, events=asyncio.Queue(), deadline=time.monotonic() + 9)
        scheduler.submit(running)
        await asyncio.sleep(0.2)  # now running (held)
        late = Job(requests=[_request("b", 2)], loop=loop, events=asyncio.Queue(), deadline=time.monotonic() + 0.1)
        scheduler.submit(late)
        with pytest.raises(QueueFull, match="max-queue 1"):
            scheduler.submit(Job(requests=[_request("c", 2)], loop=loop, events=asyncio.Queue(),
                                 deadline=time.monotonic() + 9))
        await asyncio.sleep(0.3)
        backend.hold.set()
        return (await late.events.get())[2]

    late_results = asyncio.run(scenario())
    scheduler.close()
    assert late_results[0].error is not None and late_results[0].error.startswith("cancelled")
    assert backend.batches == [["a"]]  # the late job never reached the backend


def test_full_queue_is_a_429_with_retry_after_in_the_envelope() -> None:
    from fastapi.testclient import TestClient

    from tidekit.serve import create_app

    client = TestClient(create_app(_Steps(), MODEL, max_queue=0))  # type: ignore[arg-type]
    response = client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, "max_tokens": 2})
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "queue_full" and response.json()["error"]["type"] == "rate_limit_error"


def test_stream_text_holds_back_a_possible_stop_string_and_half_characters() -> None:
    stream = TextStream(["END"])
    assert stream.update("Hello E") == "Hello "
    assert stream.update("Hello EN") == ""
    assert stream.update("Hello ENx") == "ENx"
    assert stream.update("Hello ENx \ufffd") == ""
    assert stream.update("Hello ENx é END more") == " é "
    assert stream.rest("Hello ENx é ") == ""


# ---- the real server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch_server() -> Iterator[str]:
    with _launch("--request-timeout", "8", "--max-batch", "16") as url:
        yield url


LONG = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]


def _chat(url: str, timeout: float = 120, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, **body},
                      timeout=timeout)


@pytest.mark.slow
def test_concurrent_clients_are_decoded_in_one_batch(batch_server: str) -> None:
    before = httpx.get(f"{batch_server}/health").json()["batches"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda s: _chat(batch_server, max_tokens=16, seed=s, temperature=0.7), range(8)))
    assert all(r.status_code == 200 for r in replies)
    assert all(r.json()["usage"]["completion_tokens"] <= 16 for r in replies)
    health = httpx.get(f"{batch_server}/health").json()
    assert health["largest_batch"] >= 4  # together, not one by one
    assert health["batches"] - before < 8


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_a_dropped_long_request_frees_the_model_for_the_next(batch_server: str, stream: bool) -> None:
    body = {"model": MODEL, "messages": LONG, "max_tokens": 1500, "temperature": 0.7, "stream": stream}
    t0 = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        if stream:
            with httpx.stream("POST", f"{batch_server}/v1/chat/completions", json=body,
                              timeout=httpx.Timeout(3, read=0.5)) as response:
                for _ in response.iter_lines():
                    if time.monotonic() - t0 > 3:
                        raise httpx.ReadTimeout("gave up after 3 s")
        else:
            httpx.post(f"{batch_server}/v1/chat/completions", json=body, timeout=3)
    t1 = time.monotonic()
    reply = _chat(batch_server, max_tokens=4, temperature=0)
    waited = time.monotonic() - t1
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 4
    # the acceptance figure is 2 s (benchmarks/serve.py measures it); the shared test machine gets slack
    assert waited < 6, f"the next request waited {waited:.1f} s"
    assert httpx.get(f"{batch_server}/health").json()["running"] == 0


@pytest.mark.slow
def test_request_timeout_is_a_504_and_frees_the_row(batch_server: str) -> None:
    t0 = time.monotonic()
    response = _chat(batch_server, max_tokens=1500, temperature=0.7, messages=LONG)
    assert response.status_code == 504 and response.json()["error"]["code"] == "request_timeout"
    assert time.monotonic() - t0 < 20
    assert _chat(batch_server, max_tokens=2, temperature=0).status_code == 200


@pytest.mark.slow
def test_a_20_mb_body_is_refused_within_a_second_without_memory_growth(batch_server: str) -> None:
    import psutil

    process = psutil.Process(PIDS[batch_server])
    before = process.memory_info().rss
    port = int(batch_server.rsplit(":", 1)[1])
    size = 20 * 2**20
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t0 = time.monotonic()
        sock.sendall(head + b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "')

        def rest() -> None:
            with __import__("contextlib").suppress(OSError):
                sock.sendall(b"a" * size)

        threading.Thread(target=rest, daemon=True).start()
        status = sock.recv(64).split(b"\r\n")[0]
        elapsed = time.monotonic() - t0
    assert status.startswith(b"HTTP/1.1 413"), status
    assert elapsed < 1.0, elapsed
    # no Content-Length (chunked): counted as it arrives, refused at the limit
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"a" * 2**20
    t0 = time.monotonic()
    try:
        chunked = httpx.post(f"{batch_server}/v1/chat/completions", content=chunks(), timeout=10,
                             headers={"content-type": "application/json"})
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "body_too_large"
    except httpx.WriteError:
        pass  # the server answered 413 and closed while the client was still sending
    assert time.monotonic() - t0 < 5
    assert (process.memory_info().rss - before) / 2**20 < 100
    assert httpx.get(f"{batch_server}/health").status_code == 200
