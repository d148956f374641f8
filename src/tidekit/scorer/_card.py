"""The model card of a learned scorer (``card.md`` in its folder): what it is, how well it agrees
with people on pairs it never saw, what it is for and what it is not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tidekit._io import write_text
from tidekit.metrics import ScorerMeta

if TYPE_CHECKING:
    from tidekit.scorer._config import ScorerTrainConfig
    from tidekit.scorer._train import LabelAgreement

__all__ = ["write_card"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def card_text(meta: ScorerMeta, agreement: Sequence[LabelAgreement], warnings: Sequence[str],
              config: ScorerTrainConfig) -> str:
    """The card as Markdown."""
    lines = [
        f"# Learned empathy scorer `{meta.name}`",
        "",
        "A small encoder fine-tuned by tidekit (`tidekit scorer train`) to predict human labels of "
        "replies to a person's message. It is a research measurement tool. It is not therapy, it does "
        "not judge whether a reply is safe or clinically appropriate, and its scores are not a "
        "substitute for human ratings: validate it on your own labels before you rely on it.",
        "",
        "## What it was trained on",
        f"- Labels file: `{meta.labels_file}` (sha256 `{meta.labels_sha256}`)",
        f"- Pairs: {meta.n_train} distinct (context, reply) pairs after merging duplicates; "
        f"{meta.cv.get('n_groups', '?')} groups (by {meta.cv.get('group', 'context')})",
        f"- Base encoder: `{meta.base_encoder}`; top {meta.train_layers} block(s) trained; "
        f"{meta.max_length} tokens per pair ({meta.pair_order.replace(',', ' then ')}, cut longest-first)",
        f"- Fit: {config.epochs} epoch(s), batch {config.batch_size}, AdamW lr {config.learning_rate:g}, "
        f"weight decay {config.weight_decay:g}, seed {config.seed}",
        "",
        "| label | scale seen | mean | sd | n |",
        "|---|---|---|---|---|",
        *(f"| {s.name} | {s.low:g}-{s.high:g}{' (whole numbers)' if s.integer else ''} | {s.mean:.3f} | "
          f"{s.sd:.3f} | {s.n} |" for s in meta.labels),
        "",
        "## Agreement with people on pairs it did not see",
    ]
    if agreement:
        lines += [
            f"Out-of-fold predictions from {meta.cv.get('folds')}-fold cross-validation with folds that keep each "
            f"group whole (no {meta.cv.get('group', 'context')} in two folds), against the held-out labels; "
            f"95% percentile bootstrap intervals over pairs ({config.n_resamples} resamples). The final model "
            "is fitted on every pair with the same settings.",
            "",
            "| label | n | Spearman [95% CI] | Kendall tau-b [95% CI] |",
            "|---|---|---|---|",
        ]
        for a in agreement:
            if a.spearman is None:
                lines.append(f"| {a.label} | {a.n} | undefined: {a.undefined_reason} | - |")
            else:
                lines.append(f"| {a.label} | {a.n} | {_fmt(a.spearman)} [{_fmt(a.ci_low)}, {_fmt(a.ci_high)}] | "
                             f"{_fmt(a.kendall)} [{_fmt(a.kendall_ci_low)}, {_fmt(a.kendall_ci_high)}] |")
        lines += ["", "`calibration.png`: out-of-fold predictions against the mean human label per prediction "
                      "quintile; `cv_predictions.csv`: every out-of-fold prediction beside its label."]
    else:
        lines.append("Not cross-validated (folds=0): nothing here says how well it agrees with people.")
    if warnings:
        lines += ["", "## Warnings about the labels", *(f"- {w}" for w in warnings)]
    lines += [
        "",
        "## Intended use",
        "- Scoring many generated replies offline where a hosted judge cannot be used (consent, IRB or "
        "data-protection rules), as one automatic measure beside human ratings.",
        "- A predictor for prediction-powered estimates, which correct its bias with human ratings.",
        "",
        "## Limits",
        "- It predicts what the labels it was trained on measured, on text like that text. Its agreement "
        "on other populations, platforms, languages or scales is unknown until measured.",
        "- Predictions are clipped to the range seen in training and read the first "
        f"{meta.max_length} tokens of a pair; longer texts are cut.",
        "- It can reward surface forms (questions, 'I'm sorry') that people label as empathic without "
        "telling whether the reply is accurate, kind in context or safe. Crisis content (suicidal "
        "ideation, self-harm, abuse) needs tidekit's safety checks and human review, not this score.",
        "- If the labels file carries a licence (EPITOME's is academic, non-commercial), the trained "
        "weights are derived from it: share them only as that licence allows.",
    ]
    return "\n".join(lines) + "\n"


def write_card(out: Path, meta: ScorerMeta, agreement: Sequence[LabelAgreement], warnings: Sequence[str],
               config: ScorerTrainConfig) -> None:
    write_text(out / "card.md", card_text(meta, agreement, warnings, config))
