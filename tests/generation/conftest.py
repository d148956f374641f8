"""Fixtures for the generation tests: a tiny dataset and the mock backend (no model weights)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from tidekit.backends import MockBackend, MockConfig
from tidekit.data import Conversation, Dataset, Persona, Turn, save_dataset

CLIENT_TEXTS = [
    "I keep having nightmares about the crash and I wake up shaking.",
    "Loud noises make me jump, and then I feel ashamed of it.",
    "My family says I should be over it by now.",
    "I avoid the street where it happened, even if it takes me an hour longer.",
    "Sometimes I feel nothing at all, like I'm watching my life on a screen.",
    "I snapped at my kids again today. I hate who I've become.",
]


def make_dataset(folder: Path, n: int = 6, split: str = "test") -> Path:
    personas = [Persona(id="1", age=40, gender="female"), Persona(id="2", age=63, gender="male")]
    conversations = [
        Conversation(id=f"{1 + i % 2}-{i:02d}", persona_id=str(1 + i % 2), scenario_id="nightmares",
                     turns=[Turn(role="client", text=CLIENT_TEXTS[i % len(CLIENT_TEXTS)] + " " * (i // 6))],
                     reference="That sounds exhausting.", split=split)  # type: ignore[arg-type]
        for i in range(n)
    ]
    return save_dataset(Dataset(personas=personas, conversations=conversations), folder, "jsonl")


def native_dtype() -> str:
    """The dtype the reproducibility tests run SmolLM2 in: bf16 where the CPU has native bf16 (where
    batch dependence shows), else float32 (where it did not; the tests still check resumption)."""
    from tidekit.backends._hf import pick_dtype

    return pick_dtype("auto", "cpu")


def cli_command(*args: object) -> list[str]:
    """The tidekit CLI as a subprocess command line (for runs that get killed)."""
    return [sys.executable, "-m", "tidekit", *[str(a) for a in args]]


def finished_results(cache: Path) -> int:
    """Results committed to an engine cache so far (0 before the table exists)."""
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet
        return 0


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


class FakeBackend(MockBackend):
    """The library's ``mock`` backend as these tests use it: echoes 'reply to <start of the last
    message> seed=<seed>', fails requests whose last message contains 'FAIL', batches of 4."""

    def __init__(self, batch_size: int = 4, alias: str = "fake") -> None:
        super().__init__(MockConfig(model=alias, batch_size=batch_size, fail_on="FAIL"))


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()
