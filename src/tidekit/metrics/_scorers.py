"""The scoring pipeline's extension point: registered scorers that each declare their columns and models.

A scorer reads the scored replies as a :class:`ScoringBatch` (each reply's context, the reply,
the reference) and returns one value per reply for each column it declares. It also declares
the models it loads (recorded in the run's manifest) and whether its columns compare a reply
with the reference (a reference-free column can compare any system with the reference replies
themselves). :func:`score` builds every scorer a config asks for with :func:`build_scorers`
and runs them the same way.

Kinds, each a factory registered with :func:`scorer_kind`:

- ``reference``: a registered reference metric (``tidekit.metrics.build_metric``: cosine,
  BERTScore, ROUGE-L, ...), which sees (reply, reference) pairs;
- ``learned``: a learned empathy scorer folder (``tidekit scorer train``), which sees (context,
  reply) pairs and writes ``scorer_<name>_<label>`` columns.

- ``safety`` and ``judge`` (``_checks.py``): the rule-based safety checks and the empathy judges,
  which also type their columns, fill excluded replies and add files to the run (``finish``).

A scorer's ``role`` says how the tables use its columns: ``metric`` (the default: aggregated
and compared), ``judge`` (the same, each table cell with its own n) or ``check`` (aggregated,
not compared). :func:`score` runs every scorer the same way and knows none by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from tidekit._config import StrictModel
from tidekit._manifest import ModelIdentity
from tidekit.backends import resolve_model_path, sha256_file
from tidekit.errors import ConfigError
from tidekit.metrics._registry import Metric, MetricSpec, build_metric

if TYPE_CHECKING:
    from tidekit._manifest import ModelIdentity
    from tidekit.metrics._learned import ScorerMeta

__all__ = ["LearnedScorerSpec", "LearnedScorerStep", "Scorer", "ScorerReport", "ScoringBatch", "build_scorer", "build_scorers",
           "model_identity", "scorer_kind"]


class LearnedScorerSpec(StrictModel):
    """A learned scorer to run in ``tidekit score`` (``scoring.scorers:`` in a study)."""

    path: str = Field(description="The scorer folder written by 'tidekit scorer train'.")
    name: str | None = Field(default=None, description="Column name part (scorer_<name>_<label>); default: the "
                                                       "name it was trained with.")
    batch_size: int = Field(default=32, ge=1, le=1024, description="Pairs per forward pass.")
    device: str = Field(default="cpu", description="'cpu' or 'cuda'.")


@dataclass(frozen=True)
class ScoringBatch:
    """The replies a scorer scores, aligned: ``contexts[i]`` is what reply ``responses[i]`` answers."""

    contexts: Sequence[str]
    responses: Sequence[str]
    references: Sequence[str]
    ids: Sequence[str] = ()  # "<conversation_id>|<system>" of each reply (the judges' item ids)
    risk_levels: Sequence[str | None] = ()  # each reply's scenario risk level (the safety checks)


@dataclass
class ScorerReport:
    """What a scorer adds to the run beyond its columns: files it wrote, manifest entries, warnings."""

    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Scorer(Protocol):
    """One step of the scoring pipeline."""

    @property
    def name(self) -> str:
        """Its name in the run record and the step timings."""
        ...

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns it writes, in order."""
        ...

    @property
    def reference_free(self) -> bool:
        """Its columns do not compare the reply with the reference."""
        ...

    def models(self) -> list[ModelIdentity]:
        """The models it loads (for the manifest)."""
        ...

    def record(self) -> dict[str, Any]:
        """What rebuilds it (kind and parameters)."""
        ...

    def __call__(self, batch: ScoringBatch) -> dict[str, list[Any]]:
        """One value per reply for each of its columns."""
        ...


def model_identity(alias: str, role: str, weights: str = "model.safetensors") -> ModelIdentity:
    """The identity of a local model (resolved path, sha256 of its weights where there is a file)."""
    path = resolve_model_path(alias)
    file = path / weights
    return ModelIdentity(alias=alias, source=str(path), role=role, sha256=sha256_file(file) if file.is_file() else None)


