"""Hugging Face ``datasets`` both ways, and Hub dataset ids (``hf://owner/name``).

:func:`to_hf` gives one row per conversation with its persona's fields as columns (see
``tidekit.data._flat``; ``turns`` is a list of ``{role, text}``, ``reference`` the supporter reply;
``persona_attributes``, ``provenance`` and ``extra`` are JSON text, so any keys survive Arrow),
as a ``datasets.Dataset``, or a ``DatasetDict`` by split when the data has splits (conversations
without a split under ``unassigned``). :func:`from_hf` reads such a dataset (or one with a chat
``messages`` column) back. ``save_to_disk`` folders are a layout of their own (``hf``).

``hf://owner/name[@revision][/subfolder]`` downloads the Hub dataset repository with
``huggingface_hub`` (the token from ``HF_TOKEN`` for gated datasets such as ``yenopoya/TIDE``) into
the Hugging Face cache and loads the folder in whatever layout it holds. Offline
(``HF_HUB_OFFLINE=1``) it loads a cached copy or fails saying how to download it.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from tidekit.data._flat import conversation_row, dataset_from_rows
from tidekit.data._problems import Problems
from tidekit.data._schema import SPLITS, Dataset
from tidekit.errors import DataError, MissingDependencyError

__all__ = ["HUB_PREFIX", "from_hf", "hub_folder", "is_hf_folder", "is_hub_id", "read_hf", "to_hf", "write_hf"]

HUB_PREFIX = "hf://"
UNASSIGNED = "unassigned"
_HF_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("Hugging Face datasets support", "datasets") from None
    return datasets


def _features() -> Any:
    ds = _datasets()
    text, string_list = ds.Value("string"), ds.List(ds.Value("string"))
    return ds.Features({
        "conversation_id": text, "persona_id": text, "scenario_id": text, "scenario": text,
        "turns": ds.List({"role": text, "text": text}), "reference": text, "split": text,
        "age": ds.Value("int64"), "age_group": text, "gender": text, "trauma_type": text, "behaviors": string_list,
        "persona_attributes": text, "provenance": text, "extra": text,
    })


def to_hf(dataset: Dataset) -> Any:
    """The dataset as a ``datasets.Dataset`` (a ``DatasetDict`` by split if it has splits)."""
    ds = _datasets()
    personas = dataset.persona_map()
    features = _features()

    def table(convs: list[Any]) -> Any:
        rows = []
        for c in convs:
            row = conversation_row(c, personas.get(c.persona_id), json_text=True)
            row["turns"] = [{"role": t.role, "text": t.text} for t in c.turns]
            row["reference"] = c.reference
            rows.append({name: row[name] for name in features})
        return ds.Dataset.from_list(rows, features=features)

    if all(c.split is None for c in dataset.conversations):
        return table(list(dataset.conversations))
    groups: dict[str, list[Any]] = {s: [c for c in dataset.conversations if c.split == s] for s in SPLITS}
    groups[UNASSIGNED] = [c for c in dataset.conversations if c.split is None]
    return ds.DatasetDict({name: table(convs) for name, convs in groups.items() if convs})


def from_hf(data: Any, problems: Problems | None = None, source: str | None = None) -> Dataset:
    """A tidekit dataset from a ``datasets.Dataset``/``DatasetDict`` (or a ``save_to_disk`` folder).

    Rows need ``turns`` (and ``reference``) as :func:`to_hf` writes them, or a chat ``messages``
    column; the other columns are optional. Problems are added to ``problems`` (raised if None).
    """
    ds = _datasets()
    own = problems is None
    problems = problems if problems is not None else Problems()
    if isinstance(data, str | Path):
        source = source or str(data)
        data = _load_from_disk(Path(data))
    where_file = source or "the Hugging Face dataset"
    parts = list(data.items()) if isinstance(data, ds.DatasetDict) else [(None, data)]
    rows: list[tuple[str, dict[str, Any]]] = []
    for name, part in parts:
        columns = set(part.column_names)
        if not ({"turns"} <= columns or {"messages"} <= columns):
            problems.add(where_file, f"no 'turns' or 'messages' column (columns: {', '.join(sorted(columns))})",
                         where=name, hint="write it with 'tidekit data convert SRC DST --to hf', or give a "
                                          "dataset with a chat 'messages' column")
            continue
        for i, row in enumerate(part):
            where = f"{name} row {i}" if name else f"row {i}"
            if "turns" not in row:
                from tidekit.data._chat import _turns

                parsed = _turns(row.pop("messages"), Path(where_file), where, problems)
                if parsed is None:
                    continue
                row["turns"], row["reference"] = parsed
            if name and row.get("split") is None and name != UNASSIGNED:
                row["split"] = _split_name(name)
            rows.append((where, row))
    dataset = dataset_from_rows(rows, where_file, problems, source=source)
    if own:
        problems.raise_if_errors(where_file)
    return dataset


def _split_name(name: str) -> str:
    from tidekit.data._flat import _SPLIT_ALIASES

    return _SPLIT_ALIASES.get(name.lower(), name)


def is_hf_folder(path: Path) -> bool:
    """True if ``path`` is a ``datasets`` ``save_to_disk`` folder (a Dataset or a DatasetDict)."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file()
                              or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()))


