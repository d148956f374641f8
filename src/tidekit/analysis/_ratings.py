"""Read a long-format ratings table and prepare it for analysis, stating every exclusion.

Input: CSV, TSV or Parquet (a file, or a folder holding ``ratings.parquet``/``ratings.csv``),
or a SQLAlchemy URL whose database has a long-format ``ratings`` table or view. The rating
app's own store is normalised; ``tidekit rate export`` writes the long table from it.

Preparation renames the configured columns to canonical names (rater, item, rating,
conversation, system, model, condition, scenario), applies the attention-check rule, checks
the scale, and builds one row per rater with its attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidekit.analysis._config import DEFAULT_ATTRIBUTES, AnalysisConfig
from tidekit.analysis._results import DataSummary, Exclusion
from tidekit.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FACTORS", "PreparedRatings", "load_ratings", "prepare_ratings"]

FACTORS = ("conversation", "system", "model", "condition", "scenario")
SAMPLING_COLUMNS = ("sampling", "stratum", "inclusion_probability", "frame_size")  # = tidekit.rating's
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def load_ratings(source: str | Path, table: str = "ratings") -> pd.DataFrame:
    """Read ratings from a CSV/TSV/Parquet file, a folder holding one, or a database URL."""
    import pandas as pd

    text = str(source)
    if "://" in text:
        return _load_db(text, table)
    path = Path(source)
    if path.is_dir():
        found = [path / n for n in ("ratings.parquet", "ratings.csv", "ratings.tsv") if (path / n).is_file()]
        if not found:
            raise DataError(f"{path}: no ratings.parquet or ratings.csv in this folder; export them with "
                            "'tidekit rate export' or give the file")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path}: no such ratings file")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype_backend="numpy_nullable",
                               keep_default_na=False, na_values=[""])
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the ratings table ({exc}); expected CSV or Parquet") from None
    raise DataError(f"{path}: unknown ratings format '{path.suffix}'; use .csv, .tsv or .parquet")


def _load_db(url: str, table: str) -> pd.DataFrame:
    import pandas as pd
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names()) | set(sa.inspect(conn).get_view_names())
            if table not in names:
                raise DataError(f"{url}: no table or view '{table}' (found: {', '.join(sorted(names)) or 'none'}). "
                                "Export the long format with 'tidekit rate export --out ratings.parquet' "
                                "and analyse that file, or name the table with --table")
            return pd.read_sql_table(table, conn)
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"{url}: cannot read ratings from the database ({exc.__class__.__name__}: {exc}); "
                        "export them with 'tidekit rate export' instead") from None


def _as_bool(series: pd.Series) -> pd.Series:
    import pandas as pd

    def conv(v: Any) -> bool | None:
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return None
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        return None

    return series.map(conv).astype("object")


@dataclass
class PreparedRatings:
    """Ratings ready for analysis: canonical columns, one row per rater, and what was left out."""

    df: pd.DataFrame  # rater, item, rating, [conversation, system, model, condition, scenario]
    raters: pd.DataFrame  # index rater; one column per attribute (NaN = missing)
    attributes: list[str]
    factors: list[str]  # canonical factor columns present
    extra_ratings: list[str]  # canonical names 'r:<col>'
    exclusions: list[Exclusion] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    summary: DataSummary | None = None


def _examples(values: Any, limit: int = 20) -> list[str]:
    return [str(v) for v in list(values)[:limit]]


def _copy_design(raw: pd.DataFrame, df: pd.DataFrame) -> None:
    """The rating study's sampling design (the columns 'tidekit rate export' writes) as
    ``design:*`` columns of ``df``, for the prediction-powered estimates."""
    import pandas as pd

    for c in SAMPLING_COLUMNS:
        if c in raw.columns:
            df[f"design:{c}"] = (pd.to_numeric(raw[c], errors="coerce") if c in ("inclusion_probability", "frame_size")
                                 else raw[c].astype("object").where(raw[c].notna(), None))


def prepare_ratings(raw: pd.DataFrame, config: AnalysisConfig) -> PreparedRatings:
    """Validate ``raw`` against ``config`` and return canonical ratings; DataError lists every problem."""
    import numpy as np
    import pandas as pd

    cols = config.columns
    available = list(raw.columns)
    problems: list[str] = []
    for role in ("rater", "item", "rating"):
        name = getattr(cols, role)
        if name not in raw.columns:
            problems.append(f"required column '{name}' ({role}) is missing; name it with --{role}-col "
                            f"or columns.{role}=<column>")
    by = list(config.by) if config.by is not None else [a for a in DEFAULT_ATTRIBUTES if a in raw.columns]
    for attr in by:
        if attr not in raw.columns:
            problems.append(f"attribute column '{attr}' (from --by) is missing")
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the ratings table:\n  " + "\n  ".join(problems)
                        + f"\nColumns found: {', '.join(map(str, available))}")
    reserved = {cols.rater, cols.item, cols.rating, "rater", "item", "rating", "attr", *FACTORS}
    clash = [a for a in by if a in reserved or a in {getattr(cols, f) for f in FACTORS}]
    if clash:
        raise ConfigError(f"--by names a column that is not a rater attribute: {', '.join(clash)}; "
                          "give rater attribute columns such as age_group or education")

    exclusions: list[Exclusion] = []
    skipped: list[str] = []
    input_rows = len(raw)
    df = pd.DataFrame({"rater": raw[cols.rater].astype(str), "item": raw[cols.item].astype(str)})
    df["_raw_rating"] = raw[cols.rating]
    factors = []
    for role in FACTORS:
        name = getattr(cols, role)
        if name is None:
            continue
        if name in raw.columns:
            values = raw[name].astype("object")
            df[role] = values.where(values.notna(), None).map(lambda v: None if v is None else str(v))
            factors.append(role)
        elif name != getattr(type(cols).model_fields[role], "default", None):
            raise DataError(f"column '{name}' ({role}) is missing; columns found: {', '.join(map(str, available))}")
        else:
            skipped.append(f"no '{name}' column: analyses by {role} skipped")
    extra = [c for c in cols.extra_ratings if c in raw.columns and c != cols.rating]
    for c in extra:
        df[f"r:{c}"] = pd.to_numeric(raw[c], errors="coerce")
    _copy_design(raw, df)

    # Attention checks: the rule is applied, then the check rows are dropped.
    if cols.attention_check and cols.attention_check in raw.columns:
        is_check = _as_bool(raw[cols.attention_check]).fillna(False).astype(bool).to_numpy()
        n_checks = int(is_check.sum())
        if n_checks:
            passed = (_as_bool(raw[cols.attention_passed]).to_numpy()
                      if cols.attention_passed and cols.attention_passed in raw.columns
                      else np.full(len(raw), None))
            failed = is_check & np.array([p is False for p in passed])
            fails_per_rater = pd.Series(failed, index=df.index).groupby(df["rater"]).sum()
            bad = fails_per_rater[fails_per_rater > config.max_failed_checks].index
            bad_rows = df["rater"].isin(bad).to_numpy() & ~is_check
            if len(bad):
                exclusions.append(Exclusion(
                    reason=f"failed more than {config.max_failed_checks} attention check(s)",
                    rows=int(bad_rows.sum()), raters=len(bad), detail=_examples(sorted(bad))))
            exclusions.append(Exclusion(reason="attention-check rows are not ratings of a reply",
                                        rows=n_checks, raters=0,
                                        detail=[f"{int(failed.sum())} of {n_checks} checks failed"]))
            keep = ~is_check & ~df["rater"].isin(bad).to_numpy()
            df, raw = df[keep], raw[keep]

    # The scale.
    rating = pd.to_numeric(df["_raw_rating"], errors="coerce").astype(float)
    outside = rating.isna() | (rating < config.scale_min) | (rating > config.scale_max)
    if outside.any():
        shown = _examples(df.loc[outside, "_raw_rating"].astype(str).unique())
        where = _examples(df.index[outside][:5])
        msg = (f"{int(outside.sum())} rating(s) in '{cols.rating}' are missing, not numbers, or outside "
               f"the scale {config.scale_min}-{config.scale_max} (values: {', '.join(shown)}; rows "
               f"{', '.join(where)})")
        if config.out_of_scale == "error":
            raise DataError(msg + ". Fix the data, set scale_min/scale_max to the scale used, or set "
                                  "out_of_scale=exclude to leave those rows out")
        exclusions.append(Exclusion(reason=f"rating missing or outside {config.scale_min}-{config.scale_max}",
                                    rows=int(outside.sum()), raters=0, detail=shown))
        df, raw, rating = df[~outside], raw[~outside], rating[~outside]
    df = df.drop(columns="_raw_rating")
    df["rating"] = rating.to_numpy()
    if not len(df):
        raise DataError("no ratings left after exclusions (see above): nothing to analyse")

    raters = _rater_table(df, raw, by, config, exclusions)
    prepared = PreparedRatings(df=df.reset_index(drop=True), raters=raters, attributes=by, factors=factors,
                               extra_ratings=[f"r:{c}" for c in extra], exclusions=exclusions, skipped=skipped)
    simulated = (_as_bool(raw[cols.simulated]).fillna(False).astype(bool).to_numpy()
                 if cols.simulated and cols.simulated in raw.columns else np.zeros(len(df), bool))
    prepared.summary = _summarize(prepared, simulated, input_rows, config)
    return prepared



def _rater_table(df: pd.DataFrame, raw: pd.DataFrame, by: list[str], config: AnalysisConfig,
                 exclusions: list[Exclusion]) -> pd.DataFrame:
    """One row per rater with its ``by`` attributes; appends an exclusion per attribute some raters
    left empty, and raises DataError if an attribute differs between one rater's rows."""
    import pandas as pd

    missing_tokens = {m.strip().lower() for m in config.missing_values}
    raters = pd.DataFrame(index=pd.Index(sorted(df["rater"].unique()), name="rater"))
    inconsistent: list[str] = []
    for attr in by:
        values = raw[attr].astype("object").map(
            lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
            or str(v).strip().lower() in missing_tokens else str(v).strip())
        per = pd.DataFrame({"rater": df["rater"].to_numpy(), "v": values.to_numpy()}).dropna()
        distinct = per.groupby("rater")["v"].nunique()
        multi = distinct[distinct > 1]
        if len(multi):
            inconsistent.append(f"'{attr}' differs between rows of rater(s) {', '.join(_examples(multi.index, 5))}")
        raters[attr] = per.groupby("rater")["v"].first().reindex(raters.index)
        n_missing = int(raters[attr].isna().sum())
        if n_missing:
            miss_raters = raters.index[raters[attr].isna()]
            exclusions.append(Exclusion(
                reason=f"no '{attr}' given (empty, or one of the missing_values such as prefer_not_to_say)",
                scope=f"tests of {attr}", raters=n_missing,
                rows=int(df["rater"].isin(miss_raters).sum()), detail=_examples(miss_raters)))
    if inconsistent:
        raise DataError("rater attributes must be constant per rater: " + "; ".join(inconsistent)
                        + ". Fix the export so each rater has one value per attribute")
    return raters


