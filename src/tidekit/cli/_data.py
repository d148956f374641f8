"""``tidekit data``: validate, convert and split datasets; copy the bundled sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from tidekit.cli._common import echo_json, example, json_option, stdout_console
from tidekit.data import (
    DEFAULT_RATIOS,
    FORMATS,
    Dataset,
    DatasetSummary,
    ValidationReport,
    detect_format,
    load_dataset,
    sample_path,
    save_dataset,
    save_split,
    split_dataset,
    summarize,
    validate_dataset,
)

__all__ = ["COMMANDS"]


@click.group("data", **example("tidekit data validate path/to/TIDE"))
def data() -> None:
    """Validate, convert and split datasets: TIDE layout, JSONL, Parquet, Hugging Face datasets, chat messages."""


def render_summary(summary: DatasetSummary, title: str = "Dataset summary") -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"[bold]{title}[/bold]: {summary.personas} personas, {summary.conversations} "
                  f"conversations ({summary.with_reference} with a reference response)")
    if summary.splits and set(summary.splits) != {"none"}:
        console.print("splits: " + ", ".join(f"{k} {v}" for k, v in summary.splits.items()))
    table = Table("scenario", "conversations", title="Per scenario", title_justify="left")
    for scenario, count in summary.scenarios.items():
        table.add_row(scenario, str(count))
    console.print(table)
    lengths = Table("text", "n", "min", "median", "mean", "max", title="Length in words",
                    title_justify="left")
    for name, stats in (("client message", summary.client_words), ("reference", summary.reference_words)):
        if stats:
            lengths.add_row(name, str(stats.n), str(stats.min), f"{stats.median:g}", f"{stats.mean:g}",
                            str(stats.max))
    console.print(lengths)


def render_report(report: ValidationReport) -> None:
    console = stdout_console()
    errors = [p for p in report.problems if p.severity == "error"]
    warnings = [p for p in report.problems if p.severity == "warning"]
    for p in report.problems:  # unwrapped, so paths can be copied whole
        click.secho(str(p), fg="red" if p.severity == "error" else "yellow")
    if errors:
        click.secho(f"{report.path}: {len(errors)} error(s), {len(warnings)} warning(s)", fg="red", bold=True)
        return
    console.print(f"[green]{report.path}: valid {report.format} dataset[/green]"
                  + (f" ({len(warnings)} warning(s))" if warnings else ""))
    if report.summary:
        render_summary(report.summary)


@data.command("validate", **example("tidekit data validate path/to/TIDE",
                                    "tidekit data validate runs/data --json > report.json"))
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate_cmd(path: Path, as_json: bool) -> int:
    """Check a dataset and report every problem at once (exit 1 if any error), else its summary.

    PATH is a folder in the TIDE layout (metadata/, conversations/), a tidekit record folder
    (personas + conversations as .jsonl or .parquet), a Hugging Face datasets save_to_disk folder, a
    chat messages .jsonl file (or a folder with messages.jsonl), or a Hub id hf://OWNER/NAME.
    """
    report = validate_dataset(path)
    if as_json:
        echo_json(report)
    else:
        render_report(report)
    return 0 if report.ok else 1


@data.command("convert", **example(
    "tidekit data convert path/to/TIDE runs/tide.jsonl",
    "tidekit data convert path/to/TIDE runs/tide-jsonl --to jsonl",
    "tidekit data convert path/to/TIDE runs/tide-hf --to hf",
    "tidekit data convert runs/split runs/chat --to messages --system-prompt 'You are a supportive listener.'",
    "tidekit data convert runs/split runs/sft --to sft --model smollm2-135m",
    "tidekit data convert hf://yenopoya/TIDE runs/tide-jsonl --to jsonl"))
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--to", "fmt", type=click.Choice((*FORMATS, "sft")), default=None,
              help="Layout to write: tide, jsonl, parquet, hf (a datasets save_to_disk folder), messages "
                   "(chat JSONL), or sft (TRL prompt-completion JSONL per split, what 'tidekit finetune' trains on; "
                   "write-only) [default: jsonl; when DST ends in .jsonl, .parquet or .csv, one file of that "
                   "kind].")
@click.option("--system-prompt", default=None,
              help="messages: a system message to put first (default: none). sft: the system prompt of every "
                   "example (default: the responder prompt 'tidekit generate' and 'tidekit finetune' use).")
@click.option("--model", default=None,
              help="sft: the model the examples are for; a chat template without a system role (e.g. Gemma-2) "
                   "gets the system prompt folded into the first user message, as 'tidekit finetune' does "
                   "[default: keep the system message].")
@click.option("--targets", type=click.Choice(("all_supporter_turns", "reference_only")),
              default="all_supporter_turns", show_default=True,
              help="sft: which supporter text is a completion (as finetune's data.targets).")
@click.option("--split-seed", type=int, default=0, show_default=True,
              help="sft: seed of the persona-level split made when SRC has no splits (as finetune's "
                   "data.split_seed).")
@json_option("{out, format, personas, conversations, examples (sft: per split; else null)}")
def convert_cmd(src: Path, dst: Path, fmt: str | None, system_prompt: str | None, model: str | None,
                targets: str, split_seed: int, as_json: bool) -> None:
    """Convert the dataset in SRC to DST in another layout (records kept identical).

    SRC is any layout 'tidekit data validate' reads, a chat messages .jsonl file, a one-file table,
    or a Hugging Face Hub dataset id hf://OWNER/NAME (downloaded; gated datasets need HF_TOKEN).
    DST ending in .jsonl, .parquet or .csv is one file, one row per conversation (the columns of
    --to hf; with --to messages a chat messages file); any other DST is a folder. --to hf writes
    one row per conversation with persona fields as columns (a DatasetDict by split when SRC has
    splits); --to messages writes DST/messages.jsonl; --to sft writes DST/train.jsonl,
    validation.jsonl and test.jsonl.
    """
    from tidekit._manifest import RunRecorder
    from tidekit.data import table_kind, write_messages
    from tidekit.finetuning import write_sft

    kind = table_kind(dst)
    if kind is not None:
        _check_file_target(dst, kind, fmt)
        dataset = load_dataset(src)
        fmt = kind if fmt in (None, kind) else fmt
        _write_file(dataset, dst, fmt, system_prompt)
        counts: dict[str, int] = {}
    else:
        fmt = fmt or "jsonl"
        counts = {}
        config = {"to": fmt, "system_prompt": system_prompt, "model": model, "targets": targets,
                  "split_seed": split_seed}
        with RunRecorder(dst, command="data convert", config=config, inputs={"src": str(src)}) as run:
            with run.step("load"):
                dataset = load_dataset(src)
            with run.step("write"):
                if fmt == "sft":
                    counts = write_sft(dataset, dst, system_prompt, _system_role(model) if model else True,
                                       targets, split_seed)
                    run.counts.update({f"{k}_examples": v for k, v in counts.items()})
                elif fmt == "messages":
                    write_messages(dataset, dst, system_prompt)
                else:
                    save_dataset(dataset, dst, fmt)  # type: ignore[arg-type]
            run.counts.update(personas=len(dataset.personas), conversations=len(dataset.conversations))
            run.extra["from_format"] = detect_format(src)
    if as_json:
        echo_json({"out": str(dst), "format": fmt, "personas": len(dataset.personas),
                   "conversations": len(dataset.conversations), "examples": counts if fmt == "sft" else None})
        return
    what = (", ".join(f"{n} {k} examples" for k, n in counts.items()) if fmt == "sft"
            else f"{len(dataset.personas)} personas and {len(dataset.conversations)} conversations")
    shape = f"one {fmt} file, a row per conversation" if kind is not None and fmt != "messages" else fmt
    click.echo(f"wrote {what} to {dst} ({shape})")


def _check_file_target(dst: Path, kind: str, fmt: str | None) -> None:
    """Refuse a DST file name that --to or an existing folder contradicts, saying which to change."""
    from tidekit.errors import ConfigError

    if dst.is_dir():
        raise ConfigError(f"{dst} is a folder, but a name ending in {dst.suffix} means one {kind} file here; "
                          f"remove or rename the folder, or give a DST without the {dst.suffix} suffix for a folder")
    if fmt not in (None, kind) and not (fmt == "messages" and kind == "jsonl"):
        raise ConfigError(f"{dst} names one .{kind} file, but --to {fmt} writes a folder; give a DST without a "
                          f".jsonl, .parquet or .csv suffix for the {fmt} folder, or leave out --to for one "
                          f"{kind} file")


def _write_file(dataset: Dataset, dst: Path, fmt: str, system_prompt: str | None) -> None:
    """Write the one-file table (or, for messages, the chat file) at ``dst``."""
    import os
    import tempfile

    from tidekit.data import MESSAGES_FILE, write_messages, write_table

    if fmt != "messages":
        write_table(dataset, dst)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".messages-", dir=dst.parent) as tmp:
        write_messages(dataset, tmp, system_prompt)
        os.replace(Path(tmp) / MESSAGES_FILE, dst)


def _folder_format(fmt: str) -> str:
    """The folder layout to write for a source layout (a one-file table's is jsonl)."""
    return "jsonl" if fmt == "table" else fmt


def _system_role(model: str) -> bool:
    """Whether ``model``'s chat template takes a system message: the rule 'tidekit finetune' applies."""
    from tidekit.backends import MODELS

    spec = MODELS.get(model)
    if spec is not None:
        return spec.system_role
    from tidekit.finetuning._train import _load_tokenizer

    return bool(_load_tokenizer(model)[2])


@data.command("split", **example("tidekit data split path/to/TIDE --out runs/split --seed 7",
                                 "tidekit data split data/ --out split/ --ratios 0.7,0.15,0.15 --to parquet",
                                 "tidekit data split path/to/TIDE --out runs/split --stratify-by gender --to hf"))
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same split).")
@click.option("--ratios", default=",".join(map(str, DEFAULT_RATIOS)), show_default=True, help="train,validation,test fractions.")
@click.option("--stratify-by", default="auto", show_default=True,
              help="Persona field to stratify on; 'auto' uses trauma_type when present, 'none' disables. "
                   "A field no persona has is an error that lists the fields there are.")
