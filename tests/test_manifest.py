"""Run records: written atomically, also when the run fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidekit._manifest import RunRecorder, read_manifest


def test_manifest_records_steps_counts_and_versions(tmp_path: Path) -> None:
    with RunRecorder(tmp_path, command="test", config={"a": 1}, seed=4) as run:
        with run.step("one"):
            pass
        run.counts["items"] = 3
    m = read_manifest(tmp_path)
    assert (m.status, m.seed, m.config, m.counts) == ("finished", 4, {"a": 1}, {"items": 3})
    assert [s.name for s in m.steps] == ["one"] and m.wall_s is not None
    assert "pydantic" in m.packages and m.python
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_run_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(ValueError), RunRecorder(tmp_path, command="test") as run, run.step("boom"):
        raise ValueError("bad thing")
    m = read_manifest(tmp_path / "manifest.json")
    assert m.status == "failed" and "bad thing" in (m.error or "")
    assert [s.name for s in m.steps] == ["boom"]
