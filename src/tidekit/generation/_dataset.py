"""Dataset-level generation: one model reply per conversation of a split, as
``generations.jsonl`` (:class:`tidekit.data.GenerationRecord`) plus ``manifest.json``.

This is what ``tidekit generate`` and ``tidekit.generate(...)`` run. The model calls go
through :func:`tidekit.generation.run_requests`, so the folder's ``cache.sqlite`` makes a
rerun skip finished work and a killed run resume where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidekit._config import StrictModel
from tidekit._manifest import RunRecorder
from tidekit.backends import (
    MODELS,
    Backend,
    BackendConfig,
    ChatRequest,
    ChatResult,
    GenerationParams,
)
from tidekit.data import (
    DEFAULT_SYSTEM_PROMPT,
    GENERATIONS_FILE,
    Condition,
    GenerationRecord,
    Split,
    conversation_messages,
    load_dataset,
    system_name,
    write_generations,
)
from tidekit.errors import DataError
from tidekit.generation._engine import RunStats, request_key, request_seed, run_requests
from tidekit.generation._ray import ExecutorConfig, executor_backend

__all__ = ["CACHE_FILE", "GenerateConfig", "GenerateResult", "generate"]

CACHE_FILE = "cache.sqlite"


class GenerateConfig(StrictModel):
    """Everything ``tidekit generate`` needs (also loadable from YAML with key=value overrides)."""

    data: str = Field(description="Dataset folder (TIDE layout, JSONL or Parquet records).")
    split: Split | Literal["all"] = Field(default="test", description="Which split to answer; 'all' ignores splits.")
    limit: int | None = Field(default=None, ge=1, description="Answer only the first N conversations (by id).")
    backend: BackendConfig = Field(default_factory=BackendConfig, description="The model and how to run it.")
    params: GenerationParams = Field(default_factory=lambda: GenerationParams(max_new_tokens=256, seed=0),
                                     description="Decoding parameters (greedy by default).")
    system_prompt: str = Field(default=DEFAULT_SYSTEM_PROMPT, description="Instructions given to the model.")
    name: str | None = Field(default=None, description="Model label in records; default: the alias or folder name.")
    max_errors: int | None = Field(default=0, ge=0, description="Stop once more requests than this failed "
                                                                 "(None: never); failures are recorded.")
    cache: str | None = Field(default=None, description=f"Result cache file; default OUT/{CACHE_FILE}.")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig,
                                     description="Where the model runs: this process, or replicas on Ray.")
    check_reproducible: int = Field(default=0, ge=0, description="After the run, recompute this many of its "
                                                                 "results in fresh batches (other batch-mates, "
                                                                 "another batch size) and report how many "
                                                                 "equal the stored ones (manifest "
                                                                 "extra.reproducible_check).")


class GenerateResult(BaseModel):
    """What a generation run produced."""

    out: str = Field(description="Output folder.")
    records: int = Field(description="Records written (one per conversation).")
    errors: int = Field(description="Records whose request failed.")
    cached: int = Field(description="Answers taken from the cache rather than computed.")
    prompt_tokens: int = Field(description="Prompt tokens over all records.")
    completion_tokens: int = Field(description="Generated tokens over all records.")
    wall_s: float = Field(description="Wall seconds of the generation step.")
    mismatched: int = Field(default=0, description="Cached results that their batch's recomputation (a resumed "
                                                   "run) did not reproduce; the cached ones were kept.")
    check_checked: int = Field(default=0, description="Results recomputed by --check-reproducible.")
    check_matched: int = Field(default=0, description="Of those, how many equal the stored result.")


def _label(config: GenerateConfig) -> str:
    if config.name:
        return config.name
    model = config.backend.model
    return model if model in MODELS or config.backend.kind != "hf" else Path(model).name.removesuffix(".gguf")


def generate(config: GenerateConfig, *, out: str | Path, backend: Backend | None = None,
             progress: bool | str = True) -> GenerateResult:
    """The generate stage: answer every conversation of ``config.split``; write
    ``out/generations.jsonl`` and ``out/manifest.json``. Python twin of ``tidekit generate``.

    ``backend``: an already loaded backend to use instead of loading ``config.backend``.
    """
    import time

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder")
    adapter = getattr(config.backend, "adapter", None)  # only kinds that load adapters have one
    condition: Condition = "fine_tuned" if adapter else "zero_shot"
    label = _label(config)
    with RunRecorder(out, command="generate", config=config, seed=config.params.seed,
                     inputs={"data": config.data}) as run:
        with run.step("load data"):
            dataset = load_dataset(config.data)
            conversations = (dataset.conversations if config.split == "all"
                             else dataset.by_split(config.split))
            if not conversations:
                splits = sorted({c.split or "none" for c in dataset.conversations})
                raise DataError(f"{config.data}: no conversations in split {config.split!r} (splits present: "
                                f"{', '.join(splits)}). Split it with 'tidekit data split' or pass --split all.")
            conversations = sorted(conversations, key=lambda c: c.id)[: config.limit]
        owned = backend is None
        with run.step("load model"):
            model = backend if backend is not None else executor_backend(config.backend, config.executor)
        try:
            run.models.append(model.identity)
            requests = [ChatRequest(id=c.id, messages=conversation_messages(c, config.system_prompt),
                                    params=config.params) for c in conversations]
            keys = [request_key(model.identity, r) for r in requests]
            cache = Path(config.cache) if config.cache else out / CACHE_FILE
            from tidekit.generation._cache import ResultCache

            before = ResultCache(cache)
            cached = len(before.get_many(keys))
            before.close()
            t0 = time.perf_counter()
            stats = RunStats()
            with run.step("generate"):
                results = run_requests(model, requests, cache=cache, progress=progress,
                                       max_errors=config.max_errors, stats=stats)
            wall = time.perf_counter() - t0
            check = None
            if config.check_reproducible:
                with run.step("check reproducible"):
                    check = check_reproducible(model, requests, results, config.check_reproducible)
        finally:
            if owned:
                model.close()
        params = config.params.model_dump(mode="json", exclude={"seed"})
        records = [
            GenerationRecord(conversation_id=req.id, system=system_name(label, condition), model=label,
                             condition=condition, adapter=adapter, messages=req.messages,
                             output=res.text if res.error is None else None, error=res.error,
                             prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                             latency_s=res.latency_s, params=params, seed=request_seed(req), cache_key=key)
            for req, res, key in zip(requests, results, keys, strict=True)
        ]
        with run.step("write"):
            write_generations(out / GENERATIONS_FILE, records)
        errors = sum(r.error is not None for r in records)
        result = GenerateResult(out=str(out), records=len(records), errors=errors, cached=cached,
                                prompt_tokens=sum(r.prompt_tokens or 0 for r in records),
                                completion_tokens=sum(r.completion_tokens or 0 for r in records),
                                wall_s=round(wall, 3), mismatched=len(stats.mismatched),
                                check_checked=check["checked"] if check else 0,
                                check_matched=check["matched"] if check else 0)
        run.counts.update(conversations=len(records), errors=errors, cached=cached,
                          computed=len(records) - cached - errors, prompt_tokens=result.prompt_tokens,
                          completion_tokens=result.completion_tokens)
        computed_tokens = sum(r.completion_tokens or 0 for r, res in zip(records, results, strict=True)
                              if res.error is None) if cached == 0 else None
        run.extra.update(system=system_name(label, condition), split=config.split,
                         executor=config.executor.model_dump(mode="json") | (
                             {"replicas_used": model.replicas} if hasattr(model, "replicas") else {}),
                         tokens_per_s=round(computed_tokens / wall, 1) if computed_tokens and wall > 0 else None,
                         numerics=model.capabilities.numerics,
                         batch_invariant=model.capabilities.batch_invariant,
                         schedule={"order": "longest first (characters), then request order",
                                   "batch_size": stats.batch_size, "batches": stats.batches,
                                   "computed_batches": stats.computed_batches, "sha256": stats.schedule,
                                   "cached_rows_checked": stats.checked, "mismatched": stats.mismatched})
        if check is not None:
            run.extra["reproducible_check"] = check
    return result


def check_reproducible(backend: Backend, requests: list[ChatRequest], results: list[ChatResult],
                       n: int) -> dict[str, Any]:
    """Recompute ``n`` successful results (evenly spread over the run) in fresh batches and count
    how many equal the stored text.

    Fresh: the chosen requests in reverse id order, in batches of about half the schedule's, so
    each meets other batch-mates, another batch size and other padding than in its run (seeds
    as in the run; the cache is neither read nor written).
    """
    from tidekit.generation._engine import _batch_size

    ok = [i for i, r in enumerate(results) if r.error is None]
    step = max(1, len(ok) // max(n, 1))
    chosen = sorted(ok[::step][:n], key=lambda i: requests[i].id, reverse=True)
    size = max(1, _batch_size(backend) // 2)
    seeded = [r if r.params.temperature == 0 else
              r.model_copy(update={"params": r.params.model_copy(update={"seed": request_seed(r)})})
              for r in (requests[i] for i in chosen)]
    again: list[ChatResult] = []
    for start in range(0, len(seeded), size):
        again.extend(backend.generate(seeded[start:start + size]))
    differ = [requests[i].id for i, new in zip(chosen, again, strict=True)
              if (new.error, new.text) != (None, results[i].text)]
    return {"checked": len(chosen), "matched": len(chosen) - len(differ), "batch_size": size,
            "mismatched": differ}