@click.option("--to", "fmt", type=click.Choice(FORMATS), default=None,
              help="Layout to write [default: the input's].")
@json_option("{out, format, seed, stratify_by, personas: {split: n}, conversations: {split: n}}")
def split_cmd(path: Path, out: Path, seed: int, ratios: str, stratify_by: str, fmt: str | None,
              as_json: bool) -> None:
    """Split a dataset by persona (no persona in two splits), stratified and reproducible.

    Writes the dataset with each conversation's 'split' field set, and splits.json listing the
    persona ids of each split.
    """
    from tidekit._manifest import RunRecorder

    stratify = None if stratify_by.lower() == "none" else stratify_by
    fmt = fmt or _folder_format(detect_format(path))
    config = {"seed": seed, "ratios": ratios, "stratify_by": stratify_by, "to": fmt}
    with RunRecorder(out, command="data split", config=config, seed=seed, inputs={"data": str(path)}) as run:
        with run.step("load"):
            dataset = load_dataset(path)
        with run.step("split"):
            result = split_dataset(dataset, seed=seed, ratios=ratios, stratify_by=stratify)
        with run.step("write"):
            save_split(result, out, fmt)  # type: ignore[arg-type]
        run.counts.update({f"{k}_conversations": v for k, v in result.conversations.items()})
        run.counts.update({f"{k}_personas": len(v) for k, v in result.personas.items()})
        run.extra["stratify_by"] = result.stratify_by
    if as_json:
        echo_json({"out": str(out), "format": fmt, "seed": seed, "stratify_by": result.stratify_by,
                   "personas": {k: len(v) for k, v in result.personas.items()},
                   "conversations": dict(result.conversations)})
        return
    console = stdout_console()
    for name, ids in result.personas.items():
        console.print(f"{name}: {len(ids)} personas, {result.conversations[name]} conversations")
    empty = [k for k, v in result.personas.items() if not v]
    if empty:
        console.print(f"[yellow]warning: no personas in {', '.join(empty)}; the dataset is too small "
                      "for these ratios[/yellow]")
    console.print(f"wrote {out}")
    render_summary(summarize(result.dataset), title="Split dataset")


@data.command("sample", **example("tidekit data sample runs/sample", "tidekit data sample runs/sample --to jsonl"))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--to", "fmt", type=click.Choice(FORMATS), default="tide", show_default=True)
@json_option("{out, format}")
def sample_cmd(dst: Path, fmt: str, as_json: bool) -> None:
    """Copy the bundled synthetic sample (5 personas x 20 scenarios; not real people) to DST."""
    src = sample_path()
    if fmt == "tide":
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        save_dataset(load_dataset(src), dst, fmt)  # type: ignore[arg-type]
    if as_json:
        echo_json({"out": str(dst), "format": fmt})
        return
    click.echo(f"copied the synthetic sample to {dst} ({fmt})")


COMMANDS = [data]
