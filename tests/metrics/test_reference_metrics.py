"""Reference metrics equal their reference implementations to 1e-6 on fixed real-text pairs."""

from __future__ import annotations

import math
import random

import pytest

from tidekit.errors import ConfigError, MissingDependencyError
from tidekit.metrics import (
    build_metric,
    distinct_n,
    lcs_length,
    list_metrics,
    rouge_tokenizer,
    words,
)

TOL = 1e-6


def _close(a: list[float], b: list[float]) -> None:
    assert len(a) == len(b)
    worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
    assert worst <= TOL, f"largest difference {worst}"


def test_rouge_l_equals_rouge_score(real_pairs: list[tuple[str, str]]) -> None:
    from rouge_score import rouge_scorer

    ref_impl = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    cands, refs = zip(*real_pairs, strict=True)
    ours = build_metric("rouge_l")(cands, refs)["rouge_l"]
    theirs = [ref_impl.score(target=r, prediction=c)["rougeL"].fmeasure for c, r in real_pairs]
    _close(ours, theirs)
    assert len(set(theirs)) > 20  # the pairs exercise many different values


def test_rouge_tokenizer_equals_rouge_score(real_pairs: list[tuple[str, str]]) -> None:
    from rouge_score.tokenizers import DefaultTokenizer

    tokenize, theirs = rouge_tokenizer(True), DefaultTokenizer(use_stemmer=True)
    for cand, ref in real_pairs:
        assert tokenize(cand) == theirs.tokenize(cand)
        assert tokenize(ref) == theirs.tokenize(ref)


def _lcs_dp(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def test_bit_parallel_lcs_matches_the_dynamic_programme() -> None:
    rng = random.Random(7)
    for _ in range(500):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 80))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 80))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_bleu_equals_sacrebleu(real_pairs: list[tuple[str, str]]) -> None:
    import sacrebleu

    cands, refs = zip(*real_pairs, strict=True)
    ours = build_metric("bleu")(cands, refs)["bleu"]
    _close(ours, [sacrebleu.sentence_bleu(c, [r]).score for c, r in real_pairs])


def test_meteor_equals_nltk_with_local_wordnet(real_pairs: list[tuple[str, str]], wordnet_dir: str) -> None:
    from nltk.corpus import wordnet
    from nltk.translate.meteor_score import meteor_score

    cands, refs = zip(*real_pairs, strict=True)
    ours = build_metric("meteor")(cands, refs)["meteor"]
    # nltk's own corpus loader finds the WordNet tidekit prepared (no nltk.download)
    theirs = [meteor_score([words(r)], words(c), wordnet=wordnet) if words(c) and words(r) else 0.0
              for c, r in real_pairs]
    _close(ours, theirs)
    assert wordnet.get_version() == "3.0"


def test_meteor_uses_wordnet_synonyms(wordnet_dir: str) -> None:
    meteor = build_metric("meteor")
    synonym = meteor(["I felt frightened"], ["I felt scared"])["meteor"][0]
    unrelated = meteor(["I felt purple"], ["I felt scared"])["meteor"][0]
    assert synonym > unrelated


def test_meteor_without_wordnet_names_the_package(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MissingDependencyError, match="apt-get update && apt-get install -y wordnet-base"):
        build_metric("meteor", wordnet_dir=str(tmp_path / "nowhere"))


def test_distinct_and_length_ratio_by_hand() -> None:
    # "no no no no no": 1 distinct unigram of 5; 1 distinct bigram of 4
    assert distinct_n(words("no no no no no"), 1) == pytest.approx(1 / 5)
    assert distinct_n(words("no no no no no"), 2) == pytest.approx(1 / 4)
    assert distinct_n(words("I hear you"), 2) == 1.0
    assert distinct_n([], 1) == 0.0
    scores = build_metric("distinct")(["I'm here, I'm here for you."], ["x"])
    # words: i'm here i'm here for you -> 4 distinct of 6; bigrams: 4 distinct of 5
    assert scores["distinct_1"] == [pytest.approx(4 / 6)]
    assert scores["distinct_2"] == [pytest.approx(4 / 5)]
    ratio = build_metric("length_ratio")(["one two three", "a"], ["one two three four five six", "..."])
    assert ratio["length_ratio"][0] == pytest.approx(0.5)
    assert math.isnan(ratio["length_ratio"][1])


def test_registry_rebuilds_from_spec_and_rejects_bad_config() -> None:
    assert {"cosine", "bertscore", "rouge_l", "meteor", "bleu", "distinct", "length_ratio"} <= set(list_metrics())
    built = build_metric("bleu", lowercase=True)
    assert built.spec.params == {"tokenize": "13a", "smooth_method": "exp", "lowercase": True}
    again = build_metric(built.spec)
    assert again(["The Cat"], ["the cat"]) == built(["The Cat"], ["the cat"])
    with pytest.raises(ConfigError, match=r"unknown metric 'rouge-l'.*rouge_l"):
        build_metric("rouge-l")
    with pytest.raises(ConfigError, match=r"unknown parameter.*stemmer.*use_stemmer"):
        build_metric("rouge_l", stemmer=False)
    with pytest.raises(ValueError, match="2 candidates but 1 references"):
        build_metric("rouge_l")(["a", "b"], ["a"])


@pytest.mark.slow
def test_bertscore_equals_bert_score_with_the_same_encoder(real_pairs: list[tuple[str, str]]) -> None:
    import bert_score

    from tidekit.backends import resolve_model_path

    pairs = real_pairs[:60]
    cands, refs = [c for c, _ in pairs], [r for _, r in pairs]
    ours = build_metric("bertscore", num_layers=4, batch_size=16)(cands, refs)
    p, r, f = bert_score.score(cands, refs, model_type=str(resolve_model_path("minilm-l6")), num_layers=4)
    _close(ours["bertscore_f1"], f.tolist())
    _close(ours["bertscore_precision"], p.tolist())
    _close(ours["bertscore_recall"], r.tolist())


@pytest.mark.slow
def test_cosine_equals_sentence_transformers_and_embeds_each_text_once(
        real_pairs: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import SentenceTransformer, util

    from tidekit.backends import resolve_model_path
    from tidekit.metrics import _embedding

    pairs = real_pairs[:60] + real_pairs[:10]  # repeated pairs: their texts must not be re-embedded
    cands, refs = [c for c, _ in pairs], [r for _, r in pairs]
    seen: list[str] = []
    real_embed = _embedding.embed_texts

    def counting(texts, **kw):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return real_embed(texts, **kw)

    monkeypatch.setattr(_embedding, "embed_texts", counting)
    ours = build_metric("cosine")(cands, refs)["cosine"]
    assert len(seen) == len(set(seen)) == len(set(cands) | set(refs))
    model = SentenceTransformer(str(resolve_model_path("minilm-l6")))
    ec, er = model.encode(cands), model.encode(refs)
    _close(ours, [float(util.cos_sim(a, b)) for a, b in zip(ec, er, strict=True)])
