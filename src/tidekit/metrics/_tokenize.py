"""How tidekit splits a response into words for distinct-n, length ratio and METEOR.

Lower-cased runs of letters and digits, keeping inner apostrophes ("don't", "it's") and
dropping punctuation. It needs no downloaded tokenizer model (nltk's ``word_tokenize`` needs
punkt data), so it works offline and gives the same tokens everywhere. ROUGE-L and BLEU use the
tokenizers of their reference implementations instead (see ``_rouge`` and ``_bleu``).
"""

from __future__ import annotations

import re

__all__ = ["words"]

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``, punctuation dropped."""
    return _WORD.findall(text.lower())
