"""``tidekit serve`` under concurrent clients, against the engine's own batch throughput, one run.

Run (from the repository root; 2-5 minutes on 2 cores, by load)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve.py              # appends to docs/benchmarks.md
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serve.py --no-append

What it measures, SmolLM2-135M on the hf backend with its defaults, greedy (temperature 0, so
the server and the engine decode the same tokens), every reply ``--tokens`` new tokens at most:

(a) the engine: ``tidekit.generation.run_requests`` on 8 requests at batch 8 in this process
    (what ``tidekit generate --batch-size 8`` runs), after a warm-up, before the server starts and
    again after it stops; the ratio is taken against the faster of the two;
(b) the server, ``tidekit serve --max-batch 32`` in its own process on loopback: 1, 8 and 32
    concurrent clients, each sending ``--rounds`` requests one after the other, with short
    (16-token) and long (``--tokens``, 64) replies: aggregate completion tokens/s (the server's
    own usage counts over the wall time of the scenario) and p50/p99 request latency;
(c) cancellation: a client asks for 1,500 tokens and gives up after 3 s (plain, then streamed);
    the time until the next 4-token request is answered;
(d) a 20 MB body: time to the 413 (first response byte, while the client is still sending) and
    the server's resident memory growth.

The acceptance ratios are printed: 8 clients vs 1 client, and 8 clients vs the engine at batch 8.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name, markdown_table, print_rows

MODEL = "smollm2-135m"
PROMPTS = [
    "Tell me, slowly and in detail, how you would help someone who cannot sleep after a flood.",
    "Write a long, gentle letter to a friend who lost their home in a fire.",
    "Describe, step by step, a calming evening routine for someone with nightmares.",
    "Explain in detail why talking about a frightening memory can help, and when it may not.",
    "Write a long story about a lighthouse keeper who helps sailors after a storm.",
    "List and explain many small things a person can do when they feel panic rising.",
    "Describe in detail a walk through a quiet forest, for someone who needs to feel safe.",
    "Write a long reflection on how communities recover after an earthquake.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def launch(max_batch: int) -> Iterator[tuple[str, int]]:
    """A ``tidekit serve`` process on a free port: (base URL, pid)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "serve", "--model", MODEL, "--port", str(port),
                             "--json", "--max-batch", str(max_batch), "--temperature", "0"],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        if not select.select([proc.stdout], [], [], 600)[0]:
            raise RuntimeError("tidekit serve did not listen within 600 s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tidekit serve exited ({proc.wait()})")
        ready = json.loads(line)
        yield f"http://127.0.0.1:{port}", int(ready["pid"])
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def engine_tok_s(batch: int, tokens: int) -> tuple[float, int]:
    """(tokens/s, tokens) of ``run_requests`` at ``batch`` on the hf backend, after a warm-up."""
    from tidekit.backends import BackendConfig, ChatRequest, GenerationParams, load_backend
    from tidekit.data import Message
    from tidekit.generation import run_requests

    backend = load_backend(BackendConfig(kind="hf", model=MODEL, batch_size=batch))
    requests = [ChatRequest(id=f"e{i}", messages=[Message(role="user", content=PROMPTS[i % len(PROMPTS)])],
                            params=GenerationParams(max_new_tokens=tokens, temperature=0.0)) for i in range(batch)]
    run_requests(backend, requests[:2], progress=False)  # warm-up
    t0 = time.perf_counter()
    results = run_requests(backend, requests, progress=False)
    wall = time.perf_counter() - t0
    backend.close()
    made = sum(r.completion_tokens or 0 for r in results)
    return made / wall, made


def scenario(url: str, clients: int, rounds: int, tokens: int) -> dict[str, float]:
    """``clients`` threads, each sending ``rounds`` requests in turn: tok/s and latencies."""
    import httpx

    def client(k: int) -> list[tuple[float, int]]:
        out = []
        with httpx.Client(timeout=600) as http:
            for r in range(rounds):
                prompt = PROMPTS[(k + r) % len(PROMPTS)]
                t0 = time.perf_counter()
                reply = http.post(f"{url}/v1/chat/completions", json={
                    "model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                    "temperature": 0})
                reply.raise_for_status()
                out.append((time.perf_counter() - t0, int(reply.json()["usage"]["completion_tokens"])))
        return out

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        done = [item for part in pool.map(client, range(clients)) for item in part]
    wall = time.perf_counter() - t0
    latencies = sorted(d for d, _ in done)
    made = sum(n for _, n in done)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return {"tok_s": made / wall, "tokens": made, "p50": statistics.median(latencies), "p99": p99, "wall": wall}


def cancellation(url: str, stream: bool) -> float:
    """Seconds until a 4-token request is answered after a 1,500-token one is dropped at 3 s."""
    import httpx

    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPTS[4]}], "max_tokens": 1500,
            "temperature": 0.7, "stream": stream}
    t0 = time.monotonic()
    with contextlib.suppress(httpx.TimeoutException):
        if stream:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body,
                              timeout=httpx.Timeout(3, read=0.5)) as response:
                for _ in response.iter_lines():
                    if time.monotonic() - t0 > 3:
                        break
        else:
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=3)
    t1 = time.monotonic()
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0})
    reply.raise_for_status()
    return time.monotonic() - t1


