"""``tidekit serve``: an OpenAI-compatible chat server over a model (+ adapter)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tidekit.cli._backend_options import backend_flags, backend_options
from tidekit.cli._common import example, json_option, overrides_argument

__all__ = ["COMMANDS"]


@click.command("serve", **example(
    "tidekit serve --model smollm2-135m --port 8000",
    "tidekit serve --model smollm2-135m --adapter runs/ft/adapter --port 8001 --name smollm2-tide"))
@click.option("--port", type=int, default=None, help="TCP port. [8000]")
@click.option("--host", default=None, help="Interface. [127.0.0.1]")
@click.option("--name", default=None, help="Model name clients ask for. [the alias]")
@click.option("--temperature", type=float, default=None,
              help="Temperature of requests that send none. [1.0, as OpenAI's API; 0 = greedy]")
@click.option("--safety/--no-safety", default=None,
              help="Crisis guardrail: a reply to crisis content carries crisis resources (appended if missing), "
                   "is marked and logged (docs/safety.md). [off]")
@click.option("--max-batch", type=int, default=None,
              help="Rows decoded together; requests arriving mid-batch join the next one. [the backend's batch_size]")
@click.option("--max-queue", type=int, default=None, help="Requests that may wait; then 429 with Retry-After. [256]")
@click.option("--request-timeout", type=float, default=None,
              help="Seconds a request may take (queued + decoding); then its row leaves the batch, 504. [600]")
@click.option("--max-body-bytes", type=int, default=None,
              help="Largest request body; larger gets 413 before it is read. [64 B per context token, >= 1 MiB]")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML config (ServeConfig); options and KEY=VALUE override it.")
@json_option("one line once the server listens: {base_url, model, host, port, pid}")
@backend_options
@overrides_argument
def serve_cmd(port: int | None, host: str | None, name: str | None, temperature: float | None,
              safety: bool | None, max_batch: int | None, max_queue: int | None, request_timeout: float | None,
              max_body_bytes: int | None, config_path: Path | None, as_json: bool, overrides: tuple[str, ...],
              **options: Any) -> None:
    """Serve a model at /v1/chat/completions, /v1/completions, /v1/responses and /v1/models.

    Any OpenAI client works: base_url=http://HOST:PORT/v1, any API key. Concurrent requests are
    decoded together in batches (--max-batch rows); a client that disconnects leaves its batch
    at the next step; response_format (json_schema, json_object) is enforced by constrained
    decoding; bad requests get a 4xx in OpenAI's error envelope. As in OpenAI's API, a
    request without "temperature" samples at 1.0 with a fresh seed (send temperature 0, or
    start the server with --temperature 0, for greedy, reproducible replies); a stream cut by
    max_tokens ends with finish_reason "length"; stream_options.include_usage adds a last
    chunk with the token counts. --safety adds a crisis guardrail (docs/safety.md). Research
    software, not therapy: do not put it in front of people in distress.
    """
    from tidekit._config import load_config
    from tidekit.serve import ServeConfig, serve

    flags: dict[str, object] = {f"backend.{k}": v for k, v in backend_flags(options).items()}
    flags.update(port=port, host=host, name=name, temperature=temperature, safety=safety, max_batch=max_batch,
                 max_queue=max_queue, request_timeout=request_timeout, max_body_bytes=max_body_bytes)
    config = load_config(ServeConfig, config_path, overrides, flags=flags)
    click.echo(f"loading {config.backend.model}; serving on http://{config.host}:{config.port}/v1 "
               "(Ctrl-C stops)", err=True)
    if as_json:
        serve(config, on_ready=lambda ready: click.echo(json.dumps(ready)))
    else:
        serve(config)


COMMANDS = [serve_cmd]
