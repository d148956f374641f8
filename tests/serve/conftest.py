"""A real ``tidekit serve`` with SmolLM2 in its own process on 127.0.0.1, shared by the serve tests."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

MODEL = "smollm2-135m"
PIDS: dict[str, int] = {}  # base URL -> pid of the tidekit serve process answering there
MESSAGES = [{"role": "system", "content": "You are a supportive listener."},
            {"role": "user", "content": "I have not slept well since the fire."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _launch(*extra: str) -> Iterator[str]:
    """Run ``tidekit serve --model smollm2-135m`` (plus ``extra``) on a free port; yield its base URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "serve", "--model", MODEL, "--port", str(port),
                             "--json", *extra], env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # --json prints one line once the socket listens; nothing else goes to stdout
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        if not ready:
            raise RuntimeError("tidekit serve --json said nothing within 300 s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tidekit serve exited ({proc.wait()}) before it listened")
        announced = json.loads(line)
        assert announced == {"base_url": f"{url}/v1", "model": MODEL, "host": "127.0.0.1", "port": port,
                             "pid": proc.pid}, announced
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # it listens already
        PIDS[url] = proc.pid
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a running ``tidekit serve --model smollm2-135m``."""
    with _launch() as url:
        yield url


@pytest.fixture(scope="module")
def safe_server() -> Iterator[str]:
    """Base URL of a running ``tidekit serve --model smollm2-135m --safety`` (the crisis guardrail on)."""
    with _launch("--safety") as url:
        yield url
