"""Load and save datasets in any supported layout, with whole-dataset consistency checks.

Layouts: ``tide`` (the published folder layout), ``jsonl`` and ``parquet`` (tidekit's record
folders), ``hf`` (a Hugging Face ``datasets`` ``save_to_disk`` folder) and ``messages`` (chat
JSONL, one conversation a line). :func:`load_dataset` detects the layout, and also takes a Hub
dataset id ``hf://owner/name`` and a one-file table (``.jsonl``, ``.parquet``, ``.csv``, one row per
conversation: :mod:`tidekit.data._table`); :func:`save_dataset` writes any of the folder layouts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from tidekit.data._problems import Problems
from tidekit.data._records import RecordFormat, read_records, record_files, write_records
from tidekit.data._schema import Dataset
from tidekit.errors import DataError

__all__ = ["FORMATS", "Format", "SourceFormat", "check_dataset", "detect_format", "load_dataset", "resolve_source", "save_dataset"]

Format = Literal["tide", "jsonl", "parquet", "hf", "messages"]
FORMATS: tuple[Format, ...] = ("tide", "jsonl", "parquet", "hf", "messages")
# what a source can be: a folder layout, or "table", a one-file table (out.jsonl, out.parquet, out.csv)
SourceFormat = Format | Literal["table"]


def resolve_source(path: str | Path) -> Path:
    """The local path of a dataset: ``path`` itself, or the downloaded folder of ``hf://owner/name``."""
    if str(path).startswith("hf:/"):  # hf://..., or what Path() makes of it
        from tidekit.data._hf import hub_folder

        return hub_folder(path)
    return Path(path)


def detect_format(path: str | Path) -> SourceFormat:
    """Which layout the folder (or messages or one-file table) at ``path`` holds; DataError if none."""
    # the readers are imported when first needed, so 'import tidekit.data' stays light
    from tidekit.data._chat import is_messages_file, messages_path
    from tidekit.data._hf import is_hf_folder
    from tidekit.data._table import is_table_file
    from tidekit.data._tide import is_tide_folder

    path = resolve_source(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if is_messages_file(path):
            return "messages"
        if is_table_file(path):
            return "table"
        if path.name.startswith(("personas.", "conversations.")) and path.suffix in (".jsonl", ".parquet"):
            path = path.parent
        else:
            raise DataError(f"{path}: a dataset is a folder (TIDE layout, personas + conversations JSONL/Parquet "
                            "files, or a Hugging Face datasets folder), a chat messages .jsonl file or a one-file "
                            "table (.jsonl, .parquet or .csv with a 'turns' column); give that")
    record_fmt: RecordFormat
    for record_fmt in ("jsonl", "parquet"):
        if any(p.is_file() for p in record_files(path, record_fmt)):
            return record_fmt
    if is_hf_folder(path):
        return "hf"
    if messages_path(path) is not None:
        return "messages"
    if is_tide_folder(path):
        return "tide"
    if _is_sft_folder(path):
        raise DataError(f"{path}: holds SFT training examples ('tidekit data convert --to sft'), which cannot be read "
                        "back as a dataset; give the dataset they were made from")
    raise DataError(f"{path}: no dataset found: expected TIDE files (metadata/N_metadata.json, "
                    "conversations/N_conversations.json), personas/conversations .jsonl or .parquet, a Hugging "
                    "Face datasets folder (dataset_info.json, state.json) or messages.jsonl")


def _is_sft_folder(path: Path) -> bool:
    import json

    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        if (path / name).is_file():
            with open(path / name, encoding="utf-8") as fh:
                try:
                    first = json.loads(fh.readline() or "{}")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return False
            return isinstance(first, dict) and {"prompt", "completion"} <= first.keys()
    return False


def _folder(path: Path) -> Path:
    return path.parent if path.is_file() else path


def check_dataset(dataset: Dataset, problems: Problems, where: str, orphans: bool = True) -> None:
    """Cross-record checks: unique ids, every conversation has a persona and vice versa.

    ``orphans=False`` skips the persona/conversation pairing checks (a reader that already
    reported unreadable records would otherwise report their partners as orphans too).
    """
    for kind, ids in (("persona", [p.id for p in dataset.personas]),
                      ("conversation", [c.id for c in dataset.conversations])):
        for dup, n in Counter(ids).items():
            if n > 1:
                problems.add(where, f"{kind} id {dup!r} appears {n} times", field="id",
                             hint=f"give every {kind} a unique id")
    persona_ids = {p.id for p in dataset.personas}
    per_persona = Counter(c.persona_id for c in dataset.conversations)
    for pid in sorted(set(per_persona) - persona_ids) if orphans else []:
        problems.add(where, f"{per_persona[pid]} conversation(s) name persona {pid!r}, which has no record",
                     field="persona_id", hint="add the persona's metadata or fix the persona_id")
    for pid in sorted(persona_ids - set(per_persona)) if orphans else []:
        problems.add(where, f"persona {pid!r} has no conversations", field="persona_id",
                     hint="add its conversations or remove the persona")
    if per_persona:
        usual, _ = Counter(per_persona.values()).most_common(1)[0]
        odd = sorted(pid for pid, n in per_persona.items() if n != usual)
        if odd:
            shown = ", ".join(f"{pid} ({per_persona[pid]})" for pid in odd[:10])
            problems.warn(where, f"most personas have {usual} conversations but these differ: {shown}"
                          + (f" and {len(odd) - 10} more" if len(odd) > 10 else ""))


def read_dataset(path: str | Path, problems: Problems) -> Dataset:
    """Read any layout, adding every problem (file-level and cross-record) to ``problems``."""
    path = resolve_source(path)
    fmt = detect_format(path)
    folder = _folder(path)
    if fmt == "tide":
        from tidekit.data._tide import read_tide

        dataset = read_tide(folder, problems)
    elif fmt == "hf":
        from tidekit.data._hf import read_hf

        dataset = read_hf(folder, problems)
    elif fmt == "messages":
        from tidekit.data._chat import read_messages

        dataset = read_messages(path, problems)
    elif fmt == "table":
        from tidekit.data._table import read_table

        dataset = read_table(path, problems)
    else:
        dataset = read_records(folder, fmt, problems)
    # the TIDE reader pairs metadata and conversation files itself; after a record failed to
    # parse, its partner would look orphaned, so pairing is checked only on a clean read
    check_dataset(dataset, problems, str(path), orphans=fmt != "tide" and not problems.errors)
    return dataset


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset folder in any supported layout (or ``hf://owner/name``); DataError lists the problems."""
    problems = Problems()
    dataset = read_dataset(path, problems)
    problems.raise_if_errors(path)
    return dataset


def save_dataset(dataset: Dataset, path: str | Path, fmt: Format = "jsonl") -> Path:
    """Write ``dataset`` to the folder ``path`` in layout ``fmt``; returns the folder."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} is a file; give a folder to write the dataset into")
    if fmt == "tide":
        from tidekit.data._tide import write_tide

        write_tide(dataset, path)
    elif fmt == "hf":
        from tidekit.data._hf import write_hf

        write_hf(dataset, path)
    elif fmt == "messages":
        from tidekit.data._chat import write_messages

        write_messages(dataset, path)
    else:
        write_records(dataset, path, fmt)
    return path
