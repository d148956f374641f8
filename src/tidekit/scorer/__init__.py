"""Learned empathy scorers: train a small encoder on human labels, validate it on groups it never saw.

:func:`train_scorer` (``tidekit scorer train``) fine-tunes an encoder (default: the shipped
all-MiniLM-L6-v2) to predict one or more human label columns of a labels file from the (context,
reply) pair, cross-validates it with grouped folds and writes a scorer folder with its model
card. ``tidekit score --scorer DIR`` then adds one column per label to scores.parquet, and
``tidekit judge validate --scorer DIR`` validates it beside the judges (docs/scoring.md).

Typical use::

    from tidekit.scorer import ScorerTrainConfig, train_scorer
    result = train_scorer(ScorerTrainConfig(labels="labels.csv", label=["er", "ip", "ex", "total"],
                                            group="seeker_id"), out="runs/scorer/epitome")
"""

from tidekit.metrics import LearnedScorer, ScorerMeta, load_scorer, scorer_column
from tidekit.scorer._config import ScorerTrainConfig
from tidekit.scorer._epitome import EPITOME_FILES, epitome_labels
from tidekit.scorer._train import LabelAgreement, ScorerTrainResult, grouped_folds, train_scorer

__all__ = [
    "EPITOME_FILES",
    "LabelAgreement",
    "LearnedScorer",
    "ScorerMeta",
    "ScorerTrainConfig",
    "ScorerTrainResult",
    "epitome_labels",
    "grouped_folds",
    "load_scorer",
    "scorer_column",
    "train_scorer",
]
