"""EPITOME's three annotation files as one labels file (``tidekit scorer epitome``).

EPITOME (Sharma, Miner, Atkins and Althoff, EMNLP 2020) is not shipped with tidekit: its licence
allows academic, non-commercial use only. Its Reddit release is three CSV files, one per empathy
mechanism (``emotional-reactions-reddit.csv``, ``interpretations-reddit.csv``,
``explorations-reddit.csv``), each with ``sp_id`` (seeker post), ``rp_id`` (reply),
``seeker_post``, ``response_post``, ``level`` (0 none, 1 weak, 2 strong) and ``rationales``.
:func:`epitome_labels` joins them on (``sp_id``, ``rp_id``), keeps the pairs that carry all three
levels, and writes a labels file with ``id`` (seeker-reply), ``seeker_id``, ``context``,
``response``, ``er``, ``ip``, ``ex``, ``total`` (their sum) and the rationales.
"""

from __future__ import annotations

from pathlib import Path

from tidekit._io import atomic_path
from tidekit.errors import DataError

__all__ = ["EPITOME_FILES", "epitome_labels"]

EPITOME_FILES = {"er": "emotional-reactions-reddit.csv", "ip": "interpretations-reddit.csv",
                 "ex": "explorations-reddit.csv"}
_COLUMNS = ("sp_id", "rp_id", "seeker_post", "response_post", "level")


def epitome_labels(folder: str | Path, out: str | Path) -> int:
    """Write the joined labels file to ``out`` (CSV, or Parquet by its suffix); returns its rows."""
    import pandas as pd

    folder = Path(folder)
    merged = None
    for key, name in EPITOME_FILES.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: not found; point at the folder holding EPITOME's three files "
                            f"({', '.join(EPITOME_FILES.values())}); docs/scoring.md says where to get them")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in _COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(frame.columns)})")
        levels = pd.to_numeric(frame["level"], errors="coerce")
        bad = frame.index[levels.isna() | ~levels.isin([0, 1, 2])]
        if len(bad):
            raise DataError(f"{path}: line {int(bad[0]) + 2}: level {frame.at[bad[0], 'level']!r} is not 0, 1 or 2")
        part = frame[["sp_id", "rp_id", "seeker_post", "response_post"]].assign(
            **{key: levels.astype(int), f"{key}_rationales": frame.get("rationales", "")})
        merged = part if merged is None else merged.merge(part, on=["sp_id", "rp_id", "seeker_post", "response_post"])
    assert merged is not None
    merged = merged.drop_duplicates(subset=["sp_id", "rp_id"])
    labels = pd.DataFrame({"id": merged.sp_id + "-" + merged.rp_id, "seeker_id": merged.sp_id,
                           "context": merged.seeker_post, "response": merged.response_post,
                           "er": merged.er, "ip": merged.ip, "ex": merged.ex,
                           "total": merged.er + merged.ip + merged.ex,
                           **{f"{k}_rationales": merged[f"{k}_rationales"] for k in EPITOME_FILES}})
    out = Path(out)
    with atomic_path(out, out.suffix) as tmp:
        if out.suffix.lower() == ".parquet":
            labels.to_parquet(tmp, index=False)
        else:
            labels.to_csv(tmp, index=False)
    return len(labels)
