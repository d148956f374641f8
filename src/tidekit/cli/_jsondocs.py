"""What each verb prints with ``--json``: generated into ``docs/json.md`` from the result models.

Every verb's ``--json`` prints one JSON document on stdout (``tidekit serve --json`` prints one
line once it listens); its shape is the pydantic model the verb's function returns, so this
module names that model per verb and renders its fields (type, description), nested models
included. ``make docs`` rewrites the page; a test fails when it is stale or a verb is missing.

Run it with::

    python -m tidekit.cli._jsondocs          # rewrite docs/json.md
    python -m tidekit.cli._jsondocs --check  # exit 1 if it is stale
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from pydantic import BaseModel

__all__ = ["JSON_OUTPUTS", "json_reference", "main"]

# verb -> (what is printed, "module:Model" giving its fields, or None when the note says it all)
JSON_OUTPUTS: dict[str, tuple[str, str | None]] = {
    "data validate": ("the validation report", "tidekit.data._validate:ValidationReport"),
    "data convert": ("{out, format, personas, conversations, examples}: the folder written, its layout, the "
                     "counts, and with --to sft the examples per split (else null)", None),
    "data split": ("{out, format, seed, stratify_by, personas: {split: n}, conversations: {split: n}}", None),
    "data sample": ("{out, format}: where the synthetic sample was copied, in which layout", None),
    "judge validate": ("the validation (the content of OUT/validation.json)",
                       "tidekit.metrics._validate:JudgeValidation"),
    "rate export": ("the export summary", "tidekit.rating._export:ExportSummary"),
    "rate simulate": ("the simulation summary", "tidekit.rating._simulate:SimulationSummary"),
    "rate token": ("{admin_token}: the new admin token (shown once)", None),
    "rate serve": ("one line once the socket listens: {url, admin_url, host, port, pid}; the server then runs "
                   "until Ctrl-C", None),
    "personas": ("the persona run (file, counts, target vs realised distributions)",
                 "tidekit.personas._store:PersonaRun"),
    "build run": ("the build result; with --check the plan: {out, personas, conversations, turns, teacher, "
                  "max_requests}", "tidekit.builder._build:BuildResult"),
    "build import-review": ("the review result", "tidekit.builder._review:ReviewResult"),
    "generate": ("the generation result", "tidekit.generation._dataset:GenerateResult"),
    "serve": ("one line once the socket listens: {base_url, model, host, port, pid}; the server then runs "
              "until Ctrl-C", None),
    "finetune train": ("the fine-tuning result (`skipped: true` when OUT already held the run)",
                       "tidekit.finetuning._train:FinetuneResult"),
    "finetune merge": ("the merge result", "tidekit.finetuning._merge:MergeResult"),
    "finetune ceiling": ("the ceiling analysis plus `files`: the paths written", "tidekit.analysis._ceiling:CeilingResult"),
    "score": ("the scoring result", "tidekit.metrics._score:ScoreResult"),
    "scorer epitome": ("{rows, out}: the labelled pairs written and the file", None),
    "scorer train": ("the training result (`skipped: true` when OUT already held this scorer)",
                     "tidekit.scorer._train:ScorerTrainResult"),
    "rate create": ("the study summary", "tidekit.rating._create:StudySummary"),
    "rate status": ("the study status", "tidekit.rating._status:StudyStatus"),
    "rate release": ("{released: [...slots], dry_run: bool}", None),
    "models": ("a list of registry entries", "tidekit.backends._registry:ModelSpec"),
    "analyze": ("the analysis (the same content as OUT/analysis.json)", "tidekit.analysis._results:AnalysisResult"),
    "report": ("the report result", "tidekit.reporting._report:ReportResult"),
    "run": ("the study result; with --dry-run the plan (StudyPlan, below)", "tidekit.study._study:StudyResult"),
}
# printed by `tidekit run --dry-run --json`
_EXTRA_MODELS = [("run --dry-run", "tidekit.study._study:StudyPlan")]


def _model(target: str) -> type[BaseModel]:
    module, name = target.split(":")
    model = getattr(importlib.import_module(module), name)
    assert isinstance(model, type) and issubclass(model, BaseModel), target
    return model


def json_reference() -> str:
    """Markdown: per verb, what ``--json`` prints and the fields of that object."""
    from tidekit._refdocs import _model_table

    lines = ["# JSON output (`--json`)", "",
             "Generated from the result models by `make docs` (`python -m tidekit.cli._jsondocs`); a test fails",
             "when this file is stale or a verb lacks `--json`. With `--json` a verb prints one JSON document on",
             "stdout and nothing else (progress bars, warnings and logs go to stderr), so `tidekit VERB ... --json",
             "| jq` works; errors still exit non-zero with `error: ...` on stderr. Fields are added over time,",
             "never renamed or removed without a note in CHANGELOG.md. The `default` column is the model's",
             "default, not a value the verb prints.", "",
             "| verb | prints | schema |", "|---|---|---|"]
    for verb, (printed, target) in sorted(JSON_OUTPUTS.items()):
        schema = f"`{target.split(':')[1]}`" if target else "(in the row)"
        lines.append(f"| `tidekit {verb} --json` | {printed} | {schema} |")
    lines.append("")
    seen: set[type[BaseModel]] = set()
    for label, target in [*sorted((v, t) for v, (_, t) in JSON_OUTPUTS.items() if t), *_EXTRA_MODELS]:
        model = _model(target)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## `tidekit {label} --json`: {model.__name__}", ""]
        _model_table(model, "", seen, lines)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tidekit._io import write_text

    argv = sys.argv[1:] if argv is None else argv
    path = Path(__file__).resolve().parents[3] / "docs" / "json.md"
    text = json_reference() + "\n"
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if current == text:
        print("docs/json.md up to date")
        return 0
    if "--check" in argv:
        print(f"stale: {path} (run 'make docs')", file=sys.stderr)
        return 1
    write_text(path, text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
