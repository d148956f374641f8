"""A real ``tidekit serve`` with SmolLM2 in its own process on 127.0.0.1, shared by the serve tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

MODEL = "smollm2-135m"
MESSAGES = [{"role": "system", "content": "You are a supportive listener."},
            {"role": "user", "content": "I have not slept well since the fire."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a running ``tidekit serve --model smollm2-135m``."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "serve", "--model", MODEL, "--port", str(port)],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"tidekit serve exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise RuntimeError("tidekit serve did not start within 300 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
