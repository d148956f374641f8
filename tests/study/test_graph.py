"""Stage graph: reruns skip finished stages; a change reruns that stage and downstream only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidekit.errors import ConfigError
from tidekit.study._graph import Stage, StageContext, plan_stages, run_stages


def _stages(root: Path, log: list[str], cfg: dict[str, int]) -> list[Stage]:
    def make(name: str) -> Stage:
        deps = {"a": (), "b": ("a",), "c": ("b",), "d": ("a",)}[name]

        def run(context: StageContext) -> dict[str, int]:
            log.append(name)
            (root / name).mkdir(parents=True, exist_ok=True)
            return {"n": cfg[name]}

        return Stage(name=name, folder=root / name, config={"x": cfg[name]}, run=run, deps=deps)

    return [make(n) for n in "abcd"]


def test_rerun_skips_and_change_reruns_downstream_only(tmp_path: Path) -> None:
    log: list[str] = []
    cfg = {"a": 1, "b": 1, "c": 1, "d": 1}
    run_stages(_stages(tmp_path, log, cfg))
    assert log == ["a", "b", "c", "d"]
    log.clear()
    outcomes = run_stages(_stages(tmp_path, log, cfg))
    assert log == [] and {o.status for o in outcomes} == {"skipped"}
    cfg["b"] = 2
    run_stages(_stages(tmp_path, log, cfg))
    assert log == ["b", "c"]


def test_killed_stage_reruns_with_its_downstream(tmp_path: Path) -> None:
    log: list[str] = []
    cfg = {"a": 1, "b": 1, "c": 1, "d": 1}
    run_stages(_stages(tmp_path, log, cfg))
    (tmp_path / "b" / ".stage.json").unlink()  # as if b was killed before finishing
    log.clear()
    run_stages(_stages(tmp_path, log, cfg))
    assert log == ["b", "c"]


def test_from_and_only_and_plan(tmp_path: Path) -> None:
    log: list[str] = []
    cfg = {"a": 1, "b": 1, "c": 1, "d": 1}
    assert [o.status for o in plan_stages(_stages(tmp_path, log, cfg))] == ["planned"] * 4
    assert log == []  # planning runs nothing
    run_stages(_stages(tmp_path, log, cfg))
    log.clear()
    run_stages(_stages(tmp_path, log, cfg), from_stage="b")
    assert log == ["b", "c"]
    log.clear()
    run_stages(_stages(tmp_path, log, cfg), only="d")
    assert log == ["d"]
    with pytest.raises(ConfigError, match="no such stage"):
        run_stages(_stages(tmp_path, log, cfg), only="zzz")


def test_only_refuses_stale_inputs(tmp_path: Path) -> None:
    log: list[str] = []
    cfg = {"a": 1, "b": 1, "c": 1, "d": 1}
    with pytest.raises(ConfigError, match="not up to date"):
        run_stages(_stages(tmp_path, log, cfg), only="c")


def test_failure_leaves_no_marker(tmp_path: Path) -> None:
    def boom(context: StageContext) -> None:
        raise RuntimeError("x")

    stage = Stage(name="a", folder=tmp_path / "a", config={}, run=boom)
    with pytest.raises(RuntimeError):
        run_stages([stage])
    assert not (tmp_path / "a" / ".stage.json").exists()


def test_a_failed_stage_is_told_it_resumes_only_under_the_same_key(tmp_path: Path) -> None:
    seen: list[bool] = []
    fail = [True]

    def run(context: StageContext) -> dict[str, int]:
        seen.append(context.resuming)
        if fail[0]:
            raise RuntimeError("killed")
        return {}

    def stage(x: int) -> Stage:
        return Stage(name="a", folder=tmp_path / "a", config={"x": x}, run=run)

    with pytest.raises(RuntimeError):
        run_stages([stage(1)])
    with pytest.raises(RuntimeError):
        run_stages([stage(1)])  # same settings: resumes what the first attempt left
    with pytest.raises(RuntimeError):
        run_stages([stage(2)])  # other settings: a fresh start, not a resume
    fail[0] = False
    run_stages([stage(2)])
    assert seen == [False, True, False, True]
    assert not (tmp_path / "a" / ".stage-started.json").exists()
    run_stages([stage(3)])
    assert seen[-1] is False  # a finished stage rerun for new settings does not resume
