"""Fixtures for the scoring tests: fixed real-text pairs and a WordNet check."""

from __future__ import annotations

import os

import pytest

# Hand-written edge cases: contractions, numbers, punctuation only, unicode, repeated words.
EDGE_PAIRS = [
    ("I'm here, and I'm listening.", "I am here and I am listening to you."),
    ("It's 3 a.m. and I still can't sleep.", "It is 3am; sleep still won't come."),
    ("...", "That sounds exhausting."),
    ("Café noises — clattering cups — set me off.", "The clatter of cups in a café set off the memory."),
    ("no no no no no", "no"),
]


@pytest.fixture(scope="session")
def real_pairs() -> list[tuple[str, str]]:
    """>= 100 fixed pairs of real texts: each sample reference against another persona's
    reference for the same scenario (related, differently worded), the client message
    against its reference, and the edge cases above."""
    from tidekit.data import load_dataset, sample_path

    ds = load_dataset(sample_path())
    by_scenario: dict[str, list[str]] = {}
    for conv in ds.conversations:
        assert conv.reference is not None
        by_scenario.setdefault(conv.scenario_id, []).append(conv.reference)
    pairs = []
    for refs in by_scenario.values():
        pairs += [(refs[i], refs[(i + 1) % len(refs)]) for i in range(len(refs))]
    pairs += [(c.client_text, c.reference or "") for c in ds.conversations[:30]]
    pairs += EDGE_PAIRS
    assert len(pairs) >= 50
    return pairs


@pytest.fixture(scope="session")
def wordnet_dir() -> str:
    """The WordNet folder; skip locally without wordnet-base, fail in CI (make sysdeps installs it)."""
    from tidekit.errors import MissingDependencyError
    from tidekit.metrics import find_wordnet

    try:
        return str(find_wordnet())
    except MissingDependencyError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"wordnet-base is required in CI: {exc}")
        pytest.skip(str(exc))
