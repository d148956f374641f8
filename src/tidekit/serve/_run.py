"""Load a backend and run the server with uvicorn until interrupted."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import Field

from tidekit._config import StrictModel
from tidekit.backends import BackendConfig, load_backend

__all__ = ["ServeConfig", "serve"]


class ServeConfig(StrictModel):
    """What ``tidekit serve`` runs."""

    backend: BackendConfig = Field(default_factory=BackendConfig, description="The model to serve.")
    name: str | None = Field(default=None, description="Model name clients ask for; default: the alias.")
    host: str = Field(default="127.0.0.1", description="Interface to listen on (0.0.0.0 exposes it).")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port.")
    max_tokens: int = Field(default=256, ge=1, le=32768, description="Reply length when a request sets none.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0,
                               description="Temperature when a request sets none: 1.0 as OpenAI's API (sampled, "
                                           "a fresh seed per request unless it sends one); 0 makes greedy, "
                                           "reproducible replies the default.")
    safety: bool = Field(default=False,
                         description="Crisis guardrail: when a user message shows crisis content (the crisis screen "
                                     "of tidekit.safety), the reply carries crisis resources (appended if the "
                                     "model's reply lacks them), the response is marked (header X-Tidekit-Safety) "
                                     "and the event is logged without the message text. See docs/safety.md.")
    max_batch: int | None = Field(default=None, ge=1, le=1024,
                                  description="Rows (choices) decoded together in one batch; requests queued while "
                                              "a batch decodes join the next one. Default: the backend's batch_size.")
    max_queue: int = Field(default=256, ge=0, le=100_000,
                           description="Requests that may wait for a batch; past it a request gets 429 with "
                                       "Retry-After.")
    request_timeout: float = Field(default=600.0, gt=0, le=86_400,
                                   description="Seconds a request may take, queued and decoding; past it its row "
                                               "leaves the batch and it gets 504.")
    max_body_bytes: int | None = Field(default=None, ge=1024, le=2**31,
                                       description="Largest request body; a larger one gets 413 before it is read. "
                                                   "Default: 64 bytes per token of the model's context, at least "
                                                   "1 MiB.")


def serve(config: ServeConfig, on_ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Load the model and serve it (blocks until Ctrl-C).

    ``on_ready`` is called once the socket listens, with ``{"base_url", "model", "host", "port",
    "pid"}`` (what ``tidekit serve --json`` prints), so a script can wait for it.
    """
    import uvicorn

    from tidekit.serve._app import create_app

    backend = load_backend(config.backend)
    name = config.name or backend.identity.alias
    app = create_app(backend, name, default_max_tokens=config.max_tokens,
                     default_temperature=config.temperature, safety=config.safety, max_batch=config.max_batch,
                     max_queue=config.max_queue, request_timeout=config.request_timeout,
                     max_body_bytes=config.max_body_bytes)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready({"base_url": f"http://{config.host}:{config.port}/v1", "model": name, "host": config.host,
                      "port": config.port, "pid": os.getpid()})

    watcher = threading.Thread(target=announce, daemon=True)
    watcher.start()
    try:
        server.run()
    finally:
        server.should_exit = True
        watcher.join(timeout=1)
        backend.close()
