"""Constrained decoding for the ``hf`` backend: a JSON schema compiled into a token grammar.

A request with a ``response_format`` is decoded under a grammar built from its JSON schema by
llguidance (``LLMatcher.grammar_from_json_schema``: compact JSON with ``", "`` and ``": "``
separators and properties in schema order, the way models write JSON); each step the row's
matcher writes the allowed next tokens into a bitmask and the decode loop masks the rest out of
the logits (``_decode._mask_disallowed``). The reply therefore always parses against the schema,
unless ``max_new_tokens`` cuts it short. Most of such a reply is forced (the keys, quotes and
punctuation of a verdict: the grammar allows one token there), and :meth:`SchemaConstraint.forced`
says which tokens, so the decode loop can append them without a step each (jump-forward).

Why llguidance: it computes the allowed-token bitmask of a 49k-token vocabulary per row per
step, which is the interface tidekit's own decode loop needs (no ``generate()``, no logits
processor), builds a matcher in about a millisecond, and installs as one 8 MB wheel. xgrammar
fills the mask faster but pulls in triton (about 1 GB on Linux x86-64, unused on CPU);
lm-format-enforcer 0.11.3 does not load with transformers 5. Measured in
``benchmarks/judge.py``; the choice is argued in docs/scoring.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tidekit.errors import BackendError, MissingDependencyError

if TYPE_CHECKING:
    import torch

__all__ = ["GrammarConstraints", "SchemaConstraint"]

# how the schema's JSON is written: no free whitespace, the separators models use
JSON_STYLE: Any = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class SchemaConstraint:
    """One row's grammar state (a :class:`~tidekit.backends._decode.ForcingConstraint`)."""

    def __init__(self, matcher: Any, fill: Any, mask_words: int) -> None:
        self.matcher = matcher
        self._fill = fill
        self._words = mask_words  # int32 words of a row's bitmask (32 tokens each)
        self._mask: torch.Tensor | None = None  # one row's bitmask, for checking forced tokens

    def fill(self, bitmask: torch.Tensor, index: int) -> None:
        self._fill(self.matcher, bitmask.numpy(), index)  # a view: the tensor's own memory

    def accept(self, token: int) -> bool:
        return bool(self.matcher.consume_token(token))

    def consume_tokens(self, tokens: list[int]) -> bool:
        return bool(self.matcher.consume_tokens(tokens))

    def forced(self) -> list[int]:
        """The tokens the grammar forces from here (llguidance's fast-forward tokens), cut at the
        first one that is not the only token :meth:`fill` allows at its position.

        The check is why a jump gives exactly what a step per token gives: where the mask leaves
        one token, a step chooses it whatever the logits, with log-probability 0. llguidance's
        masks hold only the canonical token of forced text (measured on the verdict schema: every
        fast-forward token was its position's only allowed token), so the cut is a safeguard.
        The matcher is advanced to check each position and rolled back.
        """
        import numpy as np
        import torch

        candidates = [int(t) for t in self.matcher.compute_ff_tokens()]
        if not candidates:
            return []
        if self._mask is None:
            self._mask = torch.zeros((1, self._words), dtype=torch.int32)
        words = self._mask.numpy()[0]
        taken = 0
        for token in candidates:
            self._mask.zero_()
            self._fill(self.matcher, words[None], 0)
            set_words = np.flatnonzero(words)
            if (len(set_words) != 1 or set_words[0] != token >> 5
                    or int(words[token >> 5]) & 0xFFFFFFFF != 1 << (token & 31)
                    or not self.matcher.consume_token(token)):
                break
            taken += 1
        if taken:
            self.matcher.rollback(taken)
        return candidates[:taken]


class GrammarConstraints:
    """Builds row constraints from JSON schemas for one tokenizer (grammars cached per schema)."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: set[int]) -> None:
        # llguidance.numpy, not llguidance.torch: the same mask fill, without the torch.compile that
        # importing llguidance.torch sets up (2.7 s measured, paid by every judge run)
        try:
            import llguidance
            import llguidance.hf
            import llguidance.numpy
        except ImportError:
            raise MissingDependencyError("constrained decoding (response_format) on the hf backend", "llguidance",
                                         "pip install 'tidekit[ml]'") from None
        self._llg = llguidance
        self._fill = llguidance.numpy.fill_next_token_bitmask
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(stop_ids))
        self._words = (vocab_size + 31) // 32
        self._grammars: dict[str, str] = {}

    def for_schema(self, schema: dict[str, Any]) -> SchemaConstraint:
        """A fresh constraint that admits exactly the JSON texts ``schema`` allows, written compactly."""
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = self._llg.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_STYLE)
            self._grammars[key] = grammar
        matcher = self._llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise BackendError(f"the response_format's JSON schema cannot be enforced: {matcher.get_error()}; "
                               "simplify the schema or send the request without response_format")
        return SchemaConstraint(matcher, self._fill, self._words)
