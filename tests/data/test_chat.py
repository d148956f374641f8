"""Chat formats: messages JSONL both ways; SFT JSONL is what 'tidekit finetune' trains on, and trains in TRL."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tidekit.data import Conversation, Dataset, Persona, Problems, Turn, load_dataset, save_dataset
from tidekit.data._chat import read_messages
from tidekit.errors import DataError

SHORT_PROMPT = "You are a warm, trauma-informed listener. Reply supportively in a few sentences."


def _records(ds: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [p.model_dump() for p in ds.personas], [c.model_dump() for c in ds.conversations]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_convert_to_messages_80_lines_user_then_assistant_and_back(
        release_dir: Path, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    result = run_cli("data", "convert", release_dir, tmp_path / "m", "--to", "messages")
    assert result.code == 0, result.err
    rows = _lines(tmp_path / "m" / "messages.jsonl")
    assert len(rows) == 80
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    first = rows[0]
    assert (first["conversation_id"], first["persona_id"], first["age"], first["gender"]) == \
        ("1-conversation_1", "1", 34, "female")
    assert "😔" in rows[-1]["messages"][0]["content"]  # unicode written as is
    assert "😔" in (tmp_path / "m" / "messages.jsonl").read_text(encoding="utf-8")
    # the file and its folder read back to the same dataset, which is valid
    assert run_cli("data", "validate", tmp_path / "m" / "messages.jsonl").code == 0
    assert _records(load_dataset(tmp_path / "m")) == _records(load_dataset(release_dir))
    # with a system prompt it comes first, and reading drops it
    assert run_cli("data", "convert", release_dir, tmp_path / "s", "--to", "messages",
                   "--system-prompt", SHORT_PROMPT).code == 0
    rows = _lines(tmp_path / "s" / "messages.jsonl")
    assert rows[0]["messages"][0] == {"role": "system", "content": SHORT_PROMPT}
    assert _records(load_dataset(tmp_path / "s")) == _records(load_dataset(release_dir))


def test_multi_turn_and_reference_free_conversations_round_trip(tmp_path: Path) -> None:
    ds = Dataset(personas=[Persona(id="p", age=30, attributes={"k": {"nested": [1, 2]}})], conversations=[
        Conversation(id="p-1", persona_id="p", scenario_id="s", split="train", reference="last",
                     turns=[Turn(role="client", text="a"), Turn(role="supporter", text="b"),
                            Turn(role="client", text="c")], extra={"rating": 5}),
        Conversation(id="p-2", persona_id="p", scenario_id="s", turns=[Turn(role="client", text="only")]),
    ])
    save_dataset(ds, tmp_path, "messages")
    rows = _lines(tmp_path / "messages.jsonl")
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [m["role"] for m in rows[1]["messages"]] == ["user"]
    assert _records(load_dataset(tmp_path)) == _records(ds)


def test_a_plain_chat_file_without_ids_loads_with_warnings(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                     {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                            for i in range(3)))
    problems = Problems()
    ds = read_messages(path, problems)
    assert [c.id for c in ds.conversations] == ["00001", "00002", "00003"] and len(ds.personas) == 3
    assert not problems.errors and {w.field for w in problems.warnings} == {"persona_id", "scenario_id"}


@pytest.mark.parametrize(("line", "needle"), [
    ({"messages": [{"role": "narrator", "content": "x"}]}, "line 1, messages[0] [role]: unknown role 'narrator'"),
    ({"messages": []}, "line 1 [messages]: messages must be a non-empty list"),
    ({"messages": [{"role": "user", "content": "x"}], "persona_attributes": "{bad"}, "[persona_attributes]"),
], ids=["role", "empty", "bad-json"])
def test_bad_messages_lines_name_the_line_and_field(tmp_path: Path, line: dict[str, Any], needle: str,
                                                    run_cli: Callable[..., Any]) -> None:
    (tmp_path / "messages.jsonl").write_text(json.dumps(line) + "\n")
    result = run_cli("data", "validate", tmp_path)
    assert result.code == 1
    assert needle in " ".join(result.out.split())


def test_persona_fields_must_agree_across_a_persona_s_lines(tmp_path: Path) -> None:
    lines = [{"messages": [{"role": "user", "content": "x"}], "conversation_id": str(i), "persona_id": "p",
              "scenario_id": "s", "gender": g} for i, g in enumerate(["female", "male"])]
    (tmp_path / "messages.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError, match=r"line 2.*\[gender\].*persona 'p' has gender='male' here but 'female' "):
        load_dataset(tmp_path)


# --- SFT ---------------------------------------------------------------------------------------------


def _finetune_examples(data: Path, out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training and validation examples 'tidekit finetune' builds for ``data`` (its own code)."""
    from tidekit.finetuning import FinetuneConfig
    from tidekit.finetuning._train import _examples, _load_conversations

    cfg = FinetuneConfig.model_validate({"model": "smollm2-135m", "out": str(out), "eval": {"max_examples": None},
                                         "data": {"path": str(data), "system_prompt": SHORT_PROMPT}})
    train, evals = _load_conversations(cfg, SimpleNamespace(extra={}))  # type: ignore[arg-type]
    from tidekit.backends import MODELS

    train_examples, eval_examples, _ = _examples(cfg, train, evals, MODELS["smollm2-135m"].system_role)
    return train_examples, eval_examples


