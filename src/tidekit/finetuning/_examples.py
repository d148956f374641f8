"""From conversations to supervised chat examples, and the length checks made before training.

An example is a conversational prompt-completion pair for TRL's SFTTrainer: the prompt is the
chat a model sees at generation time (``tidekit.generation.conversation_messages``: the system
prompt, client turns as ``user``, supporter turns as ``assistant``) and the completion is one
supporter reply as an ``assistant`` message. TRL then computes the loss on the completion
tokens only (the reply and its end-of-turn token), whatever the model's chat template.

Why prompt-completion and not TRL's ``assistant_only_loss``: that option needs a chat template
with ``{% generation %}`` markers, which SmolLM2's (and most small models') template lacks, and
TRL patches only the templates it knows (``get_training_chat_template`` raises for SmolLM2).
Prompt-completion pairs give the same mask for any template; a conversation with earlier
supporter turns yields one example per supporter turn (``targets: all_supporter_turns``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from tidekit.data import DEFAULT_SYSTEM_PROMPT, Conversation, Message
from tidekit.errors import ConfigError, DataError
from tidekit.generation import conversation_messages

__all__ = ["ExampleStats", "build_examples", "check_lengths", "default_system_prompt", "example_messages"]


def default_system_prompt() -> str:
    """The responder prompt ``tidekit generate`` uses, so the fine-tuned model is trained on it."""
    return DEFAULT_SYSTEM_PROMPT


def example_messages(messages: Sequence[Message], system_role: bool) -> list[dict[str, str]]:
    """Chat messages as dicts, with the system text folded into the first user turn when the
    template has no system role (the same folding the hf backend applies at generation)."""
    if system_role:
        return [{"role": m.role, "content": m.content} for m in messages]
    from tidekit.backends._hf import fold_system

    return fold_system(messages)


def build_examples(conversations: Sequence[Conversation], system_prompt: str, system_role: bool = True,
                   targets: str = "all_supporter_turns") -> list[dict[str, Any]]:
    """Prompt-completion examples (TRL's conversational format), in conversation order.

    Each example also carries ``conversation_id`` and ``turn`` (index of the target supporter
    turn; the reference is turn ``len(turns)``) for tracing; TRL ignores extra columns.
    """
    examples: list[dict[str, Any]] = []
    for conv in conversations:
        context = conversation_messages(conv, system_prompt)  # system + every turn, ends with the client
        if targets == "all_supporter_turns":
            for i, turn in enumerate(conv.turns):
                if turn.role == "supporter":
                    examples.append(_example(conv.id, i, context[: i + 1], turn.text, system_role))
        if conv.reference is not None:
            examples.append(_example(conv.id, len(conv.turns), context, conv.reference, system_role))
    return examples


def _example(conv_id: str, turn: int, prompt: Sequence[Message], reply: str, system_role: bool) -> dict[str, Any]:
    return {"prompt": example_messages(prompt, system_role),
            "completion": [{"role": "assistant", "content": reply}],
            "conversation_id": conv_id, "turn": turn}


def require_targets(conversations: Sequence[Conversation], split: str, where: str) -> None:
    """DataError when no conversation of ``split`` has supporter text to learn from."""
    if not conversations:
        raise DataError(f"{where}: no conversations in split {split!r}. Split the dataset with 'tidekit data split' "
                        "or set data.train_split.")
    if not any(c.reference is not None or any(t.role == "supporter" for t in c.turns) for c in conversations):
        raise DataError(f"{where}: none of the {len(conversations)} {split!r} conversations has a supporter turn "
                        "or a reference reply, so there is nothing to learn. Fine-tuning needs supporter replies "
                        "(TIDE's 'chatbot' text); check the dataset with 'tidekit data validate'.")


class ExampleStats(BaseModel):
    """Token lengths of the examples, measured with the model's tokenizer and chat template."""

    examples: int = Field(description="Examples checked.")
    longest_prompt: int = Field(description="Tokens in the longest prompt (with the generation prompt).")
    longest_example: int = Field(description="Tokens in the longest prompt + reply.")
    truncated: int = Field(description="Examples whose reply is cut at max_length.")
    tokens: int = Field(description="Tokens over all examples after truncation at max_length.")
    reply_tokens: int = Field(description="Reply (loss-bearing) tokens after truncation.")


def check_lengths(examples: Sequence[dict[str, Any]], tokenizer: Any, max_length: int, what: str) -> ExampleStats:
    """Measure every example; ConfigError if a prompt leaves no room for a reply within max_length."""
    too_long: list[tuple[str, int]] = []
    longest_prompt = longest = truncated = tokens = reply_tokens = 0
    for ex in examples:
        prompt = _n_tokens(tokenizer, ex["prompt"], add_generation_prompt=True)
        full = _n_tokens(tokenizer, ex["prompt"] + ex["completion"], add_generation_prompt=False)
        longest_prompt, longest = max(longest_prompt, prompt), max(longest, full)
        if prompt >= max_length:
            too_long.append((str(ex["conversation_id"]), prompt))
        truncated += full > max_length
        tokens += min(full, max_length)
        reply_tokens += max(0, min(full, max_length) - prompt)
    if too_long:
        shown = ", ".join(f"{cid} ({n} tokens)" for cid, n in sorted(too_long, key=lambda t: -t[1])[:5])
        suggestion = -(-(longest_prompt + 128) // 64) * 64
        raise ConfigError(
            f"train.max_length={max_length} is shorter than the prompt of {len(too_long)} {what} example(s): "
            f"{shown}{' ...' if len(too_long) > 5 else ''}. Their replies would get no loss. Raise train.max_length "
            f"(e.g. to {suggestion}), shorten data.system_prompt, or drop those conversations.")
    return ExampleStats(examples=len(examples), longest_prompt=longest_prompt, longest_example=longest,
                        truncated=truncated, tokens=tokens, reply_tokens=reply_tokens)


def _n_tokens(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> int:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                        return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding regardless
        ids = ids["input_ids"]
    return len(ids)
