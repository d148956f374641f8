"""The one small interface every chat backend implements.

A backend turns a batch of chat requests into results. It declares what it can do
(:class:`Capabilities`) and who it is (:class:`~tidekit._manifest.ModelIdentity`, recorded in
run manifests and cache keys). The generation engine (``tidekit.generation``) adds caching,
batching order, retries of failed items and progress on top; stages call the engine, not a
backend directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, cast, runtime_checkable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tidekit._config import StrictModel
from tidekit._manifest import ModelIdentity
from tidekit.data import Message

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendConfig",
    "BackendKind",
    "Capabilities",
    "ChatRequest",
    "ChatResult",
    "GenerationParams",
    "ResponseFormat",
    "TokenLogprob",
    "register_backend",
]


class GenerationParams(StrictModel):
    """Decoding parameters. ``temperature == 0`` means greedy (reproducible)."""

    max_new_tokens: int = Field(default=256, ge=1, le=32768, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy; >0 samples.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (sampled runs).")
    seed: int | None = Field(default=None, description="Seed; a sampled request derives its own from this.")
    stop: list[str] = Field(default_factory=list, description="Strings that end the reply (not included).")


class ResponseFormat(BaseModel):
    """A JSON schema the reply must follow (structured output).

    Backends with ``Capabilities.structured_output`` enforce it: ``hf`` by constrained decoding
    (llguidance), ``openai`` by ``response_format`` (falling back to free text where the server
    refuses it), ``anthropic`` by a forced tool call whose input is the reply. Others ignore it,
    so a caller still checks the text it gets back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A short name (the tool or schema name).")
    json_schema: dict[str, Any] = Field(description="The JSON schema of the whole reply (an object).")


class TokenLogprob(BaseModel):
    """One generated token, its log-probability and the most likely alternatives at its position."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(description="The token's text.")
    logprob: float = Field(description="Natural log of its probability.")
    top: list[tuple[str, float]] = Field(default_factory=list,
                                         description="(token text, logprob) of the most likely tokens there, "
                                                     "best first; under a response format, among allowed tokens.")


class ChatRequest(BaseModel):
    """One chat completion to compute."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Caller's id, returned on the result (e.g. a conversation id).")
    messages: list[Message] = Field(min_length=1, description="System, user and assistant messages, in order.")
    params: GenerationParams = Field(default_factory=GenerationParams)
    response_format: ResponseFormat | None = Field(
        default=None, description="A JSON schema the reply must follow, where the backend can enforce it.")
    logprobs: int = Field(default=0, ge=0, le=20, description="Return this many most likely tokens at each "
                                                               "position of the reply, where the backend can "
                                                               "(0 = none).")


