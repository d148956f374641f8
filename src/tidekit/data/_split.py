"""Persona-level train/validation/test splits.

All conversations of a persona land in the same split, so no persona's voice leaks from
training into evaluation. Personas are stratified by a persona facet (by default the trauma
type, when the data has it) so each split mirrors the whole; the same seed always gives the same
split, whatever order the records were read in.

Method (chosen here): personas are sorted by id, shuffled with ``random.Random(seed)`` within
each stratum, strata are concatenated, and positions are dealt to splits by largest deficit
against the target ratios. That keeps the global split sizes exact to one persona and each
stratum's share proportional to within one persona.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from tidekit._io import write_json
from tidekit.data._load import Format, save_dataset
from tidekit.data._schema import SPLITS, Dataset, Persona, Split
from tidekit.errors import ConfigError

__all__ = ["DEFAULT_RATIOS", "SplitResult", "parse_ratios", "save_split", "split_dataset", "stratify_fields"]


class SplitResult(BaseModel):
    """A split dataset and how it was made."""

    dataset: Dataset
    seed: int
    ratios: tuple[float, float, float]
    stratify_by: str | None
    personas: dict[str, list[str]] = Field(description="Persona ids per split.")
    conversations: dict[str, int] = Field(description="Conversations per split.")


# train, validation, test: the paper's 80/10/10 by persona, the one default of `tidekit data split`,
# split_dataset and a study's dataset.split (a config with a small dataset sets its own)
DEFAULT_RATIOS: tuple[float, float, float] = (0.8, 0.1, 0.1)


def parse_ratios(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse '0.8,0.1,0.1' (or a sequence) into three non-negative ratios that sum to 1."""
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise ConfigError(f"--ratios {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(values) != 3 or any(v < 0 for v in values):
        raise ConfigError(f"--ratios {text!r}: expected three non-negative numbers (train,validation,test)")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"--ratios {text!r}: the three ratios sum to {sum(values):g}; they must sum to 1")
    return values[0], values[1], values[2]


def _facet(persona: Persona, name: str) -> str | None:
    value = getattr(persona, name, None) if name in Persona.model_fields else persona.attributes.get(name)
    return None if value is None else str(value)


def stratify_fields(personas: Sequence[Persona]) -> list[str]:
    """Persona facets a split can stratify on: typed fields and attributes with a scalar value somewhere."""
    fields = [f for f in ("age", "age_group", "gender", "trauma_type") if any(getattr(p, f) is not None for p in personas)]
    attrs = {k for p in personas for k, v in p.attributes.items() if isinstance(v, str | int | float | bool)}
    return fields + sorted(attrs - set(fields))


def _deal(n: int, ratios: Sequence[float]) -> list[Split]:
    assigned = [0, 0, 0]
    out: list[Split] = []
    for i in range(n):
        deficits = [(i + 1) * r - a for r, a in zip(ratios, assigned, strict=True)]
        k = max(range(3), key=lambda j: (deficits[j], -j))
        assigned[k] += 1
        out.append(SPLITS[k])
    return out


def split_dataset(
    dataset: Dataset,
    seed: int = 0,
    ratios: Sequence[float] | str = DEFAULT_RATIOS,
    stratify_by: str | None = "auto",
) -> SplitResult:
    """Assign every conversation a split by its persona. Returns a new dataset; the input is unchanged.

    ``stratify_by`` names a persona field or attribute; ``"auto"`` uses ``trauma_type`` when every
    persona has one, and None disables stratification.
    """
    r = parse_ratios(ratios)
    personas = sorted(dataset.personas, key=lambda p: p.id)
    if stratify_by == "auto":
        stratify_by = "trauma_type" if personas and all(p.trauma_type for p in personas) else None
    elif stratify_by is not None and stratify_by not in (available := stratify_fields(personas)):
        raise ConfigError(f"--stratify-by {stratify_by!r}: no persona has that field. Fields there are: "
                          f"{', '.join(available) or 'none'}; or use 'auto' or 'none'.")
    strata: dict[str, list[Persona]] = defaultdict(list)
    for p in personas:
        strata[(_facet(p, stratify_by) or "") if stratify_by else ""].append(p)
    rng = random.Random(seed)
    order: list[Persona] = []
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        order.extend(members)
    assignment = dict(zip((p.id for p in order), _deal(len(order), r), strict=True))
    conversations = [c.model_copy(update={"split": assignment.get(c.persona_id)}) for c in dataset.conversations]
    split_ds = Dataset(personas=list(dataset.personas), conversations=conversations, source=dataset.source)
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for pid, s in sorted(assignment.items()):
        by_split[s].append(pid)
    counts = {s: sum(1 for c in conversations if c.split == s) for s in SPLITS}
    return SplitResult(dataset=split_ds, seed=seed, ratios=r, stratify_by=stratify_by,
                       personas=by_split, conversations=counts)


def save_split(result: SplitResult, out: str | Path, fmt: Format = "jsonl") -> None:
    """Write the split dataset to ``out`` in layout ``fmt``, and ``splits.json`` (persona ids per split)."""
    save_dataset(result.dataset, out, fmt)
    write_json(Path(out) / "splits.json", {"seed": result.seed, "ratios": result.ratios,
                                           "stratify_by": result.stratify_by, "personas": result.personas})
