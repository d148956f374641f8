"""TRL prompt-completion SFT JSONL: ``{split}.jsonl`` files of the examples ``tidekit finetune``
builds, so the files hold exactly what it trains and evaluates on (``tidekit data convert --to sft``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tidekit._io import atomic_write
from tidekit.data import SPLITS, Dataset, split_dataset
from tidekit.errors import DataError
from tidekit.finetuning._examples import build_examples, default_system_prompt

__all__ = ["write_sft"]

def write_sft(dataset: Dataset, folder: str | Path, system_prompt: str | None = None, system_role: bool = True,
              targets: str = "all_supporter_turns", split_seed: int = 0) -> dict[str, int]:
    """Write TRL prompt-completion examples, one ``{split}.jsonl`` per split; returns examples per file.

    The examples are what ``tidekit finetune`` builds (``tidekit.finetuning.build_examples``) for
    each split, conversations in id order; ``system_prompt`` None means the default responder
    prompt, ``system_role=False`` folds it into the first user message as for templates without
    a system role. Unsplit data is split as ``tidekit finetune`` does (persona-level,
    ``split_seed``, default ratios).
    """
    prompt = system_prompt if system_prompt is not None else default_system_prompt()
    if all(c.split is None for c in dataset.conversations):
        dataset = split_dataset(dataset, seed=split_seed).dataset
    counts: dict[str, int] = {}
    for split in SPLITS:
        convs = sorted(dataset.by_split(split), key=lambda c: c.id)
        if not convs:
            continue
        examples = build_examples(convs, prompt, system_role, targets)
        with atomic_write(Path(folder) / f"{split}.jsonl") as fh:
            for ex in examples:
                fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
        counts[split] = len(examples)
    if not counts or not sum(counts.values()):
        raise DataError(f"{dataset.source or 'the dataset'}: no conversation has a reference or supporter turn, "
                        "so there is no training example to write")
    return counts
