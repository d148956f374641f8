"""The clinician review sheet (CSV) and importing its decisions back into a built dataset.

``review.csv`` has one row per conversation: the texts, the scenario and its risk level, the
gate status and reasons, and empty columns for the reviewer (``decision``: accept, reject or
edit; ``edited_client_message``, ``edited_reference``, ``reviewer``, ``notes``). It opens in
any spreadsheet. :func:`apply_review` reads it back, checks every row (all problems at once),
and rewrites the dataset: rejected conversations are removed, edited texts replaced, and each
decision recorded in the conversation's provenance.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pydantic import BaseModel, Field

from tidekit._io import write_json, write_text
from tidekit._manifest import RunRecorder, read_manifest
from tidekit.builder._card import DatasetCard, now, render_card
from tidekit.data import Dataset, Problems, Turn, detect_format, load_dataset, save_dataset
from tidekit.errors import DataError

__all__ = ["DECISIONS", "REVIEW_COLUMNS", "ReviewResult", "apply_review", "clear_tide", "review_sheet"]

REVIEW_COLUMNS = ["conversation_id", "persona_id", "scenario_id", "risk_level", "empathy_factor", "gates",
                  "gate_reasons", "client_message", "reference", "decision", "edited_client_message",
                  "edited_reference", "reviewer", "notes"]
DECISIONS = ("accept", "reject", "edit")


class ReviewResult(BaseModel):
    """What importing a review changed."""

    out: str = Field(description="Folder the reviewed dataset was written to.")
    accepted: int = Field(default=0, description="Conversations marked accepted.")
    edited: int = Field(default=0, description="Conversations with edited text.")
    rejected: int = Field(default=0, description="Conversations removed.")
    undecided: int = Field(default=0, description="Rows without a decision (kept unchanged).")
    personas_removed: int = Field(default=0, description="Personas left without conversations, removed.")


def review_sheet(dataset: Dataset) -> str:
    """The review sheet as CSV text (flagged conversations are listed first)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    convs = sorted(dataset.conversations,
                   key=lambda c: (str((c.provenance.model_extra or {}).get("gates")) != "flagged",))
    for c in convs:
        prov = c.provenance.model_extra or {}
        reasons = sorted({code for flag in prov.get("gate_flags", []) for code in flag.get("codes", [])})
        writer.writerow({
            "conversation_id": c.id, "persona_id": c.persona_id, "scenario_id": c.scenario_id,
            "risk_level": c.extra.get("risk_level", ""), "empathy_factor": c.extra.get("empathy_factor", ""),
            "gates": prov.get("gates", ""), "gate_reasons": " ".join(reasons),
            "client_message": c.client_text, "reference": c.reference or "", "decision": "",
            "edited_client_message": "", "edited_reference": "", "reviewer": "", "notes": "",
        })
    return buf.getvalue()


def _dataset_folder(build_dir: Path) -> tuple[Path, list[str]]:
    """The folder to read the built dataset from, and the formats to write back."""
    formats: list[str] = []
    manifest = build_dir / "manifest.json"
    if manifest.is_file():
        formats = list(read_manifest(manifest).config.get("formats", []))
    formats = formats or [f for f in ("tide", "jsonl", "parquet") if (build_dir / f).is_dir()]
    for fmt in ("jsonl", "parquet", "tide"):
        if (build_dir / fmt).is_dir():
            return build_dir / fmt, formats
    if build_dir.is_dir():
        fmt = detect_format(build_dir)
        return build_dir, [fmt]
    raise DataError(f"{build_dir}: not a build folder; give the folder 'tidekit build' wrote (it holds jsonl/, "
                    "tide/ or parquet/)")


