"""A small run folder with every stage present (synthetic ratings, scores, dataset, manifests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def make_run(root: Path, seed: int = 0) -> Path:
    """Write a run folder: dataset (bundled sample), scores, ceiling, simulated ratings."""
    import numpy as np

    from tidekit._manifest import RunRecorder
    from tidekit.analysis import ceiling_analysis, synthetic_ratings
    from tidekit.data import load_dataset, sample_path, save_dataset

    with RunRecorder(root / "dataset", command="data convert", config={"to": "jsonl"}, seed=seed):
        save_dataset(load_dataset(sample_path()), root / "dataset", "jsonl")
    ratings = synthetic_ratings(raters=30, conversations=12, ratings_per_rater=8, age_style=0.8, seed=seed)
    (root / "ratings").mkdir(parents=True)
    with RunRecorder(root / "ratings", command="rate export", config={"simulated": True}, seed=seed):
        ratings.to_csv(root / "ratings" / "ratings.csv", index=False)
    rng = np.random.default_rng(seed)
    items = ratings.dropna(subset=["system"]).groupby(["conversation_id", "persona_id", "scenario_id", "system",
                                                       "model", "condition"])["empathy"].mean().reset_index()
    scores = items.drop(columns="empathy").assign(
        cosine=0.5 + 0.05 * items["empathy"] + rng.normal(0, 0.05, len(items)),
        rouge_l=0.2 + rng.normal(0, 0.05, len(items)),
        judge_overall=items["empathy"] + rng.normal(0, 1, len(items)))
    (root / "scores").mkdir()
    with RunRecorder(root / "scores", command="score", config={"metrics": ["cosine", "rouge_l"]}, seed=seed):
        scores.to_parquet(root / "scores" / "scores.parquet")
        ceiling_analysis(scores, n_boot=50, params={"smollm2-135m": 0.135, "qwen2.5-0.5b": 0.5}).write(root / "ceiling")
    return root


@pytest.fixture(scope="session")
def require_tool(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """tests/conftest.py's ``require_tool`` (skip locally, fail in CI), reached through pytest's
    plugin manager because two modules named ``conftest`` cannot import each other."""
    root = request.config.pluginmanager.get_plugin(str(Path(__file__).parents[1] / "conftest.py"))
    assert root is not None, "tests/conftest.py is not loaded"
    return root.require_tool  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "study")




@pytest.fixture
def run_factory() -> Callable[[Path], Path]:
    """``make_run`` for a test that changes its own run folder."""
    return make_run
