"""Export ratings: one row per rating, rater demographics joined, no raw identifiers.

The columns (:data:`EXPORT_COLUMNS`) are the contract the analysis stage reads. ``rater_id`` is
the study's random pseudonym; Prolific ids, session tokens and their hashes never leave the
database. ``attention_passed`` is per rater: True when none of the attention checks the rater
answered was failed (a check passes when all four scores equal the requested answer).

CSV cells are text that spreadsheet programs may run: a cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (a rater's comment, say) is written with a leading ``'`` so it
opens as text, not a formula (OWASP's advice on CSV injection). Parquet keeps values unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidekit._io import atomic_path
from tidekit._manifest import RunRecorder
from tidekit.errors import ConfigError
from tidekit.rating._config import DEMOGRAPHICS
from tidekit.rating._sampling import SAMPLING_COLUMNS, read_sampling
from tidekit.rating._store import SCORE_FIELDS, RatingStore

__all__ = ["EXPORT_COLUMNS", "ExportSummary", "export_ratings", "rating_frame"]

EXPORT_COLUMNS: tuple[str, ...] = (
    "rating_id", "rater_id", "item_id", "conversation_id", "persona_id", "scenario_id", "system",
    "model", "condition", "is_attention_check", "attention_passed", *SCORE_FIELDS, "comment",
    "submitted_at", "duration_s", *DEMOGRAPHICS, "simulated",
    # beyond the contract: the blinding code, the position in the rater's order, completion, and the
    # texts the rater saw (the turns before the reply, one per line; the reply), which make the
    # export a labels file for 'tidekit scorer train' and 'tidekit judge validate'
    "system_code", "position", "rater_completed", "context", "response",
    # how the study sampled the conversation (tidekit.rating._sampling): the prediction-powered
    # estimates check and weight by it
    *SAMPLING_COLUMNS,
)


class ExportSummary(BaseModel):
    """What an export wrote."""

    path: str = Field(description="The file written.")
    rows: int = Field(description="Ratings exported (attention checks included).")
    raters: int = Field(description="Distinct raters.")
    attention_failed_raters: int = Field(description="Raters who failed at least one attention check.")
    simulated_rows: int = Field(description="Rows from simulated raters.")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: Any) -> Any:
    """A copy of ``frame`` whose text cells that a spreadsheet would read as a formula start with "'"."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return out


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def rating_frame(store: RatingStore) -> Any:
    """The export as a pandas DataFrame with :data:`EXPORT_COLUMNS`."""
    import pandas as pd

    rows = store.rating_rows()
    design = read_sampling(store)
    unknown = dict.fromkeys(SAMPLING_COLUMNS)
    failed: set[str] = set()
    for row in rows:
        if row["is_attention_check"] and any(row[f] != row["expected"] for f in SCORE_FIELDS):
            failed.add(row["rater_id"])
    out = []
    for row in rows:
        check = bool(row["is_attention_check"])
        out.append({
            **row, "system": "attention_check" if check else row["system"],
            "is_attention_check": check, "attention_passed": row["rater_id"] not in failed,
            "submitted_at": _iso(row["submitted_at"]), "simulated": bool(row["simulated"]),
            "rater_completed": row["completed_at"] is not None,
            "context": "\n".join(turn["text"] for turn in json.loads(row["context"])),
            **(design.row_values(None if check else row["conversation_id"]) if design else unknown),
        })
    frame = pd.DataFrame(out, columns=list(EXPORT_COLUMNS))
    for col in (*SCORE_FIELDS, "rating_id", "position"):
        frame[col] = frame[col].astype("int64")
    for col in ("is_attention_check", "attention_passed", "simulated", "rater_completed"):
        frame[col] = frame[col].astype("bool")
    frame["duration_s"] = frame["duration_s"].astype("float64")
    frame["inclusion_probability"] = frame["inclusion_probability"].astype("float64")
    frame["frame_size"] = frame["frame_size"].astype("Int64")
    return frame


def export_ratings(db: str | Path, out: str | Path, fmt: Literal["csv", "parquet"] | None = None) -> ExportSummary:
    """Write every rating to ``out`` (CSV or Parquet, by suffix unless ``fmt``) atomically, with
    a ``manifest.json`` beside it."""
    out = Path(out)
    fmt = fmt or ("parquet" if out.suffix == ".parquet" else "csv" if out.suffix == ".csv" else None)
    if fmt is None:
        raise ConfigError(f"{out}: cannot tell the format; end the name in .csv or .parquet, or pass --format")
    store = RatingStore.open(db)
    try:
        with RunRecorder(out.parent, command="rate export", config=store.info.config,
                         seed=store.info.config.seed,
                         inputs={"db": store.engine.url.render_as_string(hide_password=True)}) as run:
            with run.step("query"):
                frame = rating_frame(store)
            with run.step("write"), atomic_path(out, suffix=out.suffix) as tmp:
                if fmt == "csv":
                    neutralise_formulas(frame).to_csv(tmp, index=False)
                else:
                    frame.to_parquet(tmp, index=False)
            failed = frame.loc[~frame["attention_passed"], "rater_id"].nunique()
            summary = ExportSummary(path=str(out), rows=len(frame), raters=int(frame["rater_id"].nunique()),
                                    attention_failed_raters=int(failed),
                                    simulated_rows=int(frame["simulated"].sum()))
            run.counts.update(rows=summary.rows, raters=summary.raters,
                              attention_failed_raters=summary.attention_failed_raters)
            run.extra["output"] = out.name
    finally:
        store.close()
    return summary
