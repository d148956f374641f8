"""Benchmark the dataset builder: overhead outside model calls, and the projected full build.

Two measurements, in one process:

1. Builder overhead at full scale: the 500 x 20 = 10,000-conversation build of
   ``configs/tide-500x20.yaml`` with an instant scripted teacher (no model), through the real
   engine and cache, so everything but the model is measured: planning, prompts, gates
   (including the dataset-wide near-duplicate index), engine bookkeeping, and writing three
   layouts, the card and the review sheet. Reported per conversation.
2. SmolLM2 on this CPU: the same config scaled down (``--personas`` x ``--scenarios``) with the
   real SmolLM2-135M teacher, giving model seconds per conversation (regenerations included)
   and the overhead share of that build.

The projection of the 10,000-conversation SmolLM2 build is model seconds per conversation x
10,000 + overhead per conversation at full scale + teacher loading. Results are appended to
docs/benchmarks.md. Run it with::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/build.py            # ~10 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/build.py --personas 2 --scenarios 4   # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# benchmarks/ is on sys.path when run as a script
from _docs import append_to_section, cpu_name

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tide-500x20.yaml"
WORDS = ["night", "sleep", "memory", "tired", "work", "family", "afraid", "alone", "angry", "quiet", "noise", "street", "car", "door", "phone", "friend", "sister", "brother", "morning", "weekend", "kitchen", "store", "crowd", "doctor", "dream", "shame", "guilt", "numb", "jumpy", "careful", "restless", "heavy", "months", "years", "lately", "again", "still", "always", "never", "maybe"]


class InstantTeacher:
    """Answers at once with varied, gate-passing text, so only the builder is timed."""

    def __init__(self) -> None:
        from tidekit._manifest import ModelIdentity
        from tidekit.backends._protocol import Capabilities

        self.identity = ModelIdentity(alias="instant-teacher", source="benchmark")
        self.capabilities = Capabilities(batching=True, max_batch_size=1024)

    def generate(self, requests: Sequence[object]) -> list[object]:
        from tidekit.backends._protocol import ChatRequest, ChatResult

        out = []
        for r in requests:
            assert isinstance(r, ChatRequest)
            rng = random.Random(r.params.seed)
            filler = " ".join(f"the {rng.choice(WORDS)} and the {rng.choice(WORDS)} are with me in the "
                              f"{rng.choice(WORDS)}." for _ in range(5))
            if r.messages[-1].role == "user" and r.messages[0].content.startswith("You write one message"):
                age = r.messages[1].content.split("-year-old")[0].split()[-1]
                text = f"I'm {age} and I feel like I am stuck. {filler}"
            else:
                text = (f"It sounds like you are carrying a lot, and that is understandable. {filler} "
                        "If you ever feel unsafe, call or text 988.")
            out.append(ChatResult(id=r.id, text=text, prompt_tokens=50, completion_tokens=60, latency_s=0.0,
                                  finish_reason="stop"))
        return out

    def close(self) -> None:
        pass


def overhead_at_scale(tmp: Path) -> dict[str, float]:
    from tidekit._config import load_config
    from tidekit.builder import BuildConfig, build_dataset

    config = load_config(BuildConfig, CONFIG, [f"out={tmp / 'scale'}"])
    t0 = time.perf_counter()
    result = build_dataset(config, backend=InstantTeacher(), progress=False)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    return {"conversations": result.conversations, "wall_s": wall, "engine_s": result.stats.model_s,
            "gates_s": result.stats.gates_s, "overhead_s": result.overhead_s,
            "overhead_per_conv_s": result.overhead_s / max(result.conversations, 1)}


def smollm2(tmp: Path, personas: int, scenarios: int) -> dict[str, float]:
    from tidekit._config import load_config
    from tidekit.builder import BuildConfig, build_dataset
    from tidekit.scenarios import load_taxonomy

    ids = list(load_taxonomy().scenario_ids)[:scenarios]
    config = load_config(BuildConfig, CONFIG, [f"out={tmp / 'smol'}", f"personas.n={personas}",
                                              f"scenarios.ids=[{','.join(ids)}]"])
    result = build_dataset(config, progress=False)
    n = max(result.planned, 1)
    return {"conversations": result.planned, "written": result.conversations, "wall_s": result.wall_s,
            "load_s": result.load_s, "model_s": result.stats.model_s, "overhead_s": result.overhead_s,
            "overhead_share": result.overhead_share, "requests": result.stats.requests,
            "model_per_conv_s": result.stats.model_s / n, "completion_tokens": result.stats.completion_tokens,
            "rejected": result.stats.turns_rejected, "accepted": result.stats.turns_accepted,
            "dropped": result.dropped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--personas", type=int, default=4)
    parser.add_argument("--scenarios", type=int, default=8)
    parser.add_argument("--no-append", action="store_true", help="Do not append to docs/benchmarks.md.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="tidekit-bench-build-"))
    try:
        scale = overhead_at_scale(tmp)
        print(f"[scale] {scale['conversations']} conversations, instant teacher: wall {scale['wall_s']:.1f} s, "
              f"engine {scale['engine_s']:.1f} s, builder overhead {scale['overhead_s']:.1f} s "
              f"({1000 * scale['overhead_per_conv_s']:.2f} ms/conversation; gates {scale['gates_s']:.1f} s)")
        smol = smollm2(tmp, args.personas, args.scenarios)
        print(f"[smollm2] {smol['conversations']} conversations ({smol['written']} written, {smol['dropped']} "
              f"dropped): wall {smol['wall_s']:.1f} s, load {smol['load_s']:.1f} s, model {smol['model_s']:.1f} s, "
              f"overhead {smol['overhead_s']:.2f} s = {100 * smol['overhead_share']:.2f}% of the build after "
              f"loading; {smol['requests']} requests, {smol['completion_tokens']} tokens, "
              f"{smol['rejected']} turns rejected")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    full_model = smol["model_per_conv_s"] * 10_000
    full_overhead = scale["overhead_per_conv_s"] * 10_000
    projected = full_model + full_overhead + smol["load_s"]
    share = full_overhead / (full_model + full_overhead)
    print(f"[projection] 10,000 conversations with SmolLM2 here: {projected / 3600:.1f} h "
          f"(model {full_model / 3600:.1f} h + builder {full_overhead / 60:.1f} min); overhead share {100 * share:.2f}%"
          f" (goal < 10%)")
    if not args.no_append:
        cmd = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/build.py" + (
            f" --personas {args.personas} --scenarios {args.scenarios}")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        machine = (f"{cpu_name()}, Python {sys.version.split()[0]}, "
                   f"load average at the end {load} (a shared machine: a higher load slows the model)")
        text = (f"\n### Dataset builder ({dt.date.today().isoformat()})\n\n"
                f"Command: `{cmd}`; machine: {machine}; config `configs/tide-500x20.yaml`.\n\n"
                "| measurement | figure |\n|---|---|\n"
                f"| builder overhead at 10,000 conversations (instant teacher, real engine + cache) | "
                f"{scale['overhead_s']:.1f} s ({1000 * scale['overhead_per_conv_s']:.2f} ms/conversation; "
                f"gates {scale['gates_s']:.1f} s, engine/cache {scale['engine_s']:.1f} s) |\n"
                f"| SmolLM2-135M build of {smol['conversations']} conversations | wall {smol['wall_s']:.1f} s "
                f"(load {smol['load_s']:.1f} s, model {smol['model_s']:.1f} s, builder {smol['overhead_s']:.2f} s)"
                f"; {smol['requests']} requests, {smol['rejected']} turns rejected, {smol['dropped']} dropped |\n"
                f"| builder overhead share, SmolLM2 build (goal < 10%) | {100 * smol['overhead_share']:.2f}% |\n"
                f"| model seconds per conversation, SmolLM2 (regenerations included) | "
                f"{smol['model_per_conv_s']:.1f} s |\n"
                f"| projected 10,000-conversation SmolLM2 build on this machine | {projected / 3600:.1f} h "
                f"(builder share {100 * share:.2f}%) |\n")
        append_to_section("## Dataset builder (`benchmarks/build.py`)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
