"""Ray: one backend replica per GPU (or CPU worker), across one machine or many.

:class:`RayBackend` looks like any other backend to the engine, so caching, resumption,
exactly-once results, error handling and progress are the engine's as always: the driver (the
process that runs ``tidekit generate`` or ``tidekit run``) alone reads and writes the cache and
the outputs. Behind it, ``replicas`` Ray actors each load the configured backend once; each
engine batch is cut into contiguous shards of the replica's own batch size, the shards are
answered in parallel, and the results come back to the driver in order.

Because the engine's batches are ``replicas`` times the replica's batch size and are cut into
contiguous shards, every shard is exactly a batch the plain (one-process) run would have
computed: greedy outputs are the same with and without Ray.

Ray is optional (``pip install 'tidekit[ray]'``). ``address="local"`` starts a private Ray
instance on loopback (no dashboard, ``num_cpus`` bounded) and stops it on close; any other
address joins a running cluster (``ray start --head`` on the head node; see docs/scale.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from tidekit._config import StrictModel
from tidekit._manifest import ModelIdentity
from tidekit.backends import (
    BackendConfig,
    Capabilities,
    ChatRequest,
    ChatResult,
    HFConfig,
    load_backend,
)
from tidekit.errors import BackendError, ConfigError, MissingDependencyError

__all__ = ["ExecutorConfig", "RayBackend", "executor_backend"]

# Environment a replica needs to find models offline the way the driver does.
_FORWARD_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_TOKEN", "TIDEKIT_CACHE", "TIDEKIT_DEBUG")


class ExecutorConfig(StrictModel):
    """Where model calls run: in this process, or on Ray actors (one backend replica each)."""

    kind: Literal["local", "ray"] = Field(default="local", description="'local': this process; 'ray': Ray actors.")
    address: str = Field(default="local", description="ray: 'local' starts a private Ray instance on loopback; "
                                                      "otherwise a cluster address (e.g. 'ray://head:10001' or "
                                                      "'head:6379', or 'auto' for the cluster this machine "
                                                      "joined).")
    replicas: int = Field(default=2, ge=1, le=1024, description="ray: backend replicas (actors).")
    cpus_per_replica: float = Field(default=1.0, ge=0, description="ray: CPUs reserved per replica (also its "
                                                                   "thread count on CPU).")
    gpus_per_replica: float = Field(default=0.0, ge=0, description="ray: GPUs per replica (1 = one GPU each).")
    num_cpus: int | None = Field(default=None, ge=1, description="ray, address 'local': CPUs the private "
                                                                 "instance may use (default: replicas x "
                                                                 "cpus_per_replica, at most the machine's).")


class _Replica:
    """The actor: one loaded backend, spoken to in JSON (no pickled pydantic objects)."""

    def __init__(self, config_json: str) -> None:
        self.backend = load_backend(BackendConfig.model_validate_json(config_json))

    def describe(self) -> tuple[str, str]:
        return self.backend.identity.model_dump_json(), self.backend.capabilities.model_dump_json()

    def generate(self, requests: list[str]) -> list[str]:
        answers = self.backend.generate([ChatRequest.model_validate_json(r) for r in requests])
        return [a.model_dump_json() for a in answers]

    def close(self) -> None:
        self.backend.close()


class RayBackend:
    """``replicas`` copies of a backend on Ray actors, behind the ordinary backend interface."""

    def __init__(self, config: BackendConfig, executor: ExecutorConfig) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("running on Ray (--ray, executor.kind: ray)", "ray",
                                         "pip install 'tidekit[ray]'") from None
        self._ray = ray
        self._started = False
        env = {k: os.environ[k] for k in _FORWARD_ENV if k in os.environ}
        if not ray.is_initialized():
            if executor.address == "local":
                want = int(max(1, executor.replicas * max(executor.cpus_per_replica, 0.0) + 0.999))
                ray.init(num_cpus=executor.num_cpus or min(want, os.cpu_count() or 1), include_dashboard=False,
                         _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False,
                         runtime_env={"env_vars": env})
            else:
                _check_reachable(executor.address)
                try:
                    ray.init(address=executor.address, log_to_driver=False, configure_logging=False,
                             runtime_env={"env_vars": env})
                except (ConnectionError, RuntimeError) as exc:
                    raise BackendError(f"cannot join the Ray cluster at {executor.address!r} ({exc}); start it "
                                       "with 'ray start --head' (see docs/scale.md) or use --ray local") from None
            self._started = True
        actor = ray.remote(_Replica).options(num_cpus=executor.cpus_per_replica,
                                             num_gpus=executor.gpus_per_replica or None)
        self._actors: list[Any] = [actor.remote(config.model_dump_json()) for _ in range(executor.replicas)]
        try:
            described = ray.get([a.describe.remote() for a in self._actors])
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise BackendError(f"a Ray replica could not load {config.kind}:{config.model}: {exc}") from None
        identities = {d[0] for d in described}
        if len(identities) != 1:
            self.close()
            raise BackendError("the Ray replicas loaded different models (check that every node has the same "
                               f"model files): {sorted(identities)}")
        self.identity = ModelIdentity.model_validate_json(described[0][0])
        inner = Capabilities.model_validate_json(described[0][1])
        self._shard = max(1, inner.max_batch_size if inner.batching else inner.concurrency * 4)
        self.capabilities = inner.model_copy(update={
            "max_batch_size": inner.max_batch_size * executor.replicas,
            "concurrency": inner.concurrency * executor.replicas})
        self.replicas = executor.replicas

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Shards of the replica batch size, answered in parallel, results in request order."""
        shards = [list(requests[i:i + self._shard]) for i in range(0, len(requests), self._shard)]
        futures = [self._actors[n % len(self._actors)].generate.remote([r.model_dump_json() for r in shard])
                   for n, shard in enumerate(shards)]
        try:
            answers = self._ray.get(futures)
        except self._ray.exceptions.RayError as exc:
            raise BackendError(f"a Ray replica failed ({type(exc).__name__}: {exc}); finished batches are "
                               "cached: rerun to resume") from None
        return [ChatResult.model_validate_json(a) for shard in answers for a in shard]

    def close(self) -> None:
        for actor in getattr(self, "_actors", []):
            with contextlib.suppress(self._ray.exceptions.RayError, ValueError):  # already gone
                self._ray.kill(actor)
        self._actors.clear()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a cluster address nobody answers at (Ray itself waits for minutes)."""
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT or ray://HOST:PORT (or 'local', 'auto')")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise BackendError(f"cannot join the Ray cluster at {address!r}: nothing answers there ({exc}); start it "
                           "with 'ray start --head' (see docs/scale.md) or use --ray local") from None


def executor_backend(config: BackendConfig, executor: ExecutorConfig | None) -> Any:
    """The backend to run ``config`` on: loaded here, or replicated on Ray."""
    if executor is None or executor.kind == "local":
        return load_backend(config)
    if isinstance(config, HFConfig) and config.device == "auto" and executor.gpus_per_replica == 0:
        config = config.model_copy(update={"device": "cpu"})  # replicas on CPU workers: no GPU reserved
    if executor.replicas < 1:
        raise ConfigError("executor.replicas must be at least 1")
    return RayBackend(config, executor)