def big_body(url: str, pid: int) -> tuple[float, float, str]:
    """(seconds to the first response byte, RSS growth in MB, status line) for a 20 MB body."""
    import psutil

    process = psutil.Process(pid)
    before = process.memory_info().rss
    size = 20 * 2**20
    port = int(url.rsplit(":", 1)[1])
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        t0 = time.monotonic()
        sock.sendall(head + b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "')

        def rest() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(b"a" * size)

        threading.Thread(target=rest, daemon=True).start()
        status = sock.recv(64).split(b"\r\n")[0].decode()
        elapsed = time.monotonic() - t0
    time.sleep(0.5)
    return elapsed, (process.memory_info().rss - before) / 2**20, status


def main() -> int:
    from tidekit.backends._hf import tune_openmp_waits

    # before torch loads here, as ``tidekit serve`` does in its own process: both sides of the
    # comparison then spin their OpenMP threads alike (libgomp's default spin measured 3x slower
    # on the loaded 2-core machine)
    tune_openmp_waits()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64, help="new tokens of a long reply [64]")
    parser.add_argument("--rounds", type=int, default=2, help="requests each client sends in turn [2]")
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    before, engine_tokens = engine_tok_s(8, args.tokens)
    rows: list[tuple[str, str]] = []
    found: dict[tuple[int, int], dict[str, float]] = {}
    with launch(32) as (url, pid):
        scenario(url, 2, 1, 8)  # warm-up
        for tokens in (16, args.tokens):
            for clients in (1, 8, 32):
                got = found[(clients, tokens)] = scenario(url, clients, args.rounds, tokens)
                rows.append((f"serve, {clients} client(s), {tokens}-token replies",
                             f"{got['tok_s']:.1f} tok/s, p50 {got['p50']:.2f} s, p99 {got['p99']:.2f} s "
                             f"({int(got['tokens'])} tokens in {got['wall']:.1f} s)"))
        plain, streamed = cancellation(url, False), cancellation(url, True)
        rows.append(("next 4-token request after a dropped 1,500-token one (plain / streamed)",
                     f"{plain:.2f} s / {streamed:.2f} s"))
        seconds, growth, status = big_body(url, pid)
        rows.append(("20 MB body", f"{status.split(' ', 1)[1]} after {seconds:.3f} s, RSS growth {growth:.1f} MB"))
    # the engine again once the server is gone: on a shared machine the two runs can differ a lot,
    # and the comparison is made against the faster (the harder bar for the server)
    after, _ = engine_tok_s(8, args.tokens)
    engine = max(before, after)
    rows.insert(0, ("engine, run_requests at batch 8 (tidekit generate), before / after the server",
                    f"{before:.1f} / {after:.1f} tok/s ({engine_tokens} tokens each)"))
    eight, one = found[(8, args.tokens)]["tok_s"], found[(1, args.tokens)]["tok_s"]
    rows.append((f"8 clients / 1 client ({args.tokens}-token replies)", f"{eight / one:.2f}x (acceptance: >= 5x)"))
    rows.append(("8 clients / engine at batch 8 (the faster engine run)",
                 f"{100 * eight / engine:.0f}% (acceptance: >= 60%)"))
    rows.append(("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}"))
    print_rows(rows)
    if not args.no_append:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        section = (f"\n### {stamp}: `benchmarks/serve.py --tokens {args.tokens} --rounds {args.rounds}`\n\n"
                   f"Machine: {cpu_name()}.\n\n" + markdown_table(rows))
        append_to_section("## Serving", section, intro="`tidekit serve` under concurrent clients against the "
                                                       "engine's batch throughput, in one run "
                                                       "(`benchmarks/serve.py`; docs/serving.md explains the "
                                                       "scheduler).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