class ChatResult(BaseModel):
    """The outcome of one request: a text, or an error saying why not."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    finish_reason: Literal["stop", "length", "error"] | None = None
    logprobs: list[TokenLogprob] | None = Field(default=None, description="Per generated token, when asked for "
                                                                          "and the backend gives them.")
    structured: bool | None = Field(default=None, description="With a response format: True when the backend "
                                                               "enforced it, False when it fell back to free text.")


class Capabilities(BaseModel):
    """What a backend supports, so callers can choose batch sizes and features."""

    batching: bool = Field(description="Computes several requests in one forward pass.")
    max_batch_size: int = Field(default=1, description="Largest useful batch.")
    system_role: bool = Field(default=True, description="Accepts a system message natively.")
    adapters: bool = Field(default=False, description="Can load a LoRA adapter.")
    token_counts: bool = Field(default=True, description="Reports exact prompt/completion token counts.")
    concurrency: int = Field(default=1, description="Requests it may run at once (remote backends).")
    context_length: int | None = Field(default=None, description="Context window in tokens, if known.")
    structured_output: bool = Field(default=False, description="Enforces a request's response_format (JSON "
                                                               "schema), at least where its server supports it.")
    logprobs: bool = Field(default=False, description="Can return token log-probabilities (request.logprobs).")
    batch_invariant: bool = Field(default=False, description="A request's output does not depend on which other "
                                                             "requests share its batch, their number or padding "
                                                             "(hf with reproducible: true; mock; vllm with its "
                                                             "batch-invariant mode on).")
    numerics: dict[str, Any] = Field(default_factory=dict, description="What decides the numbers besides the "
                                                                       "weights: dtype, kernels, threads, modes; "
                                                                       "recorded in manifests.")


class BackendConfig(StrictModel):
    """How to build a backend; a config entry, not code (e.g. any OpenAI-compatible server).

    The common part of every kind's options. Each kind has its own model (``HFConfig``,
    ``OpenAIConfig``, ...; see :data:`BACKENDS`), so an option of one kind given to another is an
    error naming both instead of being ignored. Validating or constructing a ``BackendConfig``
    dispatches on ``kind`` (default ``hf``): ``BackendConfig(kind="openai", base_url=...)`` is an
    ``OpenAIConfig``, and a config section typed ``BackendConfig`` holds the kind's model.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, polymorphic_serialization=True)

    kind: str = Field(default="hf", description="Which implementation: a kind of the backend registry; each "
                                                "kind has its own options (the 'Backend kind' tables).")
    model: str = Field(default="smollm2-135m", description="Registry alias, local folder, or server-side model name.")

    def __new__(cls, *args: Any, **data: Any) -> Self:
        # BackendConfig(kind=...) builds that kind's model; an unknown kind falls through to the
        # validator below, which names the known kinds
        if cls is BackendConfig and not args:
            spec = BACKENDS.get(data.get("kind", "hf"))
            if spec is not None:
                return cast(Self, super().__new__(spec.options))
        return super().__new__(cls)

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch_on_kind(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Validate ``data`` as its kind's model; a key that is not an option of it is an error
        naming the key and the kind (not pydantic's generic 'extra inputs')."""
        if not isinstance(data, dict):
            return handler(data)
        kind = data.get("kind", "hf") if cls is BackendConfig else cls.model_fields["kind"].default
        spec = BACKENDS.get(kind) if isinstance(kind, str) else None
        if spec is None:
            raise _error(cls, "backend_kind", "unknown backend kind; the kinds are: {kinds}",
                         {"kinds": ", ".join(sorted(BACKENDS))}, "kind", kind)
        target = spec.options
        foreign = [key for key in data if key not in target.model_fields]
        if foreign:
            # an option of another kind names this kind, its options and the kinds that have it; a
            # key no kind has is a plain unknown key (most likely a typo)
            options = ", ".join(name for name in target.model_fields if name != "kind")
            errors = [InitErrorDetails(type=PydanticCustomError(
                "backend_option", "not an option of the '{kind}' backend (its options: {options}); "
                "an option of: {owners}", {"kind": kind, "options": options, "owners": ", ".join(_owners(key))}),
                loc=(key,), input=data[key]) if _owners(key) else
                InitErrorDetails(type="extra_forbidden", loc=(key,), input=data[key]) for key in foreign]
            raise ValidationError.from_exception_data(cls.__name__, errors)
        if target is cls:
            return handler(data)
        return target.model_validate(data)


def _owners(key: str) -> list[str]:
    """The kinds that have the option ``key``."""
    return sorted(kind for kind, spec in BACKENDS.items() if key in spec.options.model_fields)


def _error(cls: type, kind: str, message: str, context: dict[str, Any], key: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
        type=PydanticCustomError(kind, message, context), loc=(key,), input=value)])


@dataclass(frozen=True)
class BackendKind:
    """One kind of backend: where its implementation is, and the model of its options."""

    factory: str  # "module:callable", imported only when the kind is used (torch, SDKs are heavy)
    options: type[BackendConfig]


# kind -> BackendKind: the one list of kinds (CLI choices and config validation derive from it)
BACKENDS: dict[str, BackendKind] = {}


def register_backend(kind: str, factory: str, options: type[BackendConfig]) -> None:
    """Add a kind: ``factory`` ("module:callable") builds a backend from an ``options`` instance."""
    declared = options.model_fields["kind"].default
    if declared != kind:
        raise ValueError(f"{options.__name__}.kind defaults to {declared!r}, not {kind!r}")
    BACKENDS[kind] = BackendKind(factory, options)


@runtime_checkable
class Backend(Protocol):
    """A chat model that answers batches of requests."""

    identity: ModelIdentity
    capabilities: Capabilities

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests`` (same order). A failure of one request is its ChatResult.error,
        not an exception; an exception means the backend itself is unusable."""
        ...

    def close(self) -> None:
        """Release memory, connections and threads."""
        ...
