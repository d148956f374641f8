"""Run records: the ``manifest.json`` every stage writes beside its output.

A manifest says what was run (command, config, seed), on what (git commit, Python, platform,
package versions, model identities), what came out (counts) and how long each step took. It is
written atomically, so a manifest on disk always describes a finished or failed run, never a
half-written one. Analysis and reports read manifests; they never re-run models.

Usage::

    with RunRecorder(out_dir, command="data split", config=cfg, seed=7) as run:
        with run.step("split"):
            ...
        run.counts["conversations"] = 100
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidekit._io import write_text
from tidekit._version import __version__

__all__ = ["MANIFEST_NAME", "ModelIdentity", "RunManifest", "RunRecorder", "StepTiming", "read_manifest"]

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1

# Packages whose versions change results; recorded when installed.
_TRACKED_PACKAGES = (
    "tidekit", "pydantic", "numpy", "pyarrow", "pandas", "scipy", "statsmodels", "torch",
    "transformers", "peft", "trl", "accelerate", "sentence-transformers", "gguf", "rouge-score",
    "sacrebleu", "nltk", "bert-score", "krippendorff", "fastapi", "sqlalchemy",
)


class StepTiming(BaseModel):
    """Wall time of one named step of a run."""

    name: str = Field(description="Step name, e.g. 'load' or 'generate'.")
    wall_s: float = Field(description="Elapsed wall-clock seconds.")


class ModelIdentity(BaseModel):
    """Which model a run used, precisely enough to find it again."""

    alias: str = Field(description="Registry alias or the name the user gave.")
    source: str | None = Field(default=None, description="Resolved path, Hub id or server URL.")
    revision: str | None = Field(default=None, description="Hub revision or file version, if known.")
    sha256: str | None = Field(default=None, description="Hash of the local weights file, if local.")
    role: str | None = Field(default=None, description="What the run used it for: teacher, judge, system, embedder.")


class RunManifest(BaseModel):
    """The self-describing record of one run of one stage."""

    schema_version: int = Field(default=MANIFEST_SCHEMA_VERSION, description="Version of this record's layout.")
    tidekit_version: str = Field(description="tidekit version that wrote the record.")
    command: str = Field(description="The stage or CLI verb that ran, e.g. 'data split'.")
    status: Literal["running", "finished", "failed"] = Field(description="How the run ended.")
    error: str | None = Field(default=None, description="The error message when status is 'failed'.")
    config: dict[str, Any] = Field(default_factory=dict, description="The full resolved configuration.")
    seed: int | None = Field(default=None, description="The seed the run used, if any.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Named input paths.")
    git_commit: str | None = Field(default=None, description="Commit of the tidekit checkout, if it is a git checkout.")
    python: str = Field(description="Python version.")
    platform: str = Field(description="OS and machine.")
    packages: dict[str, str] = Field(default_factory=dict, description="Versions of packages that affect results.")
    models: list[ModelIdentity] = Field(default_factory=list, description="Models used, with their roles.")
    counts: dict[str, int] = Field(default_factory=dict, description="What the run produced or processed.")
    started_at: str = Field(description="UTC start time, ISO 8601.")
    finished_at: str | None = Field(default=None, description="UTC end time, ISO 8601.")
    wall_s: float | None = Field(default=None, description="Total wall-clock seconds.")
    steps: list[StepTiming] = Field(default_factory=list, description="Wall time of each step, in order.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Stage-specific facts (e.g. split sizes).")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change a result."""
    found = {}
    for name in _TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def git_commit() -> str | None:
    """The commit of the checkout tidekit runs from, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


class RunRecorder:
    """Collects a run's facts and writes its manifest on exit (also on failure)."""

    def __init__(
        self,
        out_dir: str | Path,
        command: str,
        config: BaseModel | dict[str, Any] | None = None,
        seed: int | None = None,
        inputs: dict[str, str] | None = None,
    ) -> None:
        cfg = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
        self.out_dir = Path(out_dir)
        self.counts: dict[str, int] = {}
        self.extra: dict[str, Any] = {}
        self.models: list[ModelIdentity] = []
        self._t0 = time.perf_counter()
        self.manifest = RunManifest(
            tidekit_version=__version__,
            command=command,
            status="running",
            config=cfg,
            seed=seed,
            inputs=dict(inputs or {}),
            git_commit=git_commit(),
            python=sys.version.split()[0],
            platform=f"{platform.system()} {platform.machine()}",
            packages=package_versions(),
            started_at=_now(),
        )

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a named step; the timing is recorded even if the step fails."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.manifest.steps.append(StepTiming(name=name, wall_s=round(time.perf_counter() - t0, 4)))

    def write(self, status: Literal["running", "finished", "failed"], error: str | None = None) -> Path:
        m = self.manifest
        m.status, m.error = status, error
        m.counts, m.extra, m.models = dict(self.counts), dict(self.extra), list(self.models)
        m.finished_at = _now() if status != "running" else None
        m.wall_s = round(time.perf_counter() - self._t0, 4)
        path = self.out_dir / MANIFEST_NAME
        write_text(path, m.model_dump_json(indent=2) + "\n")
        return path

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.write("finished")
        else:
            self.write("failed", error=f"{type(exc).__name__}: {exc}")


def read_manifest(path: str | Path) -> RunManifest:
    """Read a manifest file, or the ``manifest.json`` inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    return RunManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
