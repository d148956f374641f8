"""A stand-in for the ``vllm`` command in tests: takes ``vllm serve`` arguments and runs
``tidekit serve`` (a real OpenAI-compatible server on loopback) with the same model, address,
served name and LoRA adapter. Not a fake of the backend: the backend under test starts it,
waits for it, talks to it over HTTP and stops it exactly as it does a real vLLM server."""

from __future__ import annotations

import argparse
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("verb", choices=["serve"])
ap.add_argument("model")
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--served-model-name", default=None)
ap.add_argument("--enable-lora", action="store_true")
ap.add_argument("--lora-modules", default=None)
ap.add_argument("--fail", action="store_true", help="exit at once (to test start-up failures)")
a = ap.parse_args()
if a.fail:
    print("fake vllm: failing on purpose: CUDA out of memory", flush=True)
    sys.exit(3)
cmd = [sys.executable, "-m", "tidekit", "serve", "--model", a.model, "--host", a.host, "--port", str(a.port),
       "--temperature", "0", "--batch-size", "8"]
name = a.served_model_name
if a.lora_modules:
    name, _, adapter = a.lora_modules.partition("=")
    cmd += ["--adapter", adapter]
if name:
    cmd += ["--name", name]
os.execv(sys.executable, cmd)
