"""The generation record: one model output for one conversation, the contract between
generation, fine-tuning, scoring, rating and reports.

A generations folder holds ``generations.jsonl`` (one :class:`GenerationRecord` a line) and a
``manifest.json``. ``system`` names who answered, as ``<model alias>:<condition>`` (e.g.
``smollm2-135m:zero_shot``); the dataset's own reference replies are system ``reference``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tidekit._io import atomic_write
from tidekit.data._problems import Problems

__all__ = [
    "CONDITIONS",
    "GENERATIONS_FILE",
    "MODEL_CONDITIONS",
    "Condition",
    "GenerationRecord",
    "Message",
    "ModelCondition",
    "read_generations",
    "system_name",
    "write_generations",
]

GENERATIONS_FILE = "generations.jsonl"
# The one list of conditions: a model's reply without or with fine-tuning, or the dataset's reference.
ModelCondition = Literal["zero_shot", "fine_tuned"]
Condition = Literal[ModelCondition, "reference"]
MODEL_CONDITIONS: tuple[ModelCondition, ...] = get_args(ModelCondition)
CONDITIONS: tuple[Condition, ...] = (*MODEL_CONDITIONS, "reference")


class Message(BaseModel):
    """One chat message as sent to a model."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationRecord(BaseModel):
    """A model's reply to one conversation, with what it cost."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(default=1, description="Layout version of this record.")
    conversation_id: str = Field(description="The conversation answered.")
    system: str = Field(description="'<model alias>:<condition>', or 'reference'.")
    model: str = Field(description="Model alias (or path) that produced the output.")
    condition: Condition = Field(description="zero_shot, fine_tuned, or reference.")
    adapter: str | None = Field(default=None, description="LoRA adapter path, when fine-tuned.")
    messages: list[Message] = Field(default_factory=list, description="The prompt as sent.")
    output: str | None = Field(default=None, description="The reply; None if the request failed.")
    error: str | None = Field(default=None, description="Why the request failed, if it did.")
    prompt_tokens: int | None = Field(default=None, description="Tokens in the prompt.")
    completion_tokens: int | None = Field(default=None, description="Tokens generated.")
    latency_s: float | None = Field(default=None, description="Wall seconds for the batch share of this request.")
    params: dict[str, Any] = Field(default_factory=dict, description="Generation parameters used.")
    seed: int | None = Field(default=None, description="Per-request seed (sampled runs).")
    cache_key: str | None = Field(default=None, description="Hash of model identity, messages, params, seed.")


def system_name(model: str, condition: Condition) -> str:
    """The canonical system label for a model and condition."""
    return "reference" if condition == "reference" else f"{model}:{condition}"


def write_generations(path: str | Path, records: Iterable[GenerationRecord]) -> None:
    """Write records to ``path`` (a ``.jsonl`` file or a folder) atomically."""
    path = Path(path)
    if path.suffix != ".jsonl":
        path = path / GENERATIONS_FILE
    with atomic_write(path) as fh:
        for r in records:
            fh.write(r.model_dump_json() + "\n")


def iter_generation_rows(path: Path, problems: Problems) -> Iterator[GenerationRecord]:
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield GenerationRecord.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.add(path, f"malformed JSON: {exc.msg}", where=f"line {lineno}")
        except ValidationError as exc:
            problems.add_validation(path, exc, where_prefix=f"line {lineno}")


def read_generations(path: str | Path) -> list[GenerationRecord]:
    """Read a generations file or folder; DataError lists every bad line."""
    path = Path(path)
    if path.is_dir():
        path = path / GENERATIONS_FILE
    problems = Problems()
    if not path.is_file():
        problems.add(path, "no generations file", hint="run 'tidekit generate' first or check the path")
        problems.raise_if_errors(path)
    records = list(iter_generation_rows(path, problems))
    problems.raise_if_errors(path)
    return records