def _summarize(p: PreparedRatings, simulated: Any, input_rows: int, config: AnalysisConfig) -> DataSummary:
    import numpy as np

    df = p.df
    per_rater = df.groupby("rater").size()
    per_item = df.groupby("item")["rater"].nunique()

    def mmm(s: Any) -> dict[str, float]:
        return {"min": float(s.min()), "median": float(s.median()), "max": float(s.max())}

    counts = df["rating"].value_counts().sort_index()  # values as they are (half points stay)
    return DataSummary(
        ratings=len(df), raters=int(df["rater"].nunique()), items=int(df["item"].nunique()),
        conversations=int(df["conversation"].nunique()) if "conversation" in df else None,
        systems=sorted(df["system"].dropna().unique().tolist()) if "system" in df else [],
        conditions=sorted(df["condition"].dropna().unique().tolist()) if "condition" in df else [],
        scenarios=int(df["scenario"].nunique()) if "scenario" in df else None,
        ratings_per_rater=mmm(per_rater), raters_per_item=mmm(per_item),
        rating_mean=float(df["rating"].mean()),
        rating_counts={f"{k:g}": int(v) for k, v in counts.items()},
        simulated=bool(np.any(simulated)), simulated_fraction=float(np.mean(simulated)) if len(simulated) else 0.0,
        attributes={a: {str(k): int(v) for k, v in p.raters[a].value_counts().sort_index().items()}
                    for a in p.attributes},
        input_rows=input_rows,
    )