def _load_from_disk(path: Path) -> Any:
    ds = _datasets()
    try:
        return ds.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError, KeyError) as exc:
        raise DataError(f"{path}: not a readable Hugging Face datasets folder ({type(exc).__name__}: {exc}). "
                        "Rewrite it with datasets' save_to_disk or 'tidekit data convert SRC DST --to hf'.") from None


def read_hf(folder: str | Path, problems: Problems) -> Dataset:
    """Read a ``save_to_disk`` folder into a tidekit dataset, adding problems to ``problems``."""
    folder = Path(folder)
    try:
        data = _load_from_disk(folder)
    except DataError as exc:
        problems.add(folder, str(exc).removeprefix(f"{folder}: "))
        return Dataset(personas=[], conversations=[], source=str(folder))
    return from_hf(data, problems, source=str(folder))


def write_hf(dataset: Dataset, folder: str | Path) -> None:
    """Write ``dataset`` as a ``save_to_disk`` folder; a previous dataset there is replaced whole.

    The new dataset is written beside the old one first, so a failed write leaves the old intact.
    """
    import shutil
    import tempfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    data = to_hf(dataset)
    tmp = Path(tempfile.mkdtemp(prefix=".hf-", dir=folder))
    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # a bar per save is noise in a CLI that reports what it wrote
    try:
        data.save_to_disk(str(tmp / "d"))
        for old in _hf_entries(folder):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        for new in (tmp / "d").iterdir():
            os.replace(new, folder / new.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not quiet:
            enable_progress_bars()


def _hf_entries(folder: Path) -> list[Path]:
    """What a previous save_to_disk left in ``folder``: its json files, arrow shards, split folders."""
    out = [folder / name for name in _HF_FILES if (folder / name).is_file()]
    out += sorted(folder.glob("data-*.arrow"))
    out += [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and is_hf_folder(p)]
    return out


# --- the Hub -------------------------------------------------------------------------------------

_HUB_RE = re.compile(r"^hf:/+(?:datasets/)?(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[\w./-]+?))?(?:/(?P<sub>.+))?$")


def is_hub_id(path: str | Path) -> bool:
    """True for ``hf://owner/name`` (also as mangled by ``Path``, which keeps one slash)."""
    return str(path).startswith("hf:/")


def hub_folder(spec: str | Path) -> Path:
    """Download (or find in the cache) the Hub dataset ``hf://owner/name[@rev][/sub]``; its local folder.

    Resolved once per process (detecting the layout and reading it do not download twice).
    """
    return _hub_folder(str(spec))


@functools.lru_cache(maxsize=32)
def _hub_folder(spec: str) -> Path:
    m = _HUB_RE.match(spec)
    if m is None:
        raise DataError(f"{spec}: not a Hub dataset id; write hf://OWNER/NAME (optionally @REVISION and /SUBFOLDER), "
                        "e.g. hf://yenopoya/TIDE")
    repo, rev, sub = m["repo"], m["rev"], m["sub"]
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise MissingDependencyError("Loading hf:// datasets", "huggingface_hub") from None
    how = (f"On a machine with internet access: accept the dataset's terms at https://huggingface.co/datasets/{repo} "
           f"if it is gated, set HF_TOKEN to a read token, run 'hf download {repo} --repo-type dataset "
           f"--local-dir {repo.split('/')[-1]}', copy that folder here and pass it as --data (the folder, not hf://)")
    try:
        local = Path(snapshot_download(repo, repo_type="dataset", revision=rev,
                                       token=os.environ.get("HF_TOKEN") or None))
    except hf_errors.GatedRepoError:
        raise DataError(f"{spec}: the dataset is gated and this token has no access. Accept its terms at "
                        f"https://huggingface.co/datasets/{repo} and set HF_TOKEN to a read token of that "
                        "account.") from None
    except hf_errors.RepositoryNotFoundError:
        raise DataError(f"{spec}: no such dataset on the Hub, or it is private and HF_TOKEN is not set to a token "
                        f"that can read it. Check the id at https://huggingface.co/datasets/{repo}.") from None
    except hf_errors.RevisionNotFoundError:
        raise DataError(f"{spec}: the dataset has no revision {rev!r}") from None
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled):
        offline = " (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""
        raise DataError(f"{spec}: cannot download it: offline{offline} or the Hub is unreachable, and it is not "
                        f"in the Hugging Face cache. {how}.") from None
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise DataError(f"{spec}: download failed ({type(exc).__name__}: {exc}). {how}.") from None
    folder = local / sub if sub else local
    if not folder.exists():
        raise DataError(f"{spec}: the dataset has no folder {sub!r} (downloaded to {local})")
    return folder
