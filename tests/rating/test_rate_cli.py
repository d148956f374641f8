"""``tidekit rate``: create from files, status, simulate, export, token; clean errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tidekit.data import Dataset, GenerationRecord, sample_path, write_generations

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "tidekit" / "rating" / "study.example.yaml"


def test_create_status_simulate_export(run_cli: Callable[..., Any], tmp_path: Path,
                                       generations: list[GenerationRecord], dataset: Dataset) -> None:
    write_generations(tmp_path / "gens", generations)
    db = tmp_path / "ratings.db"
    args = ["rate", "create", EXAMPLE, "--dataset", sample_path(), "--generations", tmp_path / "gens",
            "--db", db, "split=null", "items_per_rater=6", "ratings_per_item=2"]
    first = run_cli(*args)
    assert first.code == 0, first.err
    assert "admin token (shown once)" in first.out and "30 items from 10 conversations" in first.out
    again = run_cli(*args, "--json")
    assert again.code == 0 and json.loads(again.out)["created"] is False
    assert json.loads(again.out)["admin_token"] is None
    sim = run_cli("rate", "simulate", "--db", db, "--raters", "2", "--seed", "3", "planted=[]")
    assert sim.code == 0 and "added 2 simulated raters" in sim.out, sim.err
    status = run_cli("rate", "status", "--db", db, "--json")
    assert status.code == 0 and json.loads(status.out)["ratings"] == 12
    out = tmp_path / "export" / "ratings.csv"
    exported = run_cli("rate", "export", "--db", db, "--out", out)
    assert exported.code == 0 and "wrote 16 ratings" in exported.out
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["command"] == "rate export" and manifest["counts"]["rows"] == 16
    token = run_cli("rate", "token", "--db", db)
    assert token.code == 0 and len(token.out.strip()) >= 24


def test_errors_are_clean(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    missing = run_cli("rate", "export", "--db", tmp_path / "none.db", "--out", tmp_path / "x.csv")
    assert missing.code == 1 and "no rating database" in missing.err and "Traceback" not in missing.err
    bad = run_cli("rate", "create", "--dataset", sample_path(), "--db", tmp_path / "r.db", "ratings_per_item=0",
                  "colour=blue")
    assert bad.code == 2 and "colour" in bad.err and "ratings_per_item" in bad.err
    fmt = run_cli("rate", "export", "--db", tmp_path / "r.db", "--out", tmp_path / "x.txt")
    assert fmt.code != 0 and "Traceback" not in fmt.err


def test_release_frees_idle_slots_and_keeps_ratings_unless_asked(
        run_cli: Callable[..., Any], tmp_path: Path, make_study: Callable[..., tuple[str, str]]) -> None:
    from tidekit.rating import RatingStore

    db, _ = make_study(str(tmp_path / "ratings.db"))
    store = RatingStore.open(db)
    try:
        idle, _, _ = store.register_rater()
        _, tok, _ = store.register_rater()
        rater = store.rater_for_session(tok)
        assert rater is not None
        store.save_demographics(rater.id, dict.fromkeys(
            ("age_group", "gender", "education", "race_ethnicity", "mh_support_experience"), "prefer_not_to_say"))
        item = store.next_item(rater)
        assert item is not None
        store.submit_rating(rater, item.assignment_id, dict.fromkeys(
            ("empathy", "emotion_recognition", "distress_normalization", "supportive_reflection"), 4))
        fresh, _, _ = store.register_rater()
    finally:
        store.close()
    time.sleep(1.3)
    dry = run_cli("rate", "release", "--db", db, "--idle-min", "0.02", "--dry-run", "--json")
    assert dry.code == 0 and json.loads(dry.out)["released"] == [idle, fresh], dry.err
    out = run_cli("rate", "release", "--db", db, "--idle-min", "0.02")
    assert out.code == 0 and "freed 2 slot(s)" in out.out and "ratings kept" in out.out
    status = json.loads(run_cli("rate", "status", "--db", db, "--json").out)
    assert status["slots_released"] == 2 and status["bundles_claimed"] == 1 and status["ratings"] == 1
    assert "1 unfinished" in run_cli("rate", "status", "--db", db).out
    both = run_cli("rate", "release", "--db", db, "--idle-min", "0.02", "--with-ratings", "--json")
    assert len(json.loads(both.out)["released"]) == 1
    status = json.loads(run_cli("rate", "status", "--db", db, "--json").out)
    assert status["ratings"] == 0 and status["slots_free"] == status["bundles"] and status["slots_released"] == 3
    assert run_cli("rate", "release", "--db", tmp_path / "none.db").code == 1


def test_json_outputs_of_simulate_export_token_and_serve(run_cli: Callable[..., Any], tmp_path: Path,
                                                         generations: list[GenerationRecord]) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    write_generations(tmp_path / "gens", generations)
    db = tmp_path / "ratings.db"
    assert run_cli("rate", "create", EXAMPLE, "--dataset", sample_path(), "--generations", tmp_path / "gens",
                   "--db", db, "split=null", "items_per_rater=6", "ratings_per_item=2").code == 0
    sim = run_cli("rate", "simulate", "--db", db, "--raters", "2", "--seed", "3", "planted=[]", "--json")
    assert sim.code == 0 and json.loads(sim.out)["raters"] == 2
    exported = run_cli("rate", "export", "--db", db, "--out", tmp_path / "r.csv", "--json")
    assert exported.code == 0 and json.loads(exported.out)["rows"] == 16
    token = run_cli("rate", "token", "--db", db, "--json")
    assert token.code == 0 and len(json.loads(token.out)["admin_token"]) >= 24
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tidekit", "rate", "serve", "--db", str(db), "--port", str(port),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())  # printed once the socket listens
        assert line["port"] == port and line["url"] == f"http://127.0.0.1:{port}/"
        import httpx

        assert httpx.get(line["url"] + "healthz", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _run_folder(root: Path, generations: list[GenerationRecord]) -> Path:
    """A study run folder's generations/: one sub-folder per system, as 'tidekit run' writes it."""
    from tidekit._layout import RunLayout

    layout = RunLayout(root)
    for cond in ("zero_shot", "fine_tuned"):
        write_generations(layout.generations("smollm2-135m", cond), [g for g in generations if g.condition == cond])
    return layout.generations_root


def test_create_takes_a_run_folders_generations_of_one_folder_per_system(
        run_cli: Callable[..., Any], tmp_path: Path, generations: list[GenerationRecord]) -> None:
    """docs/rating.md step 1 (`--generations runs/quickstart/generations`) said 'no generations file'."""
    gens = _run_folder(tmp_path / "run", generations)
    assert not (gens / "generations.jsonl").exists()
    result = run_cli("rate", "create", EXAMPLE, "--dataset", sample_path(), "--generations", gens,
                     "--db", tmp_path / "ratings.db", "split=null", "--json")
    assert result.code == 0, result.err
    systems = json.loads(result.out)["systems"]
    assert systems == {"reference": 10, "smollm2-135m:fine_tuned": 10, "smollm2-135m:zero_shot": 10}


def test_a_folder_without_generations_anywhere_says_what_to_give(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "empty" / "not-a-system").mkdir(parents=True)
    result = run_cli("rate", "create", "--dataset", sample_path(), "--generations", tmp_path / "empty",
                     "--db", tmp_path / "ratings.db")
    assert result.code != 0 and "Traceback" not in result.err
    assert "no generations.jsonl in this folder or in its sub-folders" in result.err
