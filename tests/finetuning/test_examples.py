"""Conversations become prompt-completion examples: one per supporter reply, prompts as at generation."""

from __future__ import annotations

from pathlib import Path

from tidekit.data import Conversation, Turn
from tidekit.finetuning import build_examples, default_system_prompt
from tidekit.finetuning._metrics import make_metrics_logger, read_metrics
from tidekit.finetuning._train import _differences


def _dialogue() -> Conversation:
    return Conversation(id="p1-01", persona_id="p1", scenario_id="s", reference="final reply",
                        turns=[Turn(role="client", text="first"), Turn(role="supporter", text="earlier reply"),
                               Turn(role="client", text="second")])


def test_every_supporter_turn_is_a_target_with_the_dialogue_before_it() -> None:
    examples = build_examples([_dialogue()], "SYS")
    assert [e["completion"] for e in examples] == [[{"role": "assistant", "content": "earlier reply"}],
                                                   [{"role": "assistant", "content": "final reply"}]]
    assert examples[0]["prompt"] == [{"role": "system", "content": "SYS"}, {"role": "user", "content": "first"}]
    assert examples[1]["prompt"][-2:] == [{"role": "assistant", "content": "earlier reply"},
                                          {"role": "user", "content": "second"}]
    assert [e["turn"] for e in examples] == [1, 3]
    only = build_examples([_dialogue()], "SYS", targets="reference_only")
    assert len(only) == 1 and only[0]["completion"][0]["content"] == "final reply"


def test_prompt_matches_generation_and_folds_system_for_templates_without_it() -> None:
    from tidekit.generation import DEFAULT_SYSTEM_PROMPT

    assert default_system_prompt() == DEFAULT_SYSTEM_PROMPT  # trained on the prompt generation uses
    folded = build_examples([_dialogue()], "SYS", system_role=False)[1]["prompt"]
    assert folded[0] == {"role": "user", "content": "SYS\n\nfirst"}
    assert all(m["role"] != "system" for m in folded)


def test_resume_may_change_only_bookkeeping_settings() -> None:
    old = {"seed": 0, "train": {"learning_rate": 1e-3, "logging_steps": 1}, "eval": {"steps": 5}, "progress": True}
    new = {"seed": 0, "train": {"learning_rate": 2e-3, "logging_steps": 10}, "eval": {"steps": 50},
           "progress": False}
    assert _differences(old, new) == ["train.learning_rate"]


def test_metrics_log_drops_lines_past_the_resumed_checkpoint(tmp_path: Path) -> None:
    from types import SimpleNamespace

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"kind": "train", "step": {s}, "loss": 1.0}}\n' for s in range(1, 8)))
    logger = make_metrics_logger(path)
    state = SimpleNamespace(global_step=5, num_input_tokens_seen=500, epoch=0.5)
    logger.on_train_begin(None, state, None)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    logger.on_step_begin(None, state, None)
    state.global_step, state.num_input_tokens_seen = 6, 600
    logger.on_step_end(None, state, None)
    logger.on_log(None, state, None, logs={"loss": 0.9, "learning_rate": 1e-3, "num_input_tokens_seen": 600})
    logger.on_log(None, state, None, logs={"eval_loss": 0.8, "eval_runtime": 1.0})
    rows = read_metrics(path)
    assert rows[-2]["kind"] == "train" and rows[-2]["step"] == 6 and rows[-2]["tokens_seen"] == 600
    assert rows[-2]["tokens_per_s"] > 0
    assert rows[-1] == {**rows[-1], "kind": "eval", "step": 6, "eval_loss": 0.8}
