"""The TIDE data model and its I/O: schema, layouts (TIDE, JSONL, Parquet), validation, splits.

Typical use::

    from tidekit.data import load_dataset, split_dataset, save_dataset
    ds = load_dataset("path/to/TIDE")            # any layout, or "hf://owner/name"; DataError lists problems
    result = split_dataset(ds, seed=7)            # persona-level, stratified
    save_dataset(result.dataset, "out", "parquet")
    hf = to_hf(ds)                                # datasets.Dataset (DatasetDict by split); from_hf(hf) back
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit.data._generations import (
    CONDITIONS,
    GENERATIONS_FILE,
    MODEL_CONDITIONS,
    Condition,
    GenerationRecord,
    Message,
    ModelCondition,
    read_generations,
    system_name,
    write_generations,
)
from tidekit.data._load import (
    FORMATS,
    Format,
    check_dataset,
    detect_format,
    load_dataset,
    resolve_source,
    save_dataset,
)
from tidekit.data._problems import Problem, Problems
from tidekit.data._prompts import DEFAULT_SYSTEM_PROMPT, conversation_messages
from tidekit.data._schema import (
    SCHEMA_VERSION,
    SPLITS,
    Conversation,
    Dataset,
    Persona,
    Provenance,
    Role,
    Split,
    Turn,
)
from tidekit.data._split import DEFAULT_RATIOS, SplitResult, parse_ratios, save_split, split_dataset
from tidekit.data._summary import DatasetSummary, LengthStats, summarize
from tidekit.data._validate import ValidationReport, validate_dataset

__all__ = [
    "CONDITIONS",
    "DEFAULT_RATIOS",
    "DEFAULT_SYSTEM_PROMPT",
    "FORMATS",
    "GENERATIONS_FILE",
    "MESSAGES_FILE",
    "MODEL_CONDITIONS",
    "SCHEMA_VERSION",
    "SPLITS",
    "Condition",
    "Conversation",
    "Dataset",
    "DatasetSummary",
    "Format",
    "GenerationRecord",
    "LengthStats",
    "Message",
    "ModelCondition",
    "Persona",
    "Problem",
    "Problems",
    "Provenance",
    "Role",
    "Split",
    "SplitResult",
    "Turn",
    "ValidationReport",
    "check_dataset",
    "conversation_messages",
    "detect_format",
    "from_hf",
    "load_dataset",
    "parse_ratios",
    "read_generations",
    "read_messages",
    "read_table",
    "resolve_source",
    "sample_path",
    "save_dataset",
    "save_split",
    "split_dataset",
    "summarize",
    "system_name",
    "table_kind",
    "to_hf",
    "validate_dataset",
    "write_generations",
    "write_messages",
    "write_table",
]


if TYPE_CHECKING:
    from tidekit.data._chat import MESSAGES_FILE, read_messages, write_messages
    from tidekit.data._hf import from_hf, to_hf
    from tidekit.data._table import read_table, table_kind, write_table

# exchange formats, imported on first use so 'import tidekit.data' stays light
_LAZY = {"MESSAGES_FILE": "_chat", "read_messages": "_chat", "write_messages": "_chat",
         "from_hf": "_hf", "to_hf": "_hf", "read_table": "_table", "table_kind": "_table", "write_table": "_table"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"tidekit.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tidekit.data' has no attribute {name!r}")


def sample_path() -> Path:
    """The folder of the bundled synthetic sample (TIDE layout): 5 personas x 20 scenarios."""
    from importlib import resources

    return Path(str(resources.files("tidekit") / "sample" / "tide"))

