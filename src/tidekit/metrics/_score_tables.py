"""Render the scoring run's tables as Markdown and LaTeX (CSV is pandas' own): the scoring
stage's own tables (``write_score_tables``), written beside the CSVs by ``tidekit score``.

Two views are rendered for reading: the overall table (one row per system, one column per
metric, ``mean [low, high]``) and the comparisons (every row, with Holm-adjusted p). The full
per-scenario aggregates stay in ``aggregates.csv``; a per-scenario view of one metric (the
paper's cosine by default) is rendered too. LaTeX uses booktabs rules and escapes special
characters; it needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidekit._io import write_text

__all__ = ["comparisons_view", "overall_view", "scenario_view", "to_latex", "to_markdown", "write_score_tables"]


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def _cell(mean: float, low: float, high: float) -> str:
    if math.isnan(low):
        return _fmt(mean)
    return f"{_fmt(mean)} [{_fmt(low)}, {_fmt(high)}]"


def overall_view(aggregates: Any, metrics: Sequence[str], always_n: Sequence[str] = ()) -> Any:
    """Rows: systems; columns: metrics; cells ``mean [low, high]`` over all scenarios.

    ``n`` is the system's replies scored (the most any metric has); a cell whose metric has
    fewer values (e.g. a judge that could not be read for some replies) says its own
    ``n=``, and the metrics in ``always_n`` (the judge columns) always do.
    """
    import pandas as pd

    overall = aggregates[aggregates.scenario_id == "ALL"]
    rows = []
    for system, group in overall.groupby("system", sort=True):
        total = int(group["n"].max()) if len(group) else 0
        row: dict[str, Any] = {"system": system, "n": total}
        by_metric = {r.metric: r for r in group.itertuples(index=False)}
        for metric in metrics:
            r = by_metric.get(metric)
            if r is None:
                row[metric] = "–"
                continue
            row[metric] = _cell(r.mean, r.ci_low, r.ci_high)
            if metric in always_n or int(r.n) != total:
                row[metric] += f" (n={int(r.n)})"
        rows.append(row)
    return pd.DataFrame(rows, columns=["system", "n", *metrics])


def scenario_view(aggregates: Any, metric: str) -> Any:
    """Rows: scenarios; columns: systems; cells ``mean [low, high]`` of one metric."""
    import pandas as pd

    cells = aggregates[(aggregates.metric == metric) & (aggregates.scenario_id != "ALL")]
    systems = sorted(cells.system.unique())
    rows = []
    for scenario, group in cells.groupby("scenario_id", sort=True):
        by_system = {r.system: r for r in group.itertuples(index=False)}
        rows.append({"scenario": scenario, **{s: _cell(by_system[s].mean, by_system[s].ci_low, by_system[s].ci_high)
                                              if s in by_system else "–" for s in systems}})
    return pd.DataFrame(rows, columns=["scenario", *systems])


def comparisons_view(comparisons: Any) -> Any:
    """The comparisons with rounded numbers, ready to print."""
    cols = ["comparison", "system_a", "system_b", "metric", "n_pairs", "mean_diff", "rank_biserial",
            "p_value", "p_holm"]
    return comparisons[cols].copy()


def to_markdown(table: Any, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table."""
    header = [str(c) for c in table.columns]
    lines = ([f"### {title}", ""] if title else []) + [
        "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Any, caption: str, label: str) -> str:
    """A booktabs ``table`` environment."""
    cols = "l" * min(1, len(table.columns)) + "r" * max(0, len(table.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(_tex(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    for row in table.itertuples(index=False):
        lines.append(" & ".join(_tex(_fmt(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(caption)}}}", rf"\label{{{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_score_tables(out: Path, aggregates: Any, comparisons: Any, *, columns: Sequence[str],
                       judge_columns: Sequence[str], warnings: Sequence[str], scenario_metric: str | None,
                       confidence: float, comparison_unit: str) -> list[str]:
    """Write ``aggregates.md``/``.tex`` (the overall table; the per-scenario table of
    ``scenario_metric`` when given) and ``comparisons.md``/``.tex`` into ``out``; the judge
    warnings go under the Markdown table. Returns the file names."""
    overall = overall_view(aggregates, columns, always_n=judge_columns)
    per_scenario = scenario_view(aggregates, scenario_metric) if scenario_metric is not None else None
    ci = f"{confidence:.0%}"
    md = to_markdown(overall, f"Overall: mean [{ci} CI, bootstrap clustered by persona]; n = replies "
                              "scored, a cell's own n where it has fewer (always for judge columns)")
    if warnings:
        md += "\n" + "\n".join(f"> **Warning:** {w}" for w in warnings) + "\n"
    tex = to_latex(overall, f"Mean and {ci} CI (bootstrap clustered by persona) per system.", "tab:scores")
    if per_scenario is not None:
        md += "\n" + to_markdown(per_scenario, f"{scenario_metric} by scenario")
        tex += "\n" + to_latex(per_scenario, f"{scenario_metric} by scenario, mean and {ci} CI.",
                               "tab:scores-by-scenario")
    write_text(out / "aggregates.md", md)
    write_text(out / "aggregates.tex", tex)
    comp = comparisons_view(comparisons)
    title = (f"Paired comparisons (Wilcoxon signed-rank by {comparison_unit}, rank-biserial r, "
             "Holm-adjusted p within metric)")
    write_text(out / "comparisons.md", to_markdown(comp, title))
    write_text(out / "comparisons.tex", to_latex(comp, title, "tab:comparisons"))
    return ["aggregates.md", "aggregates.tex", "comparisons.md", "comparisons.tex"]
