"""Scoring: reference metrics, the three-factor empathy judge, safety checks, aggregates.

Reference metrics are registered callables (see :func:`build_metric`): ``cosine`` (sentence
embeddings, the paper's metric), ``bertscore``, ``rouge_l``, ``meteor``, ``bleu``, ``distinct``
and ``length_ratio``. :func:`score` runs them with the safety checks and, optionally, LLM judges
over generation records, and writes per-sample scores, persona-clustered bootstrap aggregates
and paired comparisons (see docs/scoring.md).

Typical use::

    from tidekit.metrics import ScoreConfig, score
    result = score(ScoreConfig(generations=["runs/gen"], references="runs/data"), out="runs/scores")
"""

from tidekit.metrics import _bertscore, _bleu, _embedding, _meteor, _rouge, _surface  # noqa: F401  (register)
from tidekit.metrics._bootstrap import OVERALL, aggregate_scores, cluster_bootstrap_ci
from tidekit.metrics._compare import (
    REFERENCE_FREE,
    compare_systems,
    holm,
    paired_test,
    rank_biserial,
)
from tidekit.metrics._config import DEFAULT_METRICS, BootstrapConfig, ScoreConfig
from tidekit.metrics._judge import (
    JudgeBias,
    JudgeConfig,
    JudgeItem,
    JudgeOptions,
    JudgeRun,
    JudgeSummary,
    JudgeVerdict,
    Runner,
    aggregate_verdicts,
    judge_items,
    judge_sets,
    measure_bias,
    run_judges,
    summarize_judge,
    verdict_value,
)
from tidekit.metrics._learned import (
    ENCODER_DIR,
    HEAD_FILE,
    META_FILE,
    LabelScale,
    LearnedScorer,
    ScorerMeta,
    ScorerModel,
    encode_pairs,
    load_scorer,
    pair_batches,
    read_meta,
    scorer_column,
)
from tidekit.metrics._meteor import find_wordnet, wordnet_reader
from tidekit.metrics._registry import (
    Metric,
    MetricInfo,
    MetricScores,
    MetricSpec,
    build_metric,
    list_metrics,
    metric,
)
from tidekit.metrics._rouge import lcs_length, rouge_tokenizer
from tidekit.metrics._rubric import (
    CRITERIA,
    SCALE,
    ParseFailure,
    Rubric,
    build_rubric,
    expected_scores,
    parse_verdict,
    verdict_schema,
)
from tidekit.metrics._safety import RULES, SafetyResult, SafetyRule, check_safety, client_risk
from tidekit.metrics._score import (
    JUDGE_COLUMNS,
    SAFETY_COLUMNS,
    ScoreResult,
    find_generation_files,
    score,
)
from tidekit.metrics._stage import JUDGE_VALIDATION_STAGE, SCORE_STAGE  # noqa: F401  (the study's stage specs)
from tidekit.metrics._surface import corpus_distinct, distinct_n
from tidekit.metrics._tokenize import words
from tidekit.metrics._validate import (
    Agreement,
    Correlation,
    HumanAgreement,
    JudgeValidation,
    LabelRow,
    correlate,
    load_labels,
    validate_judge,
)

__all__ = [
    "CRITERIA",
    "DEFAULT_METRICS",
    "ENCODER_DIR",
    "HEAD_FILE",
    "JUDGE_COLUMNS",
    "META_FILE",
    "OVERALL",
    "REFERENCE_FREE",
    "RULES",
    "SAFETY_COLUMNS",
    "SCALE",
    "Agreement",
    "BootstrapConfig",
    "Correlation",
    "HumanAgreement",
    "JudgeBias",
    "JudgeConfig",
    "JudgeItem",
    "JudgeOptions",
    "JudgeRun",
    "JudgeSummary",
    "JudgeValidation",
    "JudgeVerdict",
    "LabelRow",
    "LabelScale",
    "LearnedScorer",
    "Metric",
    "MetricInfo",
    "MetricScores",
    "MetricSpec",
    "ParseFailure",
    "Rubric",
    "Runner",
    "SafetyResult",
    "SafetyRule",
    "ScoreConfig",
    "ScoreResult",
    "ScorerMeta",
    "ScorerModel",
    "aggregate_scores",
    "aggregate_verdicts",
    "build_metric",
    "build_rubric",
    "check_safety",
    "client_risk",
    "cluster_bootstrap_ci",
    "compare_systems",
    "corpus_distinct",
    "correlate",
    "distinct_n",
    "encode_pairs",
    "expected_scores",
    "find_generation_files",
    "find_wordnet",
    "holm",
    "judge_items",
    "judge_sets",
    "lcs_length",
    "list_metrics",
    "load_labels",
    "load_scorer",
    "measure_bias",
    "metric",
    "pair_batches",
    "paired_test",
    "parse_verdict",
    "rank_biserial",
    "read_meta",
    "rouge_tokenizer",
    "run_judges",
    "score",
    "scorer_column",
    "summarize_judge",
    "validate_judge",
    "verdict_schema",
    "verdict_value",
    "wordnet_reader",
    "words",
]
