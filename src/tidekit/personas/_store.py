"""Persona files: JSONL (one :class:`~tidekit.data.Persona` a line), and the sampling run that writes one.

:func:`write_persona_file` is what ``tidekit personas`` does: sample, check the fit, write the
file atomically, and write a ``manifest.json`` beside it whose ``extra.fit`` compares realised
with target distributions, facet by facet, with a goodness-of-fit statistic each.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from tidekit._io import atomic_write
from tidekit._manifest import RunRecorder
from tidekit.data import Persona, Problems
from tidekit.errors import DataError
from tidekit.personas._fit import FitReport, fit_report
from tidekit.personas._sampler import sample_personas
from tidekit.personas._spec import PersonaConfig, resolve_spec

__all__ = ["PersonaRun", "read_personas", "write_persona_file", "write_personas"]


class PersonaRun(BaseModel):
    """What a sampling run wrote and how well it fits."""

    path: str = Field(description="The personas file.")
    n: int = Field(description="Personas written.")
    seed: int = Field(description="Seed used.")
    sample_s: float = Field(description="Seconds spent sampling.")
    fit: FitReport = Field(description="Goodness of fit against the targets.")


def write_personas(path: str | Path, personas: list[Persona]) -> Path:
    """Write personas as JSONL, atomically."""
    path = Path(path)
    with atomic_write(path) as fh:
        for p in personas:
            fh.write(p.model_dump_json() + "\n")
    return path


def read_personas(path: str | Path) -> list[Persona]:
    """Read a persona JSONL file; DataError lists every bad line."""
    import json

    path = Path(path)
    if not path.is_file():
        raise DataError(f"persona file not found: {path}; sample one with 'tidekit personas --out {path}'")
    problems = Problems()
    personas: list[Persona] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            personas.append(Persona.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.add(path, f"malformed JSON: {exc.msg}", where=f"line {lineno}")
        except ValidationError as exc:
            problems.add_validation(path, exc, where_prefix=f"line {lineno}")
    ids = [p.id for p in personas]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.add(path, f"persona id {dup!r} appears more than once", hint="give every persona a unique id")
    problems.raise_if_errors(path)
    if not personas:
        raise DataError(f"{path}: no personas in the file")
    return personas


def write_persona_file(config: PersonaConfig, out: str | Path, alpha: float = 0.05) -> PersonaRun:
    """Sample ``config.n`` personas, write them to ``out`` (JSONL) and a manifest beside it."""
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{out} is a folder; give a file name such as {out / 'personas.jsonl'}")
    with RunRecorder(out.parent, command="personas", config=config, seed=config.seed) as run:
        with run.step("resolve"):
            spec = resolve_spec(config)
        with run.step("sample"):
            t0 = time.perf_counter()
            personas = sample_personas(config, spec=spec)
            sample_s = time.perf_counter() - t0
        with run.step("fit"):
            fit = fit_report(personas, spec, alpha=alpha)
        with run.step("write"):
            write_personas(out, personas)
        run.counts.update(personas=len(personas), constraint_violations=fit.constraint_violations,
                          facets_failing_fit=sum(not f.passed for f in fit.facets) + (not fit.age.passed))
        run.extra.update(output=out.name, fit=fit.model_dump(mode="json"))
    return PersonaRun(path=str(out), n=len(personas), seed=config.seed, sample_s=round(sample_s, 4), fit=fit)
