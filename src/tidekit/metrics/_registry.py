"""The metric extension point: a Protocol, a registry of factories, and specs that rebuild them.

A metric is a callable ``metric(candidates, references) -> {column: [value, ...]}`` that scores
aligned lists of texts, one value per pair for each column it declares. It is built by a factory
whose keyword arguments are its whole configuration; factories are registered by name with
:func:`metric`, so a :class:`MetricSpec` (name + params) stored in a run record rebuilds the same
metric with :func:`build_metric`.

Example::

    from tidekit.metrics import build_metric
    rouge = build_metric("rouge_l")
    rouge(["I hear you."], ["I hear how hard this is."])   # {"rouge_l": [0.6]}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from tidekit._config import StrictModel
from tidekit.errors import ConfigError

__all__ = [
    "Metric",
    "MetricInfo",
    "MetricScores",
    "MetricSpec",
    "build_metric",
    "list_metrics",
    "metric",
]

MetricScores = dict[str, list[float]]
ScoreFn = Callable[[Sequence[str], Sequence[str]], MetricScores]


class MetricSpec(StrictModel):
    """A metric's registered name and the factory arguments that configure it."""

    name: str = Field(description="Registered metric name, e.g. 'cosine' or 'rouge_l'.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for its factory.")


@runtime_checkable
class Metric(Protocol):
    """Scores aligned candidate/reference texts; one value per pair for each of its columns."""

    @property
    def spec(self) -> MetricSpec:
        """The name and full params that rebuild this metric."""
        ...

    @property
    def columns(self) -> tuple[str, ...]:
        """The score columns it returns, in order."""
        ...

    def __call__(self, candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        """Score ``candidates[i]`` against ``references[i]`` for every i."""
        ...


@dataclass(frozen=True)
class MetricInfo:
    """A registered factory and what it produces."""

    name: str
    columns: tuple[str, ...]
    description: str
    factory: Callable[..., ScoreFn]

    def defaults(self) -> dict[str, Any]:
        """The factory's keyword arguments and their defaults."""
        return {name: p.default for name, p in inspect.signature(self.factory).parameters.items()
                if p.default is not inspect.Parameter.empty}


@dataclass(frozen=True)
class _BuiltMetric:
    spec: MetricSpec
    columns: tuple[str, ...]
    fn: ScoreFn

    def __call__(self, candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        if len(candidates) != len(references):
            raise ValueError(f"{self.spec.name}: {len(candidates)} candidates but {len(references)} references")
        if not candidates:
            return {c: [] for c in self.columns}
        scores = self.fn(candidates, references)
        missing = [c for c in self.columns if len(scores.get(c, ())) != len(candidates)]
        if missing:  # a factory bug, never a user error
            raise RuntimeError(f"metric {self.spec.name!r} did not return one value per pair for {missing}")
        return {c: [float(v) for v in scores[c]] for c in self.columns}


_REGISTRY: dict[str, MetricInfo] = {}


def metric(name: str, columns: Sequence[str], description: str) -> Callable[[Callable[..., ScoreFn]],
                                                                           Callable[..., ScoreFn]]:
    """Register a factory under ``name``; it returns the scoring function for its params."""

    def register(factory: Callable[..., ScoreFn]) -> Callable[..., ScoreFn]:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        _REGISTRY[name] = MetricInfo(name=name, columns=tuple(columns), description=description, factory=factory)
        return factory

    return register


def list_metrics() -> dict[str, MetricInfo]:
    """Registered metrics by name."""
    return dict(_REGISTRY)


def build_metric(name: str | MetricSpec, **params: Any) -> Metric:
    """Build the metric ``name`` with ``params`` (or from a spec); ConfigError names bad keys."""
    spec = name if isinstance(name, MetricSpec) else MetricSpec(name=name, params=params)
    info = _REGISTRY.get(spec.name)
    if info is None:
        raise ConfigError(f"unknown metric {spec.name!r}; known metrics: {', '.join(sorted(_REGISTRY))}")
    allowed = info.defaults()
    unknown = sorted(set(spec.params) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "(none)"
        raise ConfigError(f"metric {spec.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                          f"its parameters are: {known}")
    full = MetricSpec(name=spec.name, params={**allowed, **spec.params})
    return _BuiltMetric(spec=full, columns=info.columns, fn=info.factory(**full.params))
