"""Fixtures for the scorer tests: a scorer trained once per session on synthetic labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from scorer_synthetic import FAST, synthetic_rows, write_labels


@pytest.fixture(scope="session")
def trained_scorer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scorer trained on 240 synthetic pairs (session-wide: several tests read it)."""
    from tidekit.scorer import ScorerTrainConfig, train_scorer

    root = tmp_path_factory.mktemp("scorer")
    labels = write_labels(root / "labels.csv", synthetic_rows(240))
    out = root / "warmth"
    train_scorer(ScorerTrainConfig(labels=str(labels), label=["warmth"], group="post", **FAST), out=out,
                 progress=False)
    return out
