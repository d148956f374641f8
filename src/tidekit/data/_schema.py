"""The TIDE data model: personas, turns, conversations and datasets.

A conversation holds the dialogue context (``turns``, ending with the client's message) and the
``reference`` supporter reply that models are compared against. In TIDE a conversation is two
turns: one client message and one reference reply. Unknown fields read from a source are kept in
``attributes`` / ``extra`` so nothing is lost in a round trip.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "SPLITS",
    "Conversation",
    "Dataset",
    "Persona",
    "Provenance",
    "Role",
    "Split",
    "Turn",
]

SCHEMA_VERSION = 1
Role = Literal["client", "supporter"]
Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _non_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} is empty or whitespace only")
    return value


class Persona(_Record):
    """A (synthetic) PTSD client: demographics, trauma and symptom facets."""

    schema_version: int = Field(default=SCHEMA_VERSION, description="Layout version of this record.")
    id: str = Field(description="Persona id, unique in a dataset (TIDE uses 1..500).")
    age: int | None = Field(default=None, ge=0, le=120, description="Age in years, if known.")
    age_group: str | None = Field(default=None, description="Age band, e.g. '25-34'.")
    gender: str | None = Field(default=None, description="Gender as given, e.g. female, male, non-binary.")
    trauma_type: str | None = Field(default=None, description="The index trauma, e.g. 'combat'.")
    behaviors: list[str] = Field(default_factory=list, description="Exhibited trauma-related behaviours.")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Every other facet, kept as read (demographics, symptoms, history...)."
    )

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, v: str) -> str:
        return _non_blank(v, "persona id")


class Turn(_Record):
    """One utterance in a conversation."""

    role: Role = Field(description="'client' (the person) or 'supporter' (the AI chatbot).")
    text: str = Field(description="What was said.")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        return _non_blank(v, "turn text")


class Provenance(BaseModel):
    """Where a record came from. Further keys are allowed and kept."""

    model_config = ConfigDict(extra="allow")

    source: str | None = Field(default=None, description="Path or dataset name the record was read from.")
    synthetic: bool | None = Field(default=None, description="True when the text was generated, not written by people.")
    generator: str | None = Field(default=None, description="Model that generated the text, if synthetic.")


class Conversation(_Record):
    """A dialogue context and the reference supporter reply to it."""

    schema_version: int = Field(default=SCHEMA_VERSION, description="Layout version of this record.")
    id: str = Field(description="Conversation id, unique in a dataset (default '{persona}-{index:02d}').")
    persona_id: str = Field(description="The persona whose voice the client turns are in.")
    scenario_id: str = Field(description="Emotional scenario slug (see tidekit.scenarios).")
    scenario: str | None = Field(default=None, description="Scenario label or description as given by the source.")
    turns: list[Turn] = Field(min_length=1, description="Dialogue context, oldest first; ends with a client turn.")
    reference: str | None = Field(default=None, description="Reference supporter reply (TIDE: from a frontier model).")
    split: Split | None = Field(default=None, description="train, validation or test, once split.")
    provenance: Provenance = Field(default_factory=Provenance, description="Origin of the record.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Other fields read from the source, kept.")

    @field_validator("id", "persona_id", "scenario_id")
    @classmethod
    def _ids_not_blank(cls, v: str) -> str:
        return _non_blank(v, "id")

    @field_validator("reference")
    @classmethod
    def _reference_not_blank(cls, v: str | None) -> str | None:
        return None if v is None else _non_blank(v, "reference response")

    @model_validator(mode="after")
    def _ends_with_client(self) -> Conversation:
        if self.turns[-1].role != "client":
            raise ValueError("the last turn must be the client's; the supporter reply belongs in 'reference'")
        return self

    @property
    def client_text(self) -> str:
        """The client's last message (the one the reference answers)."""
        return self.turns[-1].text


class Dataset(BaseModel):
    """Personas and their conversations, in a stable order (by persona, then conversation id)."""

    personas: list[Persona]
    conversations: list[Conversation]
    source: str | None = Field(default=None, description="Where the dataset was read from.")

    def persona_map(self) -> dict[str, Persona]:
        return {p.id: p for p in self.personas}

    def scenario_counts(self) -> Counter[str]:
        return Counter(c.scenario_id for c in self.conversations)

    def by_split(self, split: Split) -> list[Conversation]:
        return [c for c in self.conversations if c.split == split]
