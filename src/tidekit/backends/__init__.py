"""Model backends and the model registry.

One small protocol (:class:`Backend`: a batch of :class:`ChatRequest` in, :class:`ChatResult`
out, with :class:`Capabilities` and a model identity) and the kinds of the registry
(:data:`BACKENDS`) built by :func:`load_backend` from a :class:`BackendConfig`: ``hf`` (local
transformers), ``openai`` (any OpenAI-compatible server), ``anthropic``, ``vllm`` and ``mock``
(deterministic replies, no weights). Each kind has its own options model (:class:`HFConfig`, ...). The registry (:data:`MODELS`) maps aliases to
models; :func:`resolve_model_path` turns an alias into a local folder (converting the
package-shipped SmolLM2 once into a cache folder). Stages call models through
``tidekit.generation.run_requests``, which adds caching, batching order and resumption.
"""

from tidekit.backends._factory import BACKENDS, backend_kinds, load_backend
from tidekit.backends._mock import MockBackend
from tidekit.backends._options import (
    AnthropicConfig,
    HFConfig,
    MockConfig,
    OpenAIConfig,
    RemoteConfig,
    VLLMConfig,
)
from tidekit.backends._protocol import (
    Backend,
    BackendConfig,
    BackendKind,
    Capabilities,
    ChatRequest,
    ChatResult,
    GenerationParams,
    ResponseFormat,
    TokenLogprob,
    register_backend,
)
from tidekit.backends._registry import (
    MODELS,
    ModelSpec,
    cache_dir,
    get_model,
    hub_offline,
    resolve_model_path,
    sha256_file,
    smollm2_gguf,
    weights_fingerprint,
)

__all__ = [
    "BACKENDS",
    "MODELS",
    "AnthropicConfig",
    "Backend",
    "BackendConfig",
    "BackendKind",
    "Capabilities",
    "ChatRequest",
    "ChatResult",
    "GenerationParams",
    "HFConfig",
    "MockBackend",
    "MockConfig",
    "ModelSpec",
    "OpenAIConfig",
    "RemoteConfig",
    "ResponseFormat",
    "TokenLogprob",
    "VLLMConfig",
    "backend_kinds",
    "cache_dir",
    "get_model",
    "hub_offline",
    "load_backend",
    "register_backend",
    "resolve_model_path",
    "sha256_file",
    "smollm2_gguf",
    "weights_fingerprint",
]
