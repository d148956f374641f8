"""``tidekit generate``: answer a dataset split with a model, cached and resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tidekit.cli._backend_options import backend_flags, backend_options
from tidekit.cli._common import (
    echo_json,
    example,
    json_option,
    overrides_argument,
    progress_option,
    stdout_console,
    stdout_to_stderr,
)

__all__ = ["COMMANDS"]


@click.command("generate", **example(
    "tidekit generate --model smollm2-135m --data runs/split --split test --out runs/gen/smollm2",
    "tidekit generate --model smollm2-135m --adapter runs/ft/adapter --data runs/split --out runs/gen/ft "
    "--limit 50",
    "tidekit generate --backend openai --base-url http://127.0.0.1:8000/v1 --model smollm2-135m "
    "--data runs/split --out runs/gen/remote",
    "tidekit generate --model smollm2-135m --data runs/split --out runs/gen/ray --ray local --replicas 2"))
@click.option("--data", required=False, type=click.Path(path_type=Path), help="Dataset folder (any layout).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--split", default=None, type=click.Choice(["train", "validation", "test", "all"]),
              help="Split to answer. [test]")
@click.option("--limit", type=int, default=None, help="Only the first N conversations (by id).")
@click.option("--max-new-tokens", type=int, default=None, help="Longest reply in tokens. [256]")
@click.option("--temperature", type=float, default=None, help="0 = greedy (default); > 0 samples.")
@click.option("--seed", type=int, default=None, help="Seed; each sampled request derives its own. [0]")
@click.option("--max-errors", type=int, default=None,
              help="Stop once more than this many requests failed (failures are recorded). [0]")
@click.option("--cache", default=None, type=click.Path(), help="Result cache file. [OUT/cache.sqlite]")
@click.option("--check-reproducible", type=click.IntRange(min=0), default=None, metavar="N",
              help="After the run, recompute N of its results in fresh batches and report how many equal the "
                   "stored ones (manifest extra.reproducible_check). [0]")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML config (GenerateConfig); options and KEY=VALUE override it.")
@progress_option
@json_option("the GenerateResult (records, cached, errors, tokens, wall time)")
@click.option("--ray", "ray_address", default=None, metavar="local|ADDRESS",
              help="Run the model on Ray actors: 'local' starts a private Ray instance on loopback; an address "
                   "joins a cluster (see docs/scale.md). Needs tidekit[ray].")
@click.option("--replicas", type=click.IntRange(min=1), default=None,
              help="Backend replicas on Ray (one per GPU or CPU worker). [2]")
@backend_options
@overrides_argument
def generate_cmd(data: Path | None, out: Path, config_path: Path | None, progress: bool, as_json: bool,
                 overrides: tuple[str, ...], **options: Any) -> None:
    """Generate one reply per conversation of a split and write OUT/generations.jsonl + manifest.json.

    Conversations are batched longest first; every finished batch is committed to a SQLite
    cache, so rerunning the same command skips finished work and a killed run resumes. A failed
    request is recorded in its record; more than --max-errors failures stop the run (exit 1).
    The prompt is tidekit's trauma-informed responder prompt (see docs/generation.md).
    """
    from tidekit._config import load_config
    from tidekit.generation import GenerateConfig, generate

    flags: dict[str, Any] = {f"backend.{k}": v for k, v in backend_flags(options).items()}
    flags.update({"data": data, "split": options.get("split"), "limit": options.get("limit"),
                  "max_errors": options.get("max_errors"), "cache": options.get("cache"),
                  "params.max_new_tokens": options.get("max_new_tokens"),
                  "params.temperature": options.get("temperature"), "params.seed": options.get("seed"),
                  "executor.address": options.get("ray_address"), "executor.replicas": options.get("replicas"),
                  "check_reproducible": options.get("check_reproducible")})
    if options.get("ray_address") is not None:
        flags["executor.kind"] = "ray"
    config = load_config(GenerateConfig, config_path, overrides, flags=flags)
    with stdout_to_stderr(as_json):
        result = generate(config, out=out, progress=progress and "generate")
    if as_json:
        echo_json(result)
        return
    console = stdout_console()
    rate = (f", {result.completion_tokens / result.wall_s:,.0f} tok/s"
            if result.wall_s > 0 and result.cached == 0 else "")
    console.print(f"wrote {result.records} generations to {out / 'generations.jsonl'} ({result.cached} from cache, "
                  f"{result.errors} failed; {result.completion_tokens:,} tokens in {result.wall_s:.1f} s{rate})")
    if result.mismatched:
        console.print(f"warning: {result.mismatched} cached result(s) differ from their batch's recomputation "
                      "(kept the cached ones; see manifest extra.schedule.mismatched)")
    if result.check_checked:
        console.print(f"reproducible check: {result.check_matched}/{result.check_checked} results equal when "
                      "recomputed in fresh batches")


COMMANDS = [generate_cmd]
