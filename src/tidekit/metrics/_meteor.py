"""METEOR (Banerjee and Lavie 2005) with nltk, reading WordNet from Debian's wordnet-base offline.

Scores come from ``nltk.translate.meteor_score.meteor_score`` (exact, Porter-stem and WordNet
synonym matching; alpha 0.9, beta 3, gamma 0.5) over tidekit's word tokens
(:func:`tidekit.metrics._tokenize.words`; nltk's own tokenizer would need downloaded punkt data).

WordNet without ``nltk.download``: Debian's ``wordnet-base`` package installs the WordNet 3.0
database in ``/usr/share/wordnet`` (``apt-get install wordnet-base``). nltk's reader needs three
things that folder lacks: a ``lexnames`` file (the 45 lexicographer file names, a fixed list
given in the ``lexnames(5WN)`` manual page, written here), an ``index.sense`` file (the sense-key
index, shipped by Debian in ``wordnet-sense-index``; used if present, else left empty, which
only disables sense-key look-ups METEOR never makes) and a location inside nltk's data-path
sandbox. :func:`wordnet_reader` therefore copies the database once (28 MB) into
``<tidekit cache>/nltk_data/wordnet-<hash of the source>/corpora/wordnet`` and adds that data
folder to ``nltk.data.path`` (so ``nltk.corpus.wordnet`` works too). It copies rather than links
because nltk's path sandbox refuses symbolic and hard links. Another WordNet 3.0 folder can be
named with the ``wordnet_dir`` parameter or ``TIDEKIT_WORDNET``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tidekit.backends import cache_dir
from tidekit.errors import MissingDependencyError
from tidekit.metrics._registry import MetricScores, metric
from tidekit.metrics._tokenize import words

__all__ = ["find_wordnet", "meteor", "nltk_wordnet_root", "wordnet_reader"]

DEFAULT_WORDNET_DIRS = ("/usr/share/wordnet",)
_DB_FILES = ("data.noun", "data.verb", "data.adj", "data.adv",
             "index.noun", "index.verb", "index.adj", "index.adv")
# WordNet 3.0 lexicographer files, numbered from 00, as listed in lexnames(5WN)
_LEXNAMES = ["adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl"]
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def _missing(where: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"METEOR (WordNet synonyms; looked in {where})", "wordnet-base",
        "apt-get update && apt-get install -y wordnet-base (or 'make sysdeps'), or set "
        "TIDEKIT_WORDNET to a WordNet 3.0 dict folder")


def find_wordnet(wordnet_dir: str | None = None) -> Path:
    """The WordNet 3.0 database folder: the argument, ``TIDEKIT_WORDNET``, or /usr/share/wordnet."""
    candidates = [wordnet_dir] if wordnet_dir else (
        [os.environ["TIDEKIT_WORDNET"]] if os.environ.get("TIDEKIT_WORDNET") else list(DEFAULT_WORDNET_DIRS))
    for cand in candidates:
        path = Path(cand).expanduser()
        if all((path / name).is_file() for name in _DB_FILES):
            return path
    raise _missing(", ".join(str(c) for c in candidates))


def _lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))


def nltk_wordnet_root(source: Path) -> Path:
    """An nltk data folder holding ``corpora/wordnet`` built once from ``source``; returns the data folder."""
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    data_root = cache_dir() / "nltk_data" / f"wordnet-{key}"
    target = data_root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return data_root
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet.", dir=target.parent))
    try:
        for item in source.iterdir():
            if item.is_file():
                # a copy, not a link: nltk refuses symlinks and hard links out of its sandbox
                shutil.copy2(item, tmp / item.name)
        if not (tmp / "lexnames").is_file():
            (tmp / "lexnames").write_text(_lexnames_text(), encoding="utf-8")
        if not (tmp / "index.sense").is_file():
            # nltk's reader opens it at start-up to map sense keys (Debian ships it separately in
            # wordnet-sense-index); METEOR never looks up sense keys, so an empty one will do
            (tmp / "index.sense").write_text("", encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "lexnames").is_file():  # another process won the race otherwise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data_root


@functools.lru_cache(maxsize=2)
def wordnet_reader(wordnet_dir: str | None = None) -> Any:
    """An nltk ``WordNetCorpusReader`` over the local WordNet 3.0 (no download)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    data_root = nltk_wordnet_root(find_wordnet(wordnet_dir))
    if str(data_root) not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(str(data_root))  # nltk only opens corpora under its data path
    with warnings.catch_warnings():  # no Open Multilingual Wordnet here, and METEOR needs none
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return WordNetCorpusReader(str(data_root / "corpora" / "wordnet"), None)


@metric("meteor", columns=("meteor",),
        description="METEOR with stemming and WordNet synonyms (nltk; WordNet from wordnet-base).")
def meteor(alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5,
           wordnet_dir: str | None = None) -> Callable[[Sequence[str], Sequence[str]], MetricScores]:
    """METEOR of each candidate against its one reference."""
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score

    wn = wordnet_reader(wordnet_dir)
    stemmer = PorterStemmer()

    def score(candidates: Sequence[str], references: Sequence[str]) -> MetricScores:
        values = []
        for cand, ref in zip(candidates, references, strict=True):
            hyp, refs = words(cand), words(ref)
            values.append(meteor_score([refs], hyp, stemmer=stemmer, wordnet=wn, alpha=alpha,
                                       beta=beta, gamma=gamma) if hyp and refs else 0.0)
        return {"meteor": values}

    return score
