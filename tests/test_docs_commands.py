"""Every `tidekit ...` command in the README and the user docs runs as written.

Issue #32: `tidekit rate create --generations runs/quickstart/generations ...` (docs/rating.md,
step 1) failed on the folder a study writes. This test extracts the commands of README.md,
docs/rating.md, docs/study.md and docs/data.md:

- every command in a code block is parsed by the real CLI (each verb exists, each flag exists,
  values fit their types and choices, required options are there), after its placeholders are
  filled (``SRC``, ``PATH``, ``TIDE`` become the bundled sample; ``[--json]`` becomes ``--json``);
- and then run, in order, in a folder that holds a quickstart-shaped run folder
  (``runs/quickstart/split`` from the bundled sample, ``runs/quickstart/generations/`` one
  folder per system), except a whole study (``tidekit run`` without ``--dry-run``: ``make run``
  is that check; here it runs with ``--dry-run`` added), a server (``rate serve``: parsed only)
  and a Hub download (``hf://``: offline here);
- every command quoted inline (`` `tidekit rate release --with-ratings` ``) names a verb that
  exists and only flags it has; the README's inline commands that are whole run like the others.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/rating.md", "docs/study.md", "docs/data.md"]
# placeholders the docs use for a dataset to read: the bundled sample stands in
DATASET_PLACEHOLDERS = {"SRC", "PATH", "TIDE", "/path/to/TIDE", "path/to/TIDE"}


@dataclass
class DocCommand:
    doc: str
    line: int
    text: str  # as written (continuations joined, comment dropped)
    block: bool  # in a code block (a full command) or quoted inline in prose

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def extract(doc: str, text: str) -> list[DocCommand]:
    """The tidekit commands of a Markdown text: code-block lines and inline code spans."""
    out: list[DocCommand] = []
    lines = text.splitlines()
    in_block = False
    i = 0
    while i < len(lines):
        raw = lines[i]
        if raw.lstrip().startswith("```"):
            in_block = not in_block
            i += 1
            continue
        if in_block:
            start = i
            cmd = raw.strip()
            while cmd.endswith("\\") and i + 1 < len(lines):  # a continued line
                i += 1
                cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            cmd = re.sub(r"\s+#(?: .*)?$", "", cmd).strip()  # a trailing comment
            if cmd.startswith("tidekit "):
                out.append(DocCommand(doc, start + 1, cmd, True))
        else:
            for span in re.findall(r"`(tidekit [^`]+)`", raw):
                out.append(DocCommand(doc, i + 1, span.replace("\\|", "|"), False))
        i += 1
    return out


def documented_commands() -> list[DocCommand]:
    return [c for doc in DOCS for c in extract(doc, (ROOT / doc).read_text(encoding="utf-8"))]


def _cli() -> click.Group:
    from tidekit.cli import cli

    return cli


def resolve(tokens: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """(leaf command, its path, the arguments left) for ``tidekit`` ``tokens``."""
    cmd: click.Command = _cli()
    path: list[str] = []
    rest = list(tokens)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        name = rest[0]
        sub = cmd.commands.get(name)
        if sub is None:
            raise AssertionError(f"'tidekit {' '.join([*path, name])}' is no command; tidekit "
                                 f"{' '.join(path)} has {', '.join(sorted(cmd.commands))}")
        cmd, path, rest = sub, [*path, name], rest[1:]
    return cmd, path, rest


def fill(text: str) -> list[str]:
    """The arguments of a block command with its placeholders filled."""
    text = re.sub(r"\[(--[^\]]+)\]", r"\1", text)  # an optional flag shown in brackets: use it
    tokens = shlex.split(text)[1:]
    sample = str(_sample())
    return [sample if t in DATASET_PLACEHOLDERS else t for t in tokens]


def _sample() -> Path:
    from tidekit.data import sample_path

    return sample_path()


def check_parses(command: DocCommand) -> list[str]:
    """Problems with a documented command (empty when the CLI takes it as written)."""
    try:
        if command.block:
            args = fill(command.text)
            cmd, path, rest = resolve(args)
            cmd.make_context(" ".join(["tidekit", *path]), rest)
        else:
            # prose names a command and some of its flags: `tidekit models|generate|serve`
            tokens = shlex.split(command.text)[1:]
            paths = [[]] if not tokens else [[alt] for alt in tokens[0].split("|")]
            for head in paths:
                words = head + [t for t in tokens[1:] if not t.startswith("-") and "|" not in t][:1]
                try:
                    cmd, path, _ = resolve(words)
                except AssertionError:
                    cmd, path, _ = resolve(head)
                known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
                for flag in (t.split("=")[0] for t in tokens if t.startswith("--")):
                    if flag not in known:
                        return [f"tidekit {' '.join(path)} has no option {flag}"]
    except (click.ClickException, AssertionError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        return [message]
    return []


def test_the_docs_name_the_commands_this_test_runs() -> None:
    commands = documented_commands()
    block = [c for c in commands if c.block]
    assert len(block) >= 20 and len(commands) > len(block)
    assert any("--generations runs/quickstart/generations" in c.text for c in block)  # issue #32's command
    assert {c.doc for c in block} == set(DOCS) - {"README.md"}  # the README quotes its commands inline


@pytest.mark.parametrize("command", documented_commands(), ids=str)
def test_every_documented_command_parses_as_written(command: DocCommand) -> None:
    assert check_parses(command) == [], str(command)


@pytest.mark.parametrize(("line", "said"), [
    ("tidekit data convert SRC DST --too parquet", "No such option"),
    ("tidekit data convert SRC DST --to parket", "is not one of"),
    ("tidekit rate create --dataset runs/x --db runs/r.db --generation runs/g", "No such option"),
    ("tidekit rate status", "Missing option"),
    ("tidekit date validate PATH", "is no command"),
])
def test_a_renamed_flag_or_verb_fails_the_check(line: str, said: str) -> None:
    problems = check_parses(DocCommand("docs/x.md", 1, line, True))
    assert problems and said in problems[0], problems
    inline = check_parses(DocCommand("docs/x.md", 1, "tidekit rate release --idle-minutes 30", False))
    assert inline == ["tidekit rate release has no option --idle-minutes"]


# --- running them ---------------------------------------------------------------------------------


def runnable_commands() -> list[DocCommand]:
    """The code-block commands, and the README's inline ones that are whole commands."""
    out = []
    for command in documented_commands():
        if not command.block and command.doc == "README.md":
            whole = DocCommand(command.doc, command.line, command.text, True)
            if not check_parses(whole):
                out.append(whole)
        elif command.block:
            out.append(command)
    return out


