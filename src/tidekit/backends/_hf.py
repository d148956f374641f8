"""The ``hf`` backend: a transformers chat model on CPU or CUDA, optionally with a LoRA adapter.

Loads from a registry alias, a local folder, a ``.gguf`` file or (online) a Hub id; picks the
dtype from the hardware (bf16 where the CPU or GPU supports it, else fp32) unless told; applies
the model's own chat template (folding the system text into the first user turn for templates
without a system role); decodes a batch in one left-padded forward pass (see ``_decode.py``).
A request's ``response_format`` is enforced by constrained decoding (``_constrain.py``,
llguidance); ``logprobs`` returns the most likely tokens at each position of the reply.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit._manifest import ModelIdentity
from tidekit.backends._decode import RowOutput, RowSettings, decode_batch
from tidekit.backends._lean import lean_decoder_for
from tidekit.backends._options import HFConfig
from tidekit.backends._protocol import (
    Capabilities,
    ChatRequest,
    ChatResult,
    TokenLogprob,
)
from tidekit.backends._registry import MODELS, resolve_model_path, weights_fingerprint
from tidekit.backends._tensors import attention_shape, pack_linear_weights
from tidekit.data import Message
from tidekit.errors import BackendError, MissingDependencyError

if TYPE_CHECKING:
    from tidekit.backends._constrain import GrammarConstraints

__all__ = ["HFBackend", "fold_system", "pick_dtype"]


def pick_dtype(requested: str, device: str) -> str:
    """The dtype name to load with: ``requested`` unless 'auto', else bf16 where supported."""
    import torch

    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    mkldnn = getattr(torch.ops, "mkldnn", None)
    bf16 = bool(mkldnn is not None and hasattr(mkldnn, "_is_mkldnn_bf16_supported")
                and mkldnn._is_mkldnn_bf16_supported())
    return "bfloat16" if bf16 else "float32"


def _pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {requested!r} was asked for but CUDA is not available here; "
                           "use --device cpu (or device: auto)")
    return requested


def fold_system(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Messages for a template without a system role: the system text opens the first user turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
    if system:
        if rest and rest[0]["role"] == "user":
            rest[0] = {"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}
        else:
            rest.insert(0, {"role": "user", "content": system})
    return rest


class HFBackend:
    """A local transformers chat model (see the module docstring)."""

    def __init__(self, config: HFConfig) -> None:
        tune_openmp_waits()
        try:
            import torch
            import transformers
        except ImportError:
            raise MissingDependencyError("the hf backend", "torch transformers", "pip install 'tidekit[ml]'") from None
        self.config = config
        if config.adapter and not (Path(config.adapter) / "adapter_config.json").is_file():
            raise BackendError(f"{config.adapter} is not a LoRA adapter folder (no adapter_config.json); give "
                               "the folder 'tidekit finetune' wrote")
        self._lock = threading.Lock()  # one decode at a time (the server calls from threads)
        self.device = _pick_device(config.device)
        self.dtype = pick_dtype(config.dtype, self.device)
        torch_dtype = getattr(torch, self.dtype)
        source, gguf = self._locate(config.model)
        kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
            model: Any = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise BackendError(f"could not load model from {source}: {exc}. Give a folder with config.json, "
                               "weights and tokenizer files, a .gguf file, or a registry alias "
                               "(tidekit models lists them).") from None
        if gguf:
            model = model.to(dtype=torch_dtype)
        self.spec = MODELS.get(config.model)
        self.adapter_sha: str | None = None
        if config.adapter:
            model = self._attach_adapter(model, Path(config.adapter))
        model = model.to(self.device).eval()
        # counted before packing: packed weights are plain tensors, not parameters
        self.parameter_count = sum(p.numel() for p in model.parameters())
        self.packed = 0  # matmuls running on oneDNN pre-packed weights
        # on CPU, Llama-family models decode through the lean forward pass (fused, pre-packed
        # projections; see _lean.py), which takes over their projection weights; others get
        # their nn.Linear layers pre-packed in place
        self.lean = (lean_decoder_for(model, take_weights=True, aligned=config.reproducible)
                     if self.device == "cpu" and config.optimize else None)
        if self.lean is not None:
            self.packed = self.lean.packed
        elif self.device == "cpu" and self.dtype == "bfloat16" and config.optimize:
            self.packed = pack_linear_weights(model)
        self.model = model
        if self.tokenizer.chat_template is None:
            raise BackendError(f"{config.model}: the tokenizer has no chat template; tidekit needs an instruct "
                               "(chat) model")
        self.tokenizer.padding_side = "left"
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        eos = {gen_eos} if isinstance(gen_eos, int) else set(gen_eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.add(int(self.tokenizer.eos_token_id))
        self.eos_ids = eos
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(eos))
        _, kv_heads, head_dim = attention_shape(model.config)
        # keys + values, every layer, in the model's dtype (fp32 in the lean batch-invariant mode)
        cache_bytes = 4 if config.reproducible and self.lean is not None else torch_dtype.itemsize
        self.kv_bytes_per_token = 2 * model.config.num_hidden_layers * kv_heads * head_dim * cache_bytes
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0)
                                  or (self.spec.context if self.spec else 2048))
        self.system_role = self.spec.system_role if self.spec else _template_has_system(self.tokenizer)
        fingerprint = weights_fingerprint(Path(source) / gguf if gguf else Path(source))
        # batch-invariant outputs are other numbers than the batch-dependent path's: another key
        revision = (f"dtype={self.dtype}" + (f";adapter={self.adapter_sha[:16]}" if self.adapter_sha else "")
                    + (";batch-invariant-v3" if config.reproducible else ""))  # v3: fixed-order fp32 attention, own-length prefill
        self.identity = ModelIdentity(alias=config.model if self.spec else Path(config.model).name,
                                      source=str(source if not gguf else Path(source) / gguf),
                                      revision=revision, sha256=fingerprint, role="system")
        self.capabilities = Capabilities(batching=True, max_batch_size=config.batch_size,
                                         system_role=self.system_role, adapters=True, token_counts=True,
                                         concurrency=1, context_length=self.context_length,
                                         structured_output=_has_llguidance(), logprobs=True,
                                         batch_invariant=config.reproducible, numerics=self._numerics())
        self._grammars: GrammarConstraints | None = None  # built on the first response_format

    def _numerics(self) -> dict[str, Any]:
        """What decides this backend's numbers besides the weights (recorded in manifests)."""
        import torch

        from tidekit.backends._lean import SLOT_GRID

        lean = self.lean is not None
        mode = ("off" if not self.config.reproducible else
                "lean forward: slot = position, fixed-order fp32 attention over a fixed slot grid" if lean else
                "transformers forward: one request per forward pass")
        out: dict[str, Any] = {
            "dtype": self.dtype, "device": self.device, "batch_size": self.config.batch_size,
            "reproducible": self.config.reproducible, "batch_invariant_mode": mode,
            "forward": "lean" if lean else "transformers", "packed_matmuls": self.packed,
            "share_prefix": self.config.share_prefix, "jump_forward": self.config.jump_forward,
            "kv_cache_gib": self.config.kv_cache_gib, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_bf16": bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)()),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                "MKL_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
                    if k in os.environ},
        }
        if lean and self.config.reproducible:
            out["attention_slot_grid"] = {"decode": SLOT_GRID, "prefill": SLOT_GRID}
            out["attention"] = "fp32 matmuls and softmax over an fp32 key/value cache (fixed reduction order)"
            out["share_prefix"] = False  # batch-invariant mode prefills every prompt whole
        return out

    @staticmethod
    def _locate(model: str) -> tuple[str, str | None]:
        path = Path(model).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise BackendError(f"GGUF file not found: {path}")
            return str(path.parent), path.name
        if model in MODELS or path.is_dir():
            return str(resolve_model_path(model)), None
        if "/" in model and not path.exists():  # a Hub id
            return str(resolve_model_path(model)), None
        raise BackendError(f"model {model!r} is neither a registry alias nor a local folder or .gguf file. "
                           "Run 'tidekit models' to list aliases, or give the path of a downloaded model.")

    def _attach_adapter(self, model: Any, adapter: Path) -> Any:
        try:
            from peft import PeftModel
        except ImportError:
            raise MissingDependencyError("LoRA adapters", "peft") from None
        try:
            peft_model = PeftModel.from_pretrained(model, str(adapter))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise BackendError(f"could not load the adapter {adapter} onto {self.config.model}: {exc}. "
                               "Was it trained for this base model?") from None
        self.adapter_sha = weights_fingerprint(adapter)
        # merged weights decode as fast as the base model and can be packed
        return peft_model.merge_and_unload()

    # ---- prompts ------------------------------------------------------------------------------
    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of ``messages`` under the model's chat template, ready for a reply."""
        chat = (fold_system(messages) if not self.system_role
                else [{"role": m.role, "content": m.content} for m in messages])
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _check(self, request: ChatRequest, ids: list[int]) -> str | None:
        limit = self.context_length
        if len(ids) + request.params.max_new_tokens > limit:
            return (f"the prompt has {len(ids)} tokens; with max_new_tokens={request.params.max_new_tokens} it "
                    f"exceeds the model's context of {limit} tokens. Shorten the conversation or lower "
                    "max_new_tokens.")
        return None

    # ---- the protocol -------------------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return self.run_batch(requests)

    def run_batch(self, requests: Sequence[ChatRequest], prompts: Sequence[list[int] | None] | None = None,
                  on_step: Callable[[int, list[int], bool], None] | None = None,
                  cancelled: Callable[[int], bool] | None = None) -> list[ChatResult]:
        """:meth:`generate` with the hooks ``tidekit serve`` batches requests through.

        ``prompts``: token ids to decode from instead of a request's messages under the chat
        template (a raw ``/v1/completions`` prompt, see :meth:`encode_text`), None where the
        messages apply. ``on_step(i, token_ids, finished)`` after every step of request ``i``
        (its index in ``requests``: streaming); ``cancelled(i)`` asked after every step, True
        drops request ``i`` from the batch (its result is an error saying so). A request that
        cannot run (too long for the context, a seed out of range, a schema the grammar cannot
        enforce, text the tokenizer rejects) gets its error in its result; the others still run.
        Without hooks the decode is exactly :meth:`generate`'s (same parts, same numerics).
        """
        results: dict[int, ChatResult] = {}
        todo: list[tuple[int, list[int]]] = []
        settings: dict[int, RowSettings] = {}
        for i, req in enumerate(requests):
            given = prompts[i] if prompts is not None else None
            ids, problem = self._prepare(req, given)
            if problem is None:
                try:
                    settings[i] = self._settings(req)
                except (MissingDependencyError, KeyboardInterrupt, SystemExit):
                    raise
                except BackendError as exc:
                    problem = str(exc)
                except BaseException as exc:  # llguidance refused the schema (a Rust panic is a BaseException)
                    problem = (f"the response_format's JSON schema cannot be enforced: {type(exc).__name__}: {exc}; "
                               "send a valid JSON schema")
            if problem:
                results[i] = ChatResult(id=req.id, error=problem, prompt_tokens=len(ids) if ids else None,
                                        finish_reason="error")
            else:
                todo.append((i, ids))
        for part in self._parts(todo, requests):
            results.update(self._decode_part(part, requests, settings, on_step, cancelled))
        return [results[i] for i in range(len(requests))]

    def _prepare(self, request: ChatRequest, ids: list[int] | None) -> tuple[list[int], str | None]:
        """The prompt's token ids and why the request cannot run (None when it can)."""
        if ids is None:
            try:
                ids = self.encode(request.messages)
            except Exception as exc:  # the tokenizer or template refused the text: that request's error
                return [], f"the messages could not be tokenised: {type(exc).__name__}: {exc}"
        seed = request.params.seed
        if seed is not None and not -(2**63) <= seed < 2**64:
            return ids, f"seed {seed} is outside the range this backend can seed (-2**63 to 2**64 - 1)"
        return ids, self._check(request, ids)

    def _decode_part(self, part: list[tuple[int, list[int]]], requests: Sequence[ChatRequest],
                     settings: dict[int, RowSettings], on_step: Callable[[int, list[int], bool], None] | None,
                     cancelled: Callable[[int], bool] | None) -> dict[int, ChatResult]:
        """Decode one part (a batch that fits the cache budget); results by request index."""
        index = [i for i, _ in part]
        step_hook = None if on_step is None else (lambda row, ids, done: on_step(index[row], ids, done))
        cancel_hook = None if cancelled is None else (lambda row: cancelled(index[row]))
        t0 = time.perf_counter()
        with self._lock:
            outs = decode_batch(self.model, self.tokenizer, [ids for _, ids in part],
                                [settings[i] for i in index], self.eos_ids, self.pad_id,
                                on_step=step_hook, cancelled=cancel_hook, **self._decode_options())
        share = (time.perf_counter() - t0) / len(part)
        results: dict[int, ChatResult] = {}
        for (i, ids), out in zip(part, outs, strict=True):
            req = requests[i]
            if out.finish_reason == "cancelled":
                results[i] = ChatResult(id=req.id, error="cancelled: the request was abandoned or timed out",
                                        prompt_tokens=len(ids), completion_tokens=len(out.token_ids),
                                        finish_reason="error")
                continue
            results[i] = ChatResult(id=req.id, text=out.text, prompt_tokens=len(ids),
                                    completion_tokens=len(out.token_ids), latency_s=round(share, 4),
                                    finish_reason=out.finish_reason,
                                    logprobs=self._logprobs(out) if req.logprobs else None,
                                    structured=True if req.response_format is not None else None)
        return results

    def encode_text(self, text: str) -> list[int]:
        """Token ids of a raw prompt (no chat template; the tokenizer's special tokens as it adds them)."""
        return list(self.tokenizer(text)["input_ids"])

    def _decode_options(self) -> dict[str, Any]:
        """How ``decode_batch`` runs for this backend (the same for batches and streams)."""
        return {"lean": self.lean, "share_prefix": self.config.share_prefix, "jump_forward": self.config.jump_forward}

    def _settings(self, request: ChatRequest) -> RowSettings:
        p = request.params
        constraint = None
        if request.response_format is not None:
            if self._grammars is None:
                from tidekit.backends._constrain import GrammarConstraints

                self._grammars = GrammarConstraints(self.tokenizer, int(self.model.config.vocab_size), self.eos_ids)
            constraint = self._grammars.for_schema(request.response_format.json_schema)
        return RowSettings(max_new_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
                           seed=p.seed, stop=tuple(p.stop), constraint=constraint, logprobs=request.logprobs)

    def _logprobs(self, out: RowOutput) -> list[TokenLogprob]:
        def text(token: int) -> str:
            return str(self.tokenizer.decode([token]))

        return [TokenLogprob(token=text(t), logprob=lp, top=[(text(a), alp) for a, alp in top])
                for t, (lp, top) in zip(out.token_ids, out.logprobs, strict=True)]

    def _parts(self, todo: list[tuple[int, list[int]]],
               requests: Sequence[ChatRequest]) -> list[list[tuple[int, list[int]]]]:
        """``todo`` cut, in order, into decode batches whose key/value buffers fit ``kv_cache_gib``.

        A batch's buffers hold rows x (longest prompt + most new tokens) positions, so one long
        prompt in a big batch can need gigabytes; the cut depends on the requests alone, so a
        rerun decodes the same parts (and, greedy, gives the same outputs).

        With ``jump_forward``, requests are first grouped by their response schema (free text
        apart): a forward pass takes a grammar's forced tokens in one go only when every row of
        the batch is at such a run, so rows in lockstep must not share a batch with rows whose
        grammar (a judge's reversed-order bias probe) or free text puts them elsewhere.
        """
        if self.config.reproducible and self.lean is None:
            # the transformers forward has no batch-invariant mode: one request per forward pass
            return [[item] for item in todo]
        if self.config.jump_forward:
            groups: dict[str, list[tuple[int, list[int]]]] = {}
            for i, ids in todo:
                fmt = requests[i].response_format
                key = "" if fmt is None else json.dumps(fmt.json_schema, sort_keys=True)
                groups.setdefault(key, []).append((i, ids))
            return [part for group in groups.values() for part in self._cut(group, requests)]
        return self._cut(todo, requests)

    def _cut(self, todo: list[tuple[int, list[int]]],
             requests: Sequence[ChatRequest]) -> list[list[tuple[int, list[int]]]]:
        budget = self.config.kv_cache_gib * 2**30
        parts: list[list[tuple[int, list[int]]]] = []
        width = new = 0
        for i, ids in todo:
            w, n = len(ids), requests[i].params.max_new_tokens
            if not parts or (len(parts[-1]) + 1) * (max(width, w) + max(new, n)) * self.kv_bytes_per_token > budget:
                parts.append([])  # a new part, sized by this request alone
                width = new = 0
            parts[-1].append((i, ids))
            width, new = max(width, w), max(new, n)
        return parts

    def stream(self, request: ChatRequest) -> Generator[str, None, ChatResult]:
        """Yield the reply to one request as text pieces while it is generated.

        The generator's return value (``StopIteration.value``) is the finished ``ChatResult``, so
        a caller that needs the finish reason or the token counts (``tidekit serve``) gets them.
        """
        import queue

        ids = self.encode(request.messages)
        problem = self._check(request, ids)
        if problem:
            raise BackendError(problem)
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        sent = [""]
        stops = [s for s in request.params.stop if s]

        def on_step(_row: int, token_ids: list[int], _finished: bool) -> None:
            text = str(self.tokenizer.decode(token_ids, skip_special_tokens=True))
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                return
            # never send a stop string, nor the start of one that the next tokens may complete:
            # what is sent cannot be taken back (the decoder cuts the final text the same way)
            for stop in stops:
                if stop in text:
                    text = text[:text.index(stop)]
            held = max((k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
            text = text[:len(text) - held]
            if len(text) > len(sent[0]) and text.startswith(sent[0]):
                pieces.put(("piece", text[len(sent[0]):]))
                sent[0] = text

        def work() -> None:
            try:
                with self._lock:
                    outs = decode_batch(self.model, self.tokenizer, [ids], [self._settings(request)], self.eos_ids,
                                        self.pad_id, on_step=on_step, **self._decode_options())
                final = outs[0].text
                if final.startswith(sent[0]) and len(final) > len(sent[0]):
                    pieces.put(("piece", final[len(sent[0]):]))
                pieces.put(("end", outs[0]))
            except Exception as exc:  # handed to the consumer thread, which re-raises it
                pieces.put(("error", exc))

        threading.Thread(target=work, daemon=True).start()
        while True:
            kind, value = pieces.get()
            if kind == "end":
                out: RowOutput = value
                return ChatResult(id=request.id, text=out.text, prompt_tokens=len(ids),
                                  completion_tokens=len(out.token_ids), finish_reason=out.finish_reason)
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self.model = None
        self.lean = None
        import gc

        gc.collect()


def tune_openmp_waits() -> None:
    """Bound how long idle OpenMP threads spin before sleeping, unless the user chose a policy.

    Decoding runs thousands of small parallel ops back to back, so threads that sleep at once
    (``OMP_WAIT_POLICY=PASSIVE``) pay a wake-up on every op, while threads that spin for long
    (libgomp's default, 300,000 spins) burn the time slices their partner threads need on a
    shared machine. ``GOMP_SPINCOUNT=10000`` sits between: on the idle 2-core machine a 64 x 64
    SmolLM2 decode ran at 575 tok/s with it, 551 with the default and 389 with PASSIVE; with ten
    busy processes on the 2 cores a 2-prompt decode took 1.4 s with it and 20.9 s with PASSIVE
    (noisy; the default once took 57.7 s there). OpenMP reads the variables when torch loads,
    so this only takes effect if torch is not imported yet.
    """
    if "torch" not in sys.modules and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
        os.environ["GOMP_SPINCOUNT"] = "10000"




def _has_llguidance() -> bool:
    import importlib.util

    return importlib.util.find_spec("llguidance") is not None


def _template_has_system(tokenizer: Any) -> bool:
    try:
        tokenizer.apply_chat_template([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}],
                                      tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja raises TemplateError (or others) when the template rejects a system role
        return False
    return True
