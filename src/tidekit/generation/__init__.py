"""The generation engine every stage calls models through, and dataset-level generation.

- :func:`run_requests`: batched (longest first, a fixed schedule), cached in SQLite (WAL),
  resumable after a kill, error-tolerant up to ``max_errors``, with a progress bar.
- :func:`generate` (the stage, ``generate(GenerateConfig(...), out=...)``): answer a dataset
  split with one model and write ``generations.jsonl`` + ``manifest.json`` (what ``tidekit
  generate`` runs).
- :class:`ExecutorConfig` / :class:`RayBackend`: the same, with the model replicated on Ray
  actors (one per GPU or CPU worker); the driver alone writes the cache and outputs.

Example::

    from tidekit.backends import BackendConfig, ChatRequest, load_backend
    from tidekit.generation import run_requests
    backend = load_backend(BackendConfig(model="smollm2-135m"))
    results = run_requests(backend, requests, cache="runs/cache.sqlite")
"""

from tidekit.data import DEFAULT_SYSTEM_PROMPT, conversation_messages
from tidekit.generation._cache import ResultCache
from tidekit.generation._dataset import (
    CACHE_FILE,
    GenerateConfig,
    GenerateResult,
    generate,
)
from tidekit.generation._engine import (
    RunStats,
    TooManyErrors,
    batch_plan,
    request_key,
    request_seed,
    run_requests,
    schedule_digest,
)
from tidekit.generation._ray import ExecutorConfig, RayBackend, executor_backend
from tidekit.generation._stage import GENERATE_STAGE  # noqa: F401  (the study's stage specs)

__all__ = [
    "CACHE_FILE",
    "DEFAULT_SYSTEM_PROMPT",
    "ExecutorConfig",
    "GenerateConfig",
    "GenerateResult",
    "RayBackend",
    "ResultCache",
    "RunStats",
    "TooManyErrors",
    "batch_plan",
    "conversation_messages",
    "executor_backend",
    "generate",
    "request_key",
    "request_seed",
    "run_requests",
    "schedule_digest",
]
