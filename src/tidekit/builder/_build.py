"""``build_dataset``: one config in, a gated, carded dataset out.

Steps: plan (every config check, before any model call), load the teacher, generate and gate
(:mod:`tidekit.builder._pipeline`), write the dataset in each layout, the rejection report, the
dataset card and the review sheet, and a ``manifest.json`` with counts and the time spent
inside and outside model calls.

Output folder::

    OUT/tide/          TIDE layout (metadata/, conversations/)
    OUT/jsonl/         personas.jsonl, conversations.jsonl
    OUT/parquet/       personas.parquet, conversations.parquet
    OUT/DATASET_CARD.md, OUT/card.json
    OUT/rejections.jsonl, OUT/rejections.md
    OUT/review.csv
    OUT/cache.sqlite   every model call (a rerun recomputes nothing cached)
    OUT/manifest.json
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit._io import atomic_write, write_text
from tidekit._manifest import RunRecorder
from tidekit._version import __version__
from tidekit.backends import Backend, ChatRequest, ChatResult
from tidekit.builder._card import DatasetCard, FacetSummary, now, render_card, scenario_table
from tidekit.builder._config import BuildConfig, BuildPlan, plan_build
from tidekit.builder._gates import GATE_NAMES
from tidekit.builder._pipeline import GenerationStats, RejectionRecord, generate_conversations
from tidekit.builder._prompts import prompt_hashes
from tidekit.builder._review import clear_tide, review_sheet
from tidekit.data import Dataset, save_dataset
from tidekit.generation import run_requests
from tidekit.personas import fit_report

__all__ = ["BuildResult", "build_dataset"]


class BuildResult(BaseModel):
    """What a build wrote, with its headline figures."""

    out: str = Field(description="Output folder.")
    personas: int = Field(description="Personas with at least one conversation.")
    conversations: int = Field(description="Conversations written.")
    planned: int = Field(description="Conversations planned.")
    dropped: int = Field(description="Conversations dropped after the last attempt.")
    flagged: int = Field(description="Conversations kept with a flagged turn.")
    stats: GenerationStats = Field(description="Generation counts and timings.")
    wall_s: float = Field(description="Wall seconds of the whole build.")
    load_s: float = Field(description="Seconds loading the teacher.")
    overhead_s: float = Field(description="Seconds outside model calls and teacher loading (builder overhead).")
    overhead_share: float = Field(description="overhead_s / (wall_s - load_s).")
    formats: dict[str, str] = Field(description="Layout -> folder written.")


def _engine_runner(cache: Path, progress: bool) -> Callable[[Backend, Sequence[ChatRequest], str], list[ChatResult]]:
    def run(backend: Backend, requests: Sequence[ChatRequest], label: str) -> list[ChatResult]:
        return run_requests(backend, list(requests), cache=cache, progress=label if progress else False)

    return run


def _facet_summaries(plan: BuildPlan, dataset: Dataset) -> tuple[list[FacetSummary], bool | None]:
    if plan.persona_spec is not None:
        fit = fit_report(plan.personas, plan.persona_spec)
        return [FacetSummary(facet=f.facet, source=f.source, target=f.target, realised=f.realised,
                             p_value=f.p_value) for f in fit.facets], fit.passed
    keys = sorted({k for p in dataset.personas for k, v in p.attributes.items() if isinstance(v, str)})
    out = []
    for key in ["gender", "age_group", "trauma_type", *keys]:
        values = Counter(str(getattr(p, key, None) if key in ("gender", "age_group", "trauma_type")
                             else p.attributes.get(key)) for p in dataset.personas)
        n = max(sum(values.values()), 1)
        out.append(FacetSummary(facet=key, source="file", realised={k: v / n for k, v in values.most_common()}))
    return out, None


def _rejection_report(records: list[RejectionRecord], stats: GenerationStats) -> str:
    lines = ["# Rejection report", "",
             f"{stats.turns_rejected} generated turn(s) rejected; {stats.turns_flagged} kept flagged and "
             f"{stats.conversations_dropped} conversation(s) dropped after the last attempt. Every rejection, "
             "with its text, is a line of `rejections.jsonl`.", "",
             "| reason code | rejections | example |", "|---|---|---|"]
    examples: dict[str, RejectionRecord] = {}
    for r in records:
        for code in r.codes:
            examples.setdefault(code, r)
    for code, count in stats.reasons.items():
        ex = examples.get(code)
        detail = ""
        if ex is not None:
            i = ex.codes.index(code)
            detail = f"{ex.conversation_id} ({ex.role}, attempt {ex.attempt}): {ex.details[i]}"
        lines.append(f"| {code} | {count} | {detail.replace('|', '/')} |")
    outcome = Counter(r.outcome for r in records)
    lines += ["", "Outcomes: " + ", ".join(f"{k} {v}" for k, v in outcome.most_common()) + ".", ""]
    return "\n".join(lines)


def build_dataset(
    config: BuildConfig,
    *,
    out: str | Path | None = None,
    backend: Backend | None = None,
    progress: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> BuildResult:
    """The dataset stage: build the dataset ``config`` describes into ``out`` (default: the
    config's ``out``); see the module docstring for what lands where.

    ``backend`` replaces the configured teacher (tests, or a backend already loaded). Every
    config problem raises ConfigError before the teacher is loaded.
    """
    if out is not None and Path(out) != Path(config.out):
        config = config.model_copy(update={"out": Path(out)})
    t_start = time.perf_counter()
    plan = plan_build(config)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    stats = GenerationStats()
    rejections: list[RejectionRecord] = []
    with RunRecorder(out, command="build", config=config, seed=config.seed) as run:
        run.counts.update(personas_sampled=len(plan.personas), planned_conversations=plan.conversations)
        t0 = time.perf_counter()
        own_backend = backend is None
        with run.step("load_teacher"):
            if backend is None:
                from tidekit.backends import load_backend

                backend = load_backend(config.teacher)
        load_s = time.perf_counter() - t0
        assert backend is not None
        run.models.append(backend.identity.model_copy(update={"role": "teacher"}))
        try:
            with run.step("generate"):
                dataset = generate_conversations(plan, backend, _engine_runner(config.cache_path, progress),
                                                 rejections, stats, on_step=on_step)
        finally:
            if own_backend:
                backend.close()
        flagged = sum(1 for c in dataset.conversations if (c.provenance.model_extra or {}).get("gates") == "flagged")
        formats: dict[str, str] = {}
        with run.step("write"):
            for fmt in config.formats:
                if fmt == "tide":  # the TIDE writer only adds files; drop those of an earlier build
                    clear_tide(out / fmt)
                save_dataset(dataset, out / fmt, fmt)
                formats[fmt] = str(out / fmt)
            with atomic_write(out / "rejections.jsonl") as fh:
                for r in rejections:
                    fh.write(r.model_dump_json() + "\n")
            write_text(out / "rejections.md", _rejection_report(rejections, stats))
            facets, fit_passed = _facet_summaries(plan, dataset)
            scen, risk, factor = scenario_table(dataset)
            counts = {"personas": len(dataset.personas), "personas_sampled": len(plan.personas),
                      "conversations": len(dataset.conversations), "planned_conversations": plan.conversations,
                      "dropped": stats.conversations_dropped, "flagged": flagged}
            gates_info: dict[str, Any] = {
                "enabled": [g for g in GATE_NAMES if g in config.gates.enabled],
                **config.gates.model_dump(mode="json", exclude={"enabled"}),
                "max_regenerations": config.regeneration.max_regenerations,
                "on_exhausted": config.regeneration.on_exhausted,
            }
            card = DatasetCard(
                name=config.name, created=now(), tidekit_version=__version__, license=config.license,
                counts=counts, scenarios=scen, risk_levels=risk, empathy_factors=factor, facets=facets,
                persona_fit_passed=fit_passed, teacher=backend.identity.model_dump(mode="json"),
                generation={"client": config.client.model_dump(mode="json"),
                            "supporter": config.supporter.model_dump(mode="json")},
                prompt_hashes=prompt_hashes(), gates=gates_info,
                gate_stats=stats.model_dump(mode="json", exclude={"model_s", "gates_s"}),
                exchanges=config.exchanges, seed=config.seed,
                persona_seed=config.personas.seed if config.personas.from_file is None else None)
            write_text(out / "card.json", card.model_dump_json(indent=2) + "\n")
            write_text(out / "DATASET_CARD.md", render_card(card))
            if config.review_sheet:
                write_text(out / "review.csv", review_sheet(dataset))
        wall_s = time.perf_counter() - t_start
        busy = wall_s - load_s
        overhead_s = max(busy - stats.model_s, 0.0)
        run.counts.update(counts)
        run.counts.update(requests=stats.requests, turns_accepted=stats.turns_accepted,
                          turns_rejected=stats.turns_rejected, turns_flagged=stats.turns_flagged)
        run.extra.update(model_s=round(stats.model_s, 3), gates_s=round(stats.gates_s, 3),
                         load_s=round(load_s, 3), overhead_s=round(overhead_s, 3),
                         overhead_share=round(overhead_s / busy, 4) if busy > 0 else 0.0,
                         reasons=stats.reasons, prompt_hashes=prompt_hashes(),
                         prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens)
    return BuildResult(out=str(out), personas=len(dataset.personas), conversations=len(dataset.conversations),
                       planned=plan.conversations, dropped=stats.conversations_dropped, flagged=flagged,
                       stats=stats, wall_s=round(wall_s, 3), load_s=round(load_s, 3),
                       overhead_s=round(overhead_s, 3),
                       overhead_share=round(overhead_s / busy, 4) if busy > 0 else 0.0, formats=formats)
