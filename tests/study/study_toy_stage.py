"""A toy stage, the way a new stage is added to tidekit: this one module (its config, its verb of
the stage shape, its typed facts and its spec) plus one line in the list of stages.

It counts the words of every system's replies and writes ``wordcount.json``."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from tidekit._config import StrictModel
from tidekit._io import write_json
from tidekit.study import StageFacts, StageJob, StageSpec, StudyView


class WordCountConfig(StrictModel):
    generations: list[str]


class WordCountResult(BaseModel):
    out: str
    words: dict[str, int]


class WordCountFacts(StageFacts):
    systems: int
    words: int


def count_words(config: WordCountConfig, *, out: str | Path) -> WordCountResult:
    """The verb: words per system over the generations' outputs."""
    words: dict[str, int] = {}
    for folder in config.generations:
        for line in (Path(folder) / "generations.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            words[record["system"]] = words.get(record["system"], 0) + len((record["output"] or "").split())
    write_json(Path(out) / "wordcount.json", words)
    return WordCountResult(out=str(out), words=words)


def _jobs(view: StudyView) -> list[StageJob]:
    generations = [str(job.out) for job in view.jobs("generate")]
    return [StageJob(WordCountConfig(generations=generations), view.layout.root / "wordcount", {"toy": 1})]


WORDCOUNT_STAGE = StageSpec(name="wordcount", jobs=_jobs, verb=count_words, deps=("generate",),
                            facts=lambda r: WordCountFacts(systems=len(r.words), words=sum(r.words.values())))