def _skip_reason(command: DocCommand, args: list[str]) -> str | None:
    if any(a.startswith("hf:") for a in args):
        return "downloads from the Hugging Face Hub"
    if args[:2] == ["rate", "serve"]:
        return "starts a server (tests/rating/test_browser.py serves one)"
    return None


def _run_folder(root: Path) -> None:
    """A quickstart-shaped run folder: the split and one generations folder per system."""
    from tidekit._layout import RunLayout
    from tidekit.data import (
        GenerationRecord,
        load_dataset,
        save_split,
        split_dataset,
        write_generations,
    )

    layout = RunLayout(root / "runs" / "quickstart")
    result = split_dataset(load_dataset(_sample()), seed=0, ratios=(0.6, 0.2, 0.2))  # 5 personas: one in test
    save_split(result, layout.split)
    save_split(result, root / "runs" / "split")  # docs/data.md's sft example reads runs/split
    test = [c for c in result.dataset.conversations if c.split == "test"]
    for cond in ("zero_shot", "fine_tuned"):
        write_generations(layout.generations("smollm2-135m", cond), [
            GenerationRecord(conversation_id=c.id, system=f"smollm2-135m:{cond}", model="smollm2-135m",
                             condition=cond, output=f"That sounds so hard, and it makes sense you feel this ({cond}).")
            for c in test])
    for name in ("configs", "src"):
        (root / name).symlink_to(ROOT / name)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    _run_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_the_documented_commands_run_on_the_sample_and_a_quickstart_run_folder(
        workdir: Path, run_cli: Callable[..., Any]) -> None:
    ran, skipped, failed = [], [], []
    for command in runnable_commands():
        args = fill(command.text)
        reason = _skip_reason(command, args)
        if reason:
            skipped.append((str(command), reason))
            continue
        if args[0] == "run" and "--dry-run" not in args:  # a whole study: plan it, do not run it
            args = [a if a != "STUDY.yaml" else "configs/quickstart.yaml" for a in args] + ["--dry-run"]
        result = run_cli(*args)
        ran.append(str(command))
        if result.code != 0:
            failed.append(f"{command}\n    exit {result.code}: {(result.err or result.out).strip()[-400:]}")
    print("ran:", *ran, "skipped:", *skipped, sep="\n  ")
    assert failed == [], "\n".join(failed)
    assert len(ran) >= 15, ran
    assert {reason for _, reason in skipped} <= {"downloads from the Hugging Face Hub",
                                                "starts a server (tests/rating/test_browser.py serves one)"}
    # what the rating commands made is there: the database, its export
    assert (workdir / "runs" / "quickstart" / "ratings.db").is_file()
    assert (workdir / "runs" / "quickstart" / "ratings" / "ratings.parquet").is_file()
