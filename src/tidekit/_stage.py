"""``StageSpec``: a stage of a study declared in one place, in the stage's own package.

A study (``tidekit run``) is a list of specs (``tidekit.study.STAGES``). Each spec says what
the runner needs and nothing more:

- ``name``: the stage's name (its jobs are ``name`` or ``name:<suffix>``, one per model or
  system where the stage has several);
- ``jobs``: how its config comes from the study config: a function of a :class:`StudyView`
  (the study config, its ``RunLayout`` and the jobs of the stages before it) returning the
  stage's jobs, each with the verb's config, its folder in the layout, the settings that key
  it (the cache/skip key), its dependencies and its seed; no job: the study does not have it;
- ``verb``: the stage's function, ``verb(config, *, out, ...) -> Result``;
- ``facts``: the typed :class:`StageFacts` read off its result, which the run summary, the
  tracker and ``tidekit run`` print;
- ``scale``: what it adds to the dry run's counts (:class:`StudyScale`), optional.

The runner (``tidekit.study``) turns jobs into graph stages and calls the verbs; it knows no
stage by name. This module sits below every stage package so each can declare its spec
without importing the study layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_serializer

from tidekit._layout import RunLayout

__all__ = ["SparseModel", "StageFacts", "StageJob", "StageSpec", "StudyScale", "StudyView"]


class StageFacts(BaseModel):
    """What a stage reports when it finishes (counts, paths, rates): typed per stage.

    Subclasses name their fields; the base class also holds free-form facts (a stage written
    before specs, or a test stage), so the graph can record any stage's facts the same way."""

    model_config = ConfigDict(extra="allow")

    def entries(self) -> list[tuple[str, Any]]:
        """(name, value) of every fact, declared ones first, in order."""
        return list(self.model_dump().items())

    def summary(self) -> str:
        """One line for a terminal: ``name value`` of each fact that has a value."""
        return ", ".join(f"{k} {v}" for k, v in self.entries() if v is not None)


class SparseModel(BaseModel):
    """A model whose JSON holds only the fields that were set (a dry-run entry lists what applies)."""

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        keep = self.model_fields_set | set(self.__pydantic_extra__ or {})
        return {k: v for k, v in data.items() if k in keep}


@dataclass(frozen=True)
class StageJob:
    """One run of a stage's verb in a study: the verb's config, where it writes, what keys it."""

    config: Any  # the verb's config model
    out: Path  # its folder in the RunLayout (the runner writes its marker there)
    key: Any  # JSON-able settings that decide the output: the stage key hashes them (keep them stable)
    suffix: str = ""  # the job's part of the stage name ("<model>", "<model>:<condition>")
    deps: tuple[str, ...] | None = None  # stage names it reads; None: the jobs of the spec's ``deps``
    seed: int | None = None  # its effective seed (shown in the plan)
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # more keyword arguments of the verb (progress...)
    estimate: Mapping[str, Any] = field(default_factory=dict)  # dry-run facts (engine, optimizer steps)
    plan: Callable[[StudyScale], Mapping[str, Any]] | None = None  # dry-run facts that need the study's scale
    describe: str = ""


@dataclass
class StudyView:
    """What a spec's ``jobs`` function sees: the study config, its layout, the jobs before it."""

    config: Any  # tidekit.study.StudyConfig (typed Any: this module sits below the study layer)
    layout: RunLayout
    progress: bool = True
    built: dict[str, list[tuple[str, StageJob]]] = field(default_factory=dict)  # spec -> (stage name, job)

    def jobs(self, spec: str) -> list[StageJob]:
        """The jobs of an earlier spec (empty when the study does not have that stage)."""
        return [job for _, job in self.built.get(spec, [])]

    def names(self, *specs: str) -> list[str]:
        """The stage names of the jobs of earlier specs, in study order."""
        return [name for spec in specs for name, _ in self.built.get(spec, [])]


@dataclass
class StudyScale:
    """The scale of a study's work, counted by the specs in study order for the dry run."""

    personas: int = 0
    conversations: int = 0
    eval_conversations: int = 0
    model_calls: dict[str, int] = field(default_factory=dict)  # per stage kind: calls with no regeneration
    model_calls_max: dict[str, int] = field(default_factory=dict)  # those that can regenerate: the most
    generated_tokens_max: int = 0
    rated_subset: Any = None  # the rated conversations and the prediction-powered design (a model)


@dataclass(frozen=True)
class StageSpec:
    """A stage of a study, declared in its own package (see the module docstring)."""

    name: str
    jobs: Callable[[StudyView], list[StageJob]]
    verb: Callable[..., Any]
    facts: Callable[[Any], StageFacts]
    deps: tuple[str, ...] = ()  # specs whose jobs each job reads (where the job does not say)
    resumable: bool = False  # the verb takes if_exists: "resume" after an unfinished attempt, else "replace"
    scale: Callable[[StudyView, StudyScale], None] | None = None
    doc: str = ""  # one line for docs and --help: what the stage does
