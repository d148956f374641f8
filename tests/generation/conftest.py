"""Fixtures for the generation tests: a tiny dataset and a fake backend (no model weights)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tidekit._manifest import ModelIdentity
from tidekit.backends import Capabilities, ChatRequest, ChatResult
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


class FakeBackend:
    """Echoes a deterministic reply; fails requests whose last message contains 'FAIL'."""

    def __init__(self, batch_size: int = 4, alias: str = "fake") -> None:
        self.identity = ModelIdentity(alias=alias, source="memory")
        self.capabilities = Capabilities(batching=True, max_batch_size=batch_size)
        self.calls: list[list[str]] = []

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        self.calls.append([r.id for r in requests])
        out = []
        for r in requests:
            last = r.messages[-1].content
            if "FAIL" in last:
                out.append(ChatResult(id=r.id, error="simulated failure", finish_reason="error"))
            else:
                text = f"reply to {last[:20]!r} seed={r.params.seed}"
                out.append(ChatResult(id=r.id, text=text, prompt_tokens=len(last.split()),
                                      completion_tokens=len(text.split()), finish_reason="stop"))
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()