@dataclass
class _ReferenceScorer:
    metric: Metric
    reference_free: bool = False

    @property
    def name(self) -> str:
        return f"metric:{self.metric.spec.name}"

    @property
    def columns(self) -> tuple[str, ...]:
        return self.metric.columns

    def models(self) -> list[ModelIdentity]:
        model = self.metric.spec.params.get("model")  # an encoder-based metric names its encoder
        return [model_identity(str(model), f"{self.metric.spec.name} encoder")] if model else []

    def record(self) -> dict[str, Any]:
        return {"kind": "reference", **self.metric.spec.model_dump()}

    def __call__(self, batch: ScoringBatch) -> dict[str, list[float]]:
        return self.metric(batch.responses, batch.references)


@dataclass
class LearnedScorerStep:
    """A learned scorer folder as a pipeline step; its description is read once, the model on first use."""

    spec: LearnedScorerSpec
    meta: ScorerMeta
    reference_free: bool = True
    _loaded: Any = field(default=None, repr=False)

    @property
    def label_name(self) -> str:
        return self.spec.name or self.meta.name

    @property
    def name(self) -> str:
        return f"scorer:{self.label_name}"

    @property
    def labels(self) -> tuple[str, ...]:
        """The label each column predicts, in column order."""
        return tuple(s.name for s in self.meta.labels)

    @property
    def columns(self) -> tuple[str, ...]:
        from tidekit.metrics._learned import scorer_column

        return tuple(scorer_column(self.label_name, label) for label in self.labels)

    def models(self) -> list[ModelIdentity]:
        from tidekit.metrics._learned import ENCODER_DIR

        identity = model_identity(f"{self.spec.path}/{ENCODER_DIR}", "learned scorer")
        return [identity.model_copy(update={"alias": self.label_name})]

    def record(self) -> dict[str, Any]:
        return {"kind": "learned", **self.spec.model_dump(), "labels_sha256": self.meta.labels_sha256,
                "cv": self.meta.cv.get("agreement", [])}

    def predict(self, batch: ScoringBatch) -> dict[str, Any]:
        """Label -> predictions for every reply of ``batch`` (the model loads on first use)."""
        if self._loaded is None:
            from tidekit.metrics._learned import load_scorer

            self._loaded = load_scorer(self.spec.path, device=self.spec.device)
        predicted: dict[str, Any] = self._loaded.predict(batch.contexts, batch.responses,
                                                         batch_size=self.spec.batch_size)
        return predicted

    def __call__(self, batch: ScoringBatch) -> dict[str, list[float]]:
        predicted = self.predict(batch)
        return {col: predicted[label].tolist() for col, label in zip(self.columns, self.labels, strict=True)}


_KINDS: dict[str, Callable[[Any], Scorer]] = {}


def scorer_kind(kind: str) -> Callable[[Callable[[Any], Scorer]], Callable[[Any], Scorer]]:
    """Register a factory that builds a scorer of ``kind`` from its spec."""

    def register(factory: Callable[[Any], Scorer]) -> Callable[[Any], Scorer]:
        if kind in _KINDS:
            raise ValueError(f"scorer kind {kind!r} is registered twice")
        _KINDS[kind] = factory
        return factory

    return register


@scorer_kind("reference")
def _reference(spec: MetricSpec) -> Scorer:
    from tidekit.metrics._compare import REFERENCE_FREE

    metric = build_metric(spec)
    return _ReferenceScorer(metric, reference_free=all(c in REFERENCE_FREE for c in metric.columns))


@scorer_kind("learned")
def _learned(spec: LearnedScorerSpec) -> Scorer:
    from tidekit.metrics._learned import read_meta

    return LearnedScorerStep(spec, read_meta(spec.path))  # a folder that is not a scorer fails here, before work


def build_scorer(kind: str, spec: Any) -> Scorer:
    """The scorer of a registered ``kind`` built from its spec."""
    return _KINDS[kind](spec)


def build_scorers(metrics: Sequence[MetricSpec], learned: Sequence[LearnedScorerSpec],
                  more: Sequence[tuple[str, Any]] = ()) -> list[Scorer]:
    """Every scorer a score config asks for, built (and checked) before any work: the reference
    metrics, the learned scorers, then ``more`` ((kind, spec) pairs); columns must not clash."""
    scorers = ([_KINDS["reference"](m) for m in metrics] + [_KINDS["learned"](s) for s in learned]
               + [_KINDS[kind](spec) for kind, spec in more])
    seen: dict[str, str] = {}
    for s in scorers:
        for col in s.columns:
            if col in seen:
                raise ConfigError(f"scorers {seen[col]!r} and {s.name!r} both write column {col!r}; give one a "
                                  "different name (scorers: [{path: ..., name: ...}])")
            seen[col] = s.name
    return scorers
