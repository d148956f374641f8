"""The real thing: a tiny build with SmolLM2-135M on CPU, killed with SIGKILL and rerun.

The rerun must reuse every model call the killed build had finished (none recomputed: each
cached result keeps its original timestamp), finish, and write a dataset that passes
``tidekit data validate``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tidekit.data import validate_dataset

TINY = """
out: {out}
personas: {{n: 2, seed: 7}}
scenarios: {{ids: [nightmares_and_broken_sleep, survivor_guilt, hopelessness_and_burden]}}
teacher: {{kind: hf, model: smollm2-135m, batch_size: 2}}
client: {{max_new_tokens: 24, temperature: 0.8}}
supporter: {{max_new_tokens: 32, temperature: 0.7}}
regeneration: {{max_regenerations: 0, on_exhausted: keep_flagged}}
gates: {{client_words: [8, 220], supporter_words: [8, 300]}}
"""


def _rows(cache: Path) -> dict[str, float]:
    if not cache.exists():
        return {}
    try:
        with sqlite3.connect(cache, timeout=5) as db:
            return {k: t for k, t in db.execute("SELECT key, created_at FROM results")}
    except sqlite3.OperationalError:  # table not created yet
        return {}


@pytest.mark.slow
def test_smollm2_build_killed_and_rerun_recomputes_nothing_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "build"
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(out=out), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "tidekit", "build", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while len(_rows(out / "cache.sqlite")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    before = _rows(out / "cache.sqlite")
    assert 2 <= len(before) < 12 and not (out / "card.json").exists()

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _rows(out / "cache.sqlite")
    assert {k: after[k] for k in before} == before, "a finished model call was recomputed"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["counts"]["requests"] == 12
    assert len(after) == 12  # 6 conversations x 2 turns, k = 0: each request computed exactly once
    for fmt in ("tide", "jsonl", "parquet"):
        report = validate_dataset(out / fmt)
        assert report.ok, [str(p) for p in report.problems]
    assert report.summary is not None and report.summary.conversations == 6
    card = (out / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert "smollm2-135m" in card and "not clinical advice" in card