def apply_review(build_dir: str | Path, sheet: str | Path, out: str | Path | None = None) -> ReviewResult:
    """Apply a filled-in review sheet to the dataset built in ``build_dir``.

    Writes the reviewed dataset to ``out`` (default: ``build_dir`` itself, in every layout it
    holds) and, in ``out/review/``, a summary and a manifest. DataError lists every bad row.
    """
    build_dir, sheet = Path(build_dir), Path(sheet)
    out = Path(out) if out is not None else build_dir
    source, formats = _dataset_folder(build_dir)
    if not sheet.is_file():
        raise DataError(f"review sheet not found: {sheet}")
    dataset = load_dataset(source)
    problems = Problems()
    with sheet.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("conversation_id", "decision") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{sheet}: missing column(s) {', '.join(missing)}; fill in the review.csv that "
                            "'tidekit build' wrote")
        rows = list(reader)
    by_id = {c.id: c for c in dataset.conversations}
    decisions: dict[str, dict[str, str]] = {}
    for i, row in enumerate(rows, start=2):
        cid = (row.get("conversation_id") or "").strip()
        decision = (row.get("decision") or "").strip().lower()
        where = f"row {i}"
        if cid not in by_id:
            problems.add(sheet, f"unknown conversation id {cid!r}", where=where, field="conversation_id")
            continue
        if cid in decisions:
            problems.add(sheet, f"conversation {cid!r} appears twice", where=where, field="conversation_id")
            continue
        if decision and decision not in DECISIONS:
            problems.add(sheet, f"decision {decision!r} is not one of {', '.join(DECISIONS)}", where=where,
                         field="decision", hint="write accept, reject or edit (or leave it empty)")
            continue
        if decision == "edit" and not ((row.get("edited_client_message") or "").strip()
                                       or (row.get("edited_reference") or "").strip()):
            problems.add(sheet, "decision is 'edit' but no edited text is given", where=where, field="decision",
                         hint="fill edited_client_message and/or edited_reference")
            continue
        decisions[cid] = {**{k: (v or "") for k, v in row.items() if k}, "decision": decision}
    problems.raise_if_errors(sheet)
    result = ReviewResult(out=str(out))
    kept = []
    for c in dataset.conversations:
        picked = decisions.get(c.id)
        decision = picked["decision"] if picked else ""
        if decision == "reject":
            result.rejected += 1
            continue
        if decision:
            picked = picked or {}
            review = {"decision": decision, "reviewer": picked.get("reviewer", ""),
                      "notes": picked.get("notes", ""), "imported": now()}
            if decision == "edit":
                new_client = picked.get("edited_client_message", "").strip()
                new_ref = picked.get("edited_reference", "").strip()
                if new_client:
                    c.turns[-1] = Turn(role="client", text=new_client)
                if new_ref:
                    c.reference = new_ref
                result.edited += 1
            else:
                result.accepted += 1
            setattr(c.provenance, "review", review)  # noqa: B010 - Provenance allows extra keys
        else:
            result.undecided += 1
        kept.append(c)
    with_conv = {c.persona_id for c in kept}
    personas = [p for p in dataset.personas if p.id in with_conv]
    result.personas_removed = len(dataset.personas) - len(personas)
    reviewed = Dataset(personas=personas, conversations=kept, source=str(out))
    with RunRecorder(out / "review", command="build import-review",
                     inputs={"build": str(build_dir), "sheet": str(sheet)}) as run:
        with run.step("write"):
            for fmt in formats:
                target = out / fmt if source != build_dir else out
                if fmt == "tide" and target.is_dir():
                    clear_tide(target)
                save_dataset(reviewed, target, fmt)  # type: ignore[arg-type]
            write_json(out / "review" / "summary.json", result.model_dump(mode="json"))
            card_path = build_dir / "card.json"
            if card_path.is_file():
                card = DatasetCard.model_validate_json(card_path.read_text(encoding="utf-8"))
                card.review = {**result.model_dump(exclude={"out"}), "imported": now()}
                card.counts["conversations"] = len(kept)
                card.counts["personas"] = len(personas)
                write_text(out / "card.json", card.model_dump_json(indent=2) + "\n")
                write_text(out / "DATASET_CARD.md", render_card(card))
        run.counts.update(result.model_dump(exclude={"out"}))
    return result


def clear_tide(folder: Path) -> None:
    """Remove TIDE files of personas that no longer exist (the writer only adds files)."""
    for sub in ("metadata", "conversations"):
        for path in (folder / sub).glob("*.json"):
            path.unlink()