def test_sft_files_hold_exactly_what_finetune_trains_on(release_dir: Path, tmp_path: Path,
                                                        run_cli: Callable[..., Any]) -> None:
    out = tmp_path / "sft"
    result = run_cli("data", "convert", release_dir, out, "--to", "sft", "--model", "smollm2-135m",
                     "--system-prompt", SHORT_PROMPT)
    assert result.code == 0, result.err
    train, evals = _finetune_examples(release_dir, tmp_path / "ft")
    assert len(train) > 0 and len(evals) > 0
    assert _lines(out / "train.jsonl") == train
    assert _lines(out / "validation.jsonl") == evals
    first = _lines(out / "train.jsonl")[0]
    assert [m["role"] for m in first["prompt"]] == ["system", "user"] and first["completion"][0]["role"] == "assistant"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train_examples"] == len(train)
    with pytest.raises(DataError, match="SFT training examples"):  # write-only, and says so
        load_dataset(out)
    # already split data keeps its split; a template without a system role folds the prompt
    save_dataset(load_dataset(release_dir), tmp_path / "plain", "jsonl")
    assert run_cli("data", "convert", tmp_path / "plain", tmp_path / "g", "--to", "sft", "--model", "gemma-2-2b",
                   "--targets", "reference_only").code == 0
    folded = _lines(tmp_path / "g" / "train.jsonl")[0]["prompt"]
    assert [m["role"] for m in folded] == ["user"] and folded[0]["content"].startswith("You are")


@pytest.mark.slow
def test_sft_file_trains_with_trl_sft_trainer_unchanged(release_dir: Path, tmp_path: Path,
                                                       run_cli: Callable[..., Any]) -> None:
    """The file as written, loaded with datasets' json loader, trains SmolLM2-135M for a few steps."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tidekit.backends import resolve_model_path

    assert run_cli("data", "convert", release_dir, tmp_path / "sft", "--to", "sft", "--model", "smollm2-135m",
                   "--system-prompt", SHORT_PROMPT).code == 0
    train = datasets.load_dataset("json", data_files=str(tmp_path / "sft" / "train.jsonl"), split="train",
                                  cache_dir=str(tmp_path / "cache"))
    path = str(resolve_model_path("smollm2-135m"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    # kept short on a CPU: a small LoRA adapter (as tidekit finetune trains), two steps of one example
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=1,
                     max_length=256, learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to="none",
                     use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0, gradient_checkpointing=False)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer, peft_config=lora)
    # the loss is on the reply only: TRL masked the prompt (what tidekit finetune relies on)
    row = trainer.train_dataset[0]
    labels = row["labels"] if "labels" in row else [
        t if m else -100 for t, m in zip(row["input_ids"], row["completion_mask"], strict=True)]
    masked = sum(1 for t in labels if t == -100)
    assert 0 < masked < len(row["input_ids"]) and labels[0] == -100
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_split_names_are_normalised_and_generation_records_are_not_chats(tmp_path: Path) -> None:
    from tidekit.data import detect_format

    line = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
            "conversation_id": "c", "persona_id": "p", "scenario_id": "s", "split": "Training"}
    (tmp_path / "messages.jsonl").write_text(json.dumps(line) + "\n")
    (conv,) = load_dataset(tmp_path).conversations
    assert conv.split == "train"
    gen = tmp_path / "g" / "generations.jsonl"
    gen.parent.mkdir()
    gen.write_text(json.dumps({**line, "output": "z", "cache_key": "k"}) + "\n")
    with pytest.raises(DataError, match="a dataset is a folder"):
        detect_format(gen)
