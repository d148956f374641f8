"""The one small interface every chat backend implements.

A backend turns a batch of chat requests into results. It declares what it can do
(:class:`Capabilities`) and who it is (:class:`~tidekit._manifest.ModelIdentity`, recorded in
run manifests and cache keys). The generation engine (``tidekit.generation``) adds caching,
batching order, retries of failed items and progress on top; stages call the engine, not a
backend directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from tidekit._config import StrictModel
from tidekit._manifest import ModelIdentity
from tidekit.data._generations import Message

__all__ = [
    "Backend",
    "BackendConfig",
    "Capabilities",
    "ChatRequest",
    "ChatResult",
    "GenerationParams",
    "ResponseFormat",
    "TokenLogprob",
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


class BackendConfig(StrictModel):
    """How to build a backend; a config entry, not code (e.g. any OpenAI-compatible server)."""

    kind: Literal["hf", "openai", "anthropic", "vllm"] = Field(default="hf", description="Which implementation.")
    model: str = Field(default="smollm2-135m", description="Registry alias, local folder, or server-side model name.")
    adapter: str | None = Field(default=None, description="LoRA adapter folder (hf only).")
    device: str = Field(default="auto", description="hf: 'auto', 'cpu' or 'cuda[:N]'.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="hf: 'auto' picks bf16 where the hardware supports it, else fp32.")
    batch_size: int = Field(default=32, ge=1, description="hf: most requests per forward pass.")
    kv_cache_gib: float = Field(default=4.0, gt=0, description="hf: most memory one decode batch's keys and values "
                                                                "may take; a batch of long prompts that would need "
                                                                "more is decoded in parts.")
    base_url: str | None = Field(default=None, description="openai/anthropic: server URL.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    concurrency: int = Field(default=4, ge=1, le=256, description="openai/anthropic: requests in flight.")
    timeout_s: float = Field(default=120.0, gt=0, description="openai/anthropic: per-request timeout.")
    max_retries: int = Field(default=4, ge=0, le=20, description="Retries on 429/5xx/timeouts, with backoff.")
    server_command: list[str] | None = Field(
        default=None, description="vllm: the command that starts a vLLM server, e.g. [/opt/vllm/bin/vllm, serve] "
                                  "(vLLM in its own environment); default: in-process vllm.LLM when vLLM imports "
                                  "here, else 'vllm serve' on PATH.")
    server_args: list[str] = Field(default_factory=list, description="vllm: extra arguments for the managed "
                                                                      "server, e.g. [--max-model-len, '4096'].")
    server_log: str | None = Field(default=None, description="vllm: the managed server's log file [a temp file].")
    startup_timeout_s: float = Field(default=900.0, gt=0, description="vllm: seconds to wait for the managed "
                                                                       "server to answer.")
    port: int | None = Field(default=None, ge=1, le=65535, description="vllm: the managed server's port [a free "
                                                                        "one].")
    optimize: bool = Field(default=True, description="hf on CPU: decode Llama/Qwen2 models with tidekit's lean "
                                                     "forward (fused projections, oneDNN pre-packed bf16 weights), "
                                                     "pre-pack other models' weights; agrees with transformers up "
                                                     "to bf16 rounding. false = the plain transformers forward.")


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
