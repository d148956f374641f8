"""The model card (README.md) saved with every adapter and merged model.

It states what the weights are (base model, method, data, hyper-parameters, measured losses),
how to use them with tidekit and transformers, what they are for and not for, and their limits.
The front matter follows the Hugging Face model-card metadata keys.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_card"]

_USE = """\
## Intended use

Research on empathetic, trauma-informed dialogue with small language models: reproducing and
extending the TIDE study (zero-shot vs fine-tuned comparisons, metric and human evaluation).
**tidekit is research software, not therapy.** These weights are not a clinician, are not a
treatment, and must not be deployed to people in distress without clinical oversight, a
safety review and crisis escalation.

## Limits

- Trained to imitate reference replies written by a frontier model (TIDE: Claude 3.5 Sonnet)
  or by tidekit's synthetic sample; it inherits their style and their errors, and a low loss
  means closeness to those replies, not empathy as people perceive it.
- Small models can produce fluent but wrong, generic or unsafe replies. Crisis content
  (suicidal ideation, self-harm, abuse) needs evaluation of its own (`tidekit score` runs the
  safety checks) and human review.
- The training personas are synthetic; replies may not transfer to real people, cultures or
  languages other than those in the data.
- TIDE is CC BY-NC 4.0: an adapter trained on it is for non-commercial research.
"""


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def render_card(*, kind: str, base_model: str, base_source: str, config: dict[str, Any],
                facts: dict[str, Any]) -> str:
    """Markdown for an adapter (``kind='adapter'``) or merged model (``kind='merged'``)."""
    lora, train, data = config.get("lora", {}), config.get("train", {}), config.get("data", {})
    front = ["---", f"base_model: {base_model}", "library_name: " + ("peft" if kind == "adapter" else "transformers"),
             "pipeline_tag: text-generation", "tags: [tidekit, lora, sft, trauma-informed, research-only]", "---", ""]
    title = "LoRA adapter" if kind == "adapter" else "Merged model (base + LoRA adapter)"
    body = [f"# {title} for {base_model}, fine-tuned with tidekit", "",
            f"Supervised fine-tuning (LoRA{', QLoRA 4-bit' if train.get('quantization') == '4bit' else ''}) of "
            f"`{base_model}` (`{base_source}`) on supporter replies of a TIDE-layout dataset, with tidekit "
            f"{facts.get('tidekit_version', '')}. Loss is computed on the supporter (assistant) reply tokens only; "
            "prompts are the system prompt plus the conversation, in the model's own chat template.", ""]
    body += ["## Data", "",
             f"- dataset: `{data.get('path')}` (split `{data.get('train_split')}` for training, "
             f"`{data.get('eval_split')}` for validation loss)",
             f"- training examples: {facts.get('train_examples')} ({facts.get('train_conversations')} conversations, "
             f"{facts.get('truncated', 0)} replies cut at max_length); validation examples: "
             f"{facts.get('eval_examples')}",
             f"- system prompt: {'tidekit.generation default' if data.get('system_prompt') is None else 'custom'} "
             "(stored in manifest.json; generate with the same one: a custom prompt needs "
             "`system_prompt=...` on `tidekit generate`)", ""]
    body += ["## Hyper-parameters", "", _table([
        ("LoRA rank / alpha / dropout", f"{lora.get('rank')} / {lora.get('alpha')} / {lora.get('dropout')}"),
        ("target modules", lora.get("target_modules")),
        ("learning rate, schedule, warm-up", f"{train.get('learning_rate')}, {train.get('lr_scheduler')}, "
                                             f"{train.get('warmup_ratio')}"),
        ("steps (epochs)", f"{facts.get('steps')} ({facts.get('epochs')})"),
        ("batch x grad accumulation", f"{train.get('batch_size')} x {train.get('grad_accum')}"),
        ("max length, packing", f"{train.get('max_length')}, {train.get('packing')}"),
        ("precision, device", f"{facts.get('precision')}, {facts.get('device')}"),
        ("seed", config.get("seed")),
    ]), ""]
    body += ["## Metrics", "", _table([
        ("training loss, first / last logged", f"{_fmt(facts.get('first_train_loss'))} / "
                                                f"{_fmt(facts.get('last_train_loss'))}"),
        ("validation loss, before / after", f"{_fmt(facts.get('eval_loss_before'))} / "
                                             f"{_fmt(facts.get('eval_loss_after'))}"),
        ("training tokens / s", _fmt(facts.get("tokens_per_s"))),
        ("wall time (s)", _fmt(facts.get("train_s"))),
    ]), "", "Every logged value is in `metrics.jsonl`; the full configuration and environment in "
        "`manifest.json`.", ""]
    if kind == "adapter":
        body += ["## How to use", "", "```bash",
                 f"tidekit generate --data DATA --model {base_model} --adapter THIS_FOLDER --out runs/gen-ft",
                 "tidekit finetune merge THIS_FOLDER --out merged/   # full weights for transformers or vLLM",
                 "```", "", "```python", "from peft import AutoPeftModelForCausalLM",
                 'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER")', "```", ""]
    else:
        body += ["## How to use", "", "A plain transformers folder (no PEFT needed):", "", "```python",
                 "from transformers import AutoModelForCausalLM, AutoTokenizer",
                 'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")', "```", "",
                 f"Merged from the adapter `{facts.get('adapter')}`; saved in {facts.get('dtype')}.", ""]
    return "\n".join([*front, *body, ""]) + _USE


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
