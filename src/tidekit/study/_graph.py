"""Stage graph mechanics: content-keyed stages that rerun only when their inputs change.

A study is a list of stages in dependency order. Each stage's key is a hash of its own config
and its upstream stages' keys, so editing one stage's settings changes its key and the keys of
everything downstream, and nothing else. A stage that finishes writes ``.stage.json`` (its key)
into its folder atomically, last; a rerun skips a stage whose marker matches its key. A stage
that was killed has no matching marker and runs again, resuming from whatever its own engine
cached (model calls are cached; files are written atomically), so nothing is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from tidekit._io import write_json
from tidekit._stage import StageFacts
from tidekit.errors import ConfigError

__all__ = ["MARKER", "STARTED", "Stage", "StageContext", "StageOutcome", "plan_stages", "run_stages", "stage_keys"]

MARKER = ".stage.json"
STARTED = ".stage-started.json"  # written when a stage starts: a rerun with the same key resumes it
KEY_VERSION = 1  # bump when stage semantics change so old markers stop matching


@dataclass(frozen=True)
class StageContext:
    """What the runner tells a stage as it starts it."""

    key: str
    resuming: bool  # an earlier run of this stage with the same key started and did not finish


@dataclass
class Stage:
    """One step of a study."""

    name: str
    folder: Path
    config: Any  # JSON-able settings that determine the output
    run: Callable[[StageContext], StageFacts | dict[str, Any] | None]  # its facts for the summary (counts, paths)
    deps: Sequence[str] = ()
    describe: str = ""
    estimate: dict[str, Any] = field(default_factory=dict)  # dry-run counts and the engine
    seed: int | None = None  # the stage's effective seed (shown in the plan)


@dataclass
class StageOutcome:
    name: str
    status: Literal["ran", "skipped", "planned", "failed"]
    key: str
    wall_s: float = 0.0
    facts: StageFacts = field(default_factory=StageFacts)  # typed per stage; the plan's: its estimate and seed


def _canonical(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def stage_keys(stages: Sequence[Stage]) -> dict[str, str]:
    """Each stage's key: hash of (version, name, config, upstream keys)."""
    keys: dict[str, str] = {}
    names = {s.name for s in stages}
    for s in stages:
        missing = [d for d in s.deps if d not in keys]
        if missing:
            unknown = [d for d in missing if d not in names]
            raise ConfigError(f"stage {s.name!r} depends on {', '.join(missing)}"
                              + (" (unknown)" if unknown else " (must come earlier)"))
        payload = _canonical({"v": KEY_VERSION, "name": s.name, "config": s.config,
                              "deps": {d: keys[d] for d in sorted(s.deps)}})
        keys[s.name] = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return keys


def _marker_key(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        key = json.loads(path.read_text(encoding="utf-8")).get("key")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def _done(stage: Stage, key: str) -> bool:
    return _marker_key(stage.folder / MARKER) == key


def _downstream(stages: Sequence[Stage], root: str) -> set[str]:
    out = {root}
    for s in stages:
        if any(d in out for d in s.deps):
            out.add(s.name)
    return out


def _selection(stages: Sequence[Stage], from_stage: str | None, only: str | None) -> tuple[set[str], set[str]]:
    """(stages to consider, stages forced to rerun)."""
    names = [s.name for s in stages]
    for opt, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise ConfigError(f"{opt} {value!r}: no such stage; stages are {', '.join(names)}")
    if only:
        return {only}, {only}
    if from_stage:
        forced = _downstream(stages, from_stage)
        return set(names), forced
    return set(names), set()


def plan_stages(stages: Sequence[Stage], from_stage: str | None = None,
                only: str | None = None) -> list[StageOutcome]:
    """What a run would do, without doing it."""
    keys = stage_keys(stages)
    selected, forced = _selection(stages, from_stage, only)
    plan = []
    for s in stages:
        if s.name not in selected:
            continue
        todo = s.name in forced or not _done(s, keys[s.name])
        facts = StageFacts.model_validate(dict(s.estimate) | ({"seed": s.seed} if s.seed is not None else {}))
        plan.append(StageOutcome(s.name, "planned" if todo else "skipped", keys[s.name], facts=facts))
    return plan


def run_stages(
    stages: Sequence[Stage],
    from_stage: str | None = None,
    only: str | None = None,
    on_event: Callable[[str, Stage, StageOutcome | None], None] | None = None,
) -> list[StageOutcome]:
    """Run the stages in order, skipping finished ones whose key is unchanged."""
    keys = stage_keys(stages)
    selected, forced = _selection(stages, from_stage, only)
    by_name = {s.name: s for s in stages}
    outcomes: list[StageOutcome] = []
    stale: set[str] = set()
    for s in stages:
        if s.name not in selected:
            continue
        key = keys[s.name]
        if only:
            not_done = [d for d in s.deps if not _done(by_name[d], keys[d])]
            if not_done:
                raise ConfigError(f"--only {s.name}: its inputs are not up to date ({', '.join(not_done)}); "
                                  f"run without --only, or with --from {not_done[0]}")
        upstream_reran = any(d in stale for d in s.deps)
        if s.name not in forced and not upstream_reran and _done(s, key):
            outcome = StageOutcome(s.name, "skipped", key)
            outcomes.append(outcome)
            if on_event:
                on_event("skipped", s, outcome)
            continue
        if on_event:
            on_event("start", s, None)
        marker = s.folder / MARKER
        marker.unlink(missing_ok=True)
        started = s.folder / STARTED
        context = StageContext(key=key, resuming=_marker_key(started) == key)
        s.folder.mkdir(parents=True, exist_ok=True)
        write_json(started, {"stage": s.name, "key": key})
        t0 = time.perf_counter()
        returned = s.run(context)
        facts = returned if isinstance(returned, StageFacts) else StageFacts.model_validate(returned or {})
        wall = round(time.perf_counter() - t0, 3)
        s.folder.mkdir(parents=True, exist_ok=True)
        write_json(marker, {"stage": s.name, "key": key, "wall_s": wall, "facts": facts.model_dump(mode="json")})
        started.unlink(missing_ok=True)
        stale.add(s.name)
        outcome = StageOutcome(s.name, "ran", key, wall, facts)
        outcomes.append(outcome)
        if on_event:
            on_event("done", s, outcome)
    return outcomes
