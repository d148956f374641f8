"""Training a learned empathy scorer on human labels (``tidekit scorer train``).

Top to bottom: read and check the labels file; merge duplicated pairs; tokenize each (reply,
context) pair; run the frozen part of the encoder once per pair; cross-validate with folds that
keep each group (seeker post, persona, context) whole; fit on everything; write the scorer
folder (see :mod:`tidekit.metrics._learned` for its layout) with its model card.

What is trained: the top ``train_layers`` encoder blocks, mean pooling and a linear head with one
output per label, on labels standardised by their weighted mean and sd, with a weighted mean
squared error (a row's weight is its number of raters; a missing label adds nothing). The
embeddings and any block below ``train_layers`` stay frozen: with dropout off there they give a
pair the same output every epoch, so it is computed once and fed to the trained blocks (exact,
as the fine-tuning stage's frozen-block store is). AdamW with a linear warm-up over the first
tenth of the steps and a linear decay; gradient norm clipped at 1. Batches are fixed chunks of
length-sorted pairs, shuffled by chunk each epoch with the seed, so a rerun trains the same model.

Resumable: each finished fold's out-of-fold predictions are kept in ``OUT/.cv/`` under a key of
the labels file's hash and the config; a rerun of the same command skips finished folds, and a
finished scorer is not retrained.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tidekit._io import atomic_path, write_json
from tidekit._manifest import RunRecorder
from tidekit.backends import resolve_model_path, sha256_file
from tidekit.errors import ConfigError, DataError
from tidekit.metrics import (
    ENCODER_DIR,
    HEAD_FILE,
    META_FILE,
    Agreement,
    LabelRow,
    LabelScale,
    ScorerMeta,
    ScorerModel,
    correlate,
    encode_pairs,
    load_labels,
    pair_batches,
    read_meta,
)
from tidekit.scorer._config import ScorerTrainConfig

__all__ = ["ScorerTrainResult", "grouped_folds", "train_scorer"]

CV_DIR = ".cv"


class LabelAgreement(Agreement):
    """Cross-validated agreement of one label's predictions with the held-out human labels."""

    label: str


class ScorerTrainResult(BaseModel):
    """What a training run wrote and its figures."""

    out: str = Field(description="The scorer folder.")
    name: str = Field(description="The scorer's name (score columns scorer_<name>_<label>).")
    labels: list[str] = Field(description="The label columns learned.")
    n_rows: int = Field(description="Labelled pairs used (after merging duplicates).")
    n_groups: int = Field(description="Groups kept whole across folds.")
    folds: int = Field(description="Cross-validation folds (0: none).")
    cv: list[LabelAgreement] = Field(default_factory=list, description="Out-of-fold Spearman/Kendall per label.")
    warnings: list[str] = Field(default_factory=list, description="Named warnings about the labels.")
    skipped: bool = Field(default=False, description="The scorer was already trained with this config and data.")
    train_seconds: float = Field(default=0.0, description="Wall time of the run.")
    files: list[str] = Field(default_factory=list, description="Files written.")


# ---- the labels --------------------------------------------------------------------------------

def _merge_duplicates(rows: list[LabelRow], labels: Sequence[str]) -> tuple[list[LabelRow], list[str]]:
    """One row per distinct (context, response): labels averaged by weight; conflicts named."""
    merged: dict[tuple[str, str], list[LabelRow]] = {}
    for r in rows:
        merged.setdefault((r.context, r.response), []).append(r)
    out: list[LabelRow] = []
    conflicts: list[str] = []
    for same in merged.values():
        if len(same) == 1:
            out.append(same[0])
            continue
        human: dict[str, float | None] = {}
        for c in labels:
            pairs = [(float(v), r.weight) for r in same if (v := r.human[c]) is not None]
            values = {v for v, _ in pairs}
            if len(values) > 1:
                conflicts.append(f"{'/'.join(r.id for r in same)} ({c}: {', '.join(f'{v:g}' for v in sorted(values))})")
            total = sum(w for _, w in pairs)
            human[c] = sum(v * w for v, w in pairs) / total if pairs else None
        out.append(same[0].model_copy(update={"human": human, "weight": sum(r.weight for r in same)}))
    warnings = []
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        warnings.append(f"conflicting duplicates: {len(conflicts)} duplicated (context, response) pair(s) carry "
                        f"different labels and were averaged by weight: {shown}")
    if len(out) < len(rows):
        warnings.append(f"duplicates merged: {len(rows)} rows hold {len(out)} distinct (context, response) pairs")
    return out, warnings


def _check_labels(rows: list[LabelRow], labels: Sequence[str], path: str, min_rows: int) -> None:
    if len(rows) < min_rows:
        raise DataError(f"{path}: only {len(rows)} labelled pair(s); a scorer needs at least {min_rows} "
                        "(min_rows) to learn from and to cross-validate")
    for c in labels:
        values = [r.human[c] for r in rows if r.human[c] is not None]
        if len(values) < min_rows:
            raise DataError(f"{path}: label column {c!r} has only {len(values)} non-empty value(s); at least "
                            f"{min_rows} are needed")
        if len(set(values)) < 2:
            raise DataError(f"{path}: label column {c!r} holds one value only ({values[0]:g} on every row); "
                            "there is nothing to learn: check the column, or leave it out")


def _scales(rows: list[LabelRow], labels: Sequence[str]) -> list[LabelScale]:
    scales = []
    for c in labels:
        pairs = [(float(r.human[c]), r.weight) for r in rows if r.human[c] is not None]  # type: ignore[arg-type]
        total = sum(w for _, w in pairs)
        mean = sum(v * w for v, w in pairs) / total
        sd = math.sqrt(sum(w * (v - mean) ** 2 for v, w in pairs) / total) or 1.0
        values = [v for v, _ in pairs]
        scales.append(LabelScale(name=c, mean=mean, sd=sd, low=min(values), high=max(values),
                                 integer=all(float(v).is_integer() for v in values), n=len(pairs)))
    return scales


def grouped_folds(groups: Sequence[str], k: int, seed: int) -> list[int]:
    """A fold index per row: groups shuffled with ``seed`` and dealt largest first to the emptiest fold,
    so no group is in two folds and the folds are near equal in rows."""
    import numpy as np

    distinct = sorted(set(groups))
    if k > len(distinct):
        raise ConfigError(f"folds={k} but the labels hold only {len(distinct)} group(s); use folds <= "
                          f"{len(distinct)} (or folds=0 for no cross-validation)")
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    order = [distinct[i] for i in np.random.default_rng(seed).permutation(len(distinct))]
    order.sort(key=lambda g: -sizes[g])  # stable: equal sizes keep the seeded order
    load = [0] * k
    fold_of: dict[str, int] = {}
    for g in order:
        f = min(range(k), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += sizes[g]
    return [fold_of[g] for g in groups]


# ---- one fit -----------------------------------------------------------------------------------

def _device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={requested!r} but no CUDA device is visible; use device=cpu or auto")
    return requested


class _Frozen:
    """The frozen part's output for every pair, padded per fixed batch of length-sorted rows."""

    def __init__(self, model: ScorerModel, tokenizer: Any, encoded: dict[str, list[list[int]]], start: int,
                 device: str, dtype: Any, progress: bool) -> None:
        import numpy as np
        import torch
        from tqdm.auto import tqdm

        self.start = start
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        self.order = np.argsort(lengths, kind="stable")
        self.hidden: dict[int, Any] = {}
        model.encoder.eval()
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            for rows, batch in tqdm(list(pair_batches(tokenizer, encoded, self.order.tolist(), 64)),
                                    desc="frozen blocks", unit="batch", disable=not progress):
                batch = {k: v.to(device) for k, v in batch.items()}
                hidden = model.hidden_at(batch, start).float()
                for j, i in enumerate(rows):
                    self.hidden[i] = hidden[j, :lengths[i]].clone()
        self.lengths = lengths

    def batches(self, rows: Sequence[int], batch_size: int) -> list[tuple[list[int], Any, Any]]:
        """Fixed batches of ``rows``, length-sorted, each as (rows, hidden, mask)."""
        import torch

        rows = sorted(rows, key=lambda i: (self.lengths[i], i))
        out = []
        for s in range(0, len(rows), batch_size):
            chunk = rows[s:s + batch_size]
            width = int(max(self.lengths[i] for i in chunk))
            first = self.hidden[chunk[0]]
            hidden = torch.zeros(len(chunk), width, first.shape[-1], device=first.device)
            mask = torch.zeros(len(chunk), width, device=first.device)
            for j, i in enumerate(chunk):
                hidden[j, :self.lengths[i]] = self.hidden[i]
                mask[j, :self.lengths[i]] = 1
            out.append((chunk, hidden, mask))
        return out


def _fit(config: ScorerTrainConfig, encoder_path: Path, frozen: _Frozen, targets: Any, weights: Any,
         train_rows: Sequence[int], predict_rows: Sequence[int], device: str, dtype: Any, desc: str,
         progress: bool) -> tuple[ScorerModel, Any]:
    """Train on ``train_rows``; the model and its standardised predictions for ``predict_rows``."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    model = ScorerModel.from_encoder(encoder_path, targets.shape[1])
    model.encoder.to(device)
    model.head.to(device)
    trained = model.blocks(frozen.start)
    params = [p for p in trained.parameters()] + list(model.head.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    batches = frozen.batches(train_rows, config.batch_size)
    steps = config.epochs * len(batches)
    warm = max(1, int(0.1 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm + 1)))
    y = torch.tensor(np.nan_to_num(targets), dtype=torch.float32, device=device)
    seen = torch.tensor(~np.isnan(targets), dtype=torch.float32, device=device)
    w = torch.tensor(weights, dtype=torch.float32, device=device)
    rng = np.random.default_rng(config.seed)
    autocast = {"device_type": device.split(":")[0], "dtype": dtype, "enabled": dtype != torch.float32}
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress) as bar:
        for _ in range(config.epochs):
            trained.train()
            for b in rng.permutation(len(batches)):
                rows, hidden, mask = batches[b]
                with torch.autocast(**autocast):
                    out = model.forward_from(hidden.to(device), mask.to(device), frozen.start)
                cell = seen[rows] * w[rows, None]
                loss = ((out.float() - y[rows]) ** 2 * cell).sum() / cell.sum().clamp(min=1e-9)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimiser.step()
                schedule.step()
                optimiser.zero_grad(set_to_none=True)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    trained.eval()
    preds = np.zeros((len(predict_rows), targets.shape[1]))
    position = {r: i for i, r in enumerate(predict_rows)}
    with torch.no_grad():
        for rows, hidden, mask in frozen.batches(predict_rows, 64):
            out = model.forward_from(hidden.to(device), mask.to(device), frozen.start)  # fp32, no autocast
            preds[[position[r] for r in rows]] = out.float().cpu().numpy()
    return model, preds


# ---- the run -----------------------------------------------------------------------------------

def _run_key(config: ScorerTrainConfig, labels_sha: str, encoder_id: str) -> str:
    facts = config.model_dump(mode="json", exclude={"labels", "name", "n_resamples"})
    blob = json.dumps({"config": facts, "labels_sha256": labels_sha, "encoder": encoder_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _agreement(scales: list[LabelScale], targets: Any, preds: Any, config: ScorerTrainConfig) -> list[LabelAgreement]:
    import numpy as np

    out = []
    for i, s in enumerate(scales):
        keep = ~np.isnan(targets[:, i])
        pred = np.clip(preds[keep, i] * s.sd + s.mean, s.low, s.high)
        stats = correlate(pred.tolist(), (targets[keep, i] * s.sd + s.mean).tolist(), config.n_resamples, 0.95,
                          config.seed, names=(f"the scorer's {s.name} prediction", f"label column {s.name!r}"))
        out.append(LabelAgreement(label=s.name, **stats))
    return out


def train_scorer(config: ScorerTrainConfig, *, out: str | Path, progress: bool = True) -> ScorerTrainResult:
    """The scorer stage: learn ``config.label`` from ``config.labels`` and write a scorer folder to ``out``.
    Python twin of ``tidekit scorer train``."""
    import time

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from tidekit.backends._hf import pick_dtype
    from tidekit.scorer._card import write_card

    t0 = time.perf_counter()
    out = Path(out)
    if config.labels is None:
        raise ConfigError("no labels file given; pass --labels FILE (CSV, JSONL or Parquet with id, context, "
                          "response and the label columns)")
    if not config.label:
        raise ConfigError("no label column given; pass --label COL (repeatable)")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder for the scorer")
    name = config.name or out.resolve().name
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"scorer name {name!r}: use letters, digits, '-' and '_' only (it becomes part of "
                          "column names); pass --name")
    labels_path = Path(config.labels)
    rows = load_labels(labels_path, config.label, group=config.group)
    rows, warnings = _merge_duplicates(rows, config.label)
    _check_labels(rows, config.label, str(labels_path), config.min_rows)
    labels_sha = sha256_file(labels_path)
    encoder_path = resolve_model_path(config.encoder)
    weights_file = next(iter(sorted(encoder_path.glob("*.safetensors"))), None)
    encoder_id = sha256_file(weights_file) if weights_file else str(encoder_path)
    key = _run_key(config, labels_sha, encoder_id)
    if (out / META_FILE).is_file() and (out / HEAD_FILE).is_file():
        meta = read_meta(out)
        if meta.cv.get("run_key") == key:
            return ScorerTrainResult(out=str(out), name=meta.name, labels=[s.name for s in meta.labels],
                                     n_rows=meta.n_train, n_groups=int(meta.cv.get("n_groups", 0)),
                                     folds=int(meta.cv.get("folds", 0)),
                                     cv=[LabelAgreement(**a) for a in meta.cv.get("agreement", [])],
                                     warnings=list(meta.cv.get("warnings", [])), skipped=True,
                                     train_seconds=round(time.perf_counter() - t0, 2))
    scales = _scales(rows, config.label)
    targets = np.array([[np.nan if (v := r.human[s.name]) is None else (v - s.mean) / s.sd for s in scales]
                        for r in rows])
    weights = np.array([r.weight for r in rows])
    groups = [r.group for r in rows]
    device = _device(config.device)
    dtype = getattr(torch, pick_dtype(config.dtype, device))
    folds = grouped_folds(groups, config.folds, config.seed) if config.folds else []
    with RunRecorder(out, command="scorer train", config=config, seed=config.seed,
                     inputs={"labels": str(labels_path), "encoder": str(encoder_path)}) as run:
        with run.step("tokenize+frozen"):
            tokenizer = AutoTokenizer.from_pretrained(str(encoder_path))
            encoded = encode_pairs(tokenizer, [r.context for r in rows], [r.response for r in rows],
                                   config.max_length)
            base = ScorerModel.from_encoder(encoder_path, len(scales))
            train_layers = config.train_layers or base.n_layers
            if train_layers > base.n_layers:
                raise ConfigError(f"train_layers={config.train_layers} but the encoder has {base.n_layers} blocks; "
                                  f"use 1-{base.n_layers}")
            base.encoder.to(device)
            frozen = _Frozen(base, tokenizer, encoded, base.n_layers - train_layers, device, dtype, progress)
            del base
        oof = _cross_validate(config, key, folds, out / CV_DIR, run, encoder_path, frozen, targets, weights,
                              device, dtype, progress)
        agreement = _agreement(scales, targets, oof, config) if config.folds else []
        with run.step("final fit"):
            model, _ = _fit(config, encoder_path, frozen, targets, weights, list(range(len(rows))), [], device,
                            dtype, "final fit", progress)
        with run.step("write"):
            _save_model(model, tokenizer, out)
            cv_facts = {"run_key": key, "folds": config.folds, "n_groups": len(set(groups)),
                        "agreement": [a.model_dump() for a in agreement], "warnings": warnings,
                        "group": config.group or "context"}
            meta = ScorerMeta(name=name, labels=scales, base_encoder=config.encoder, max_length=config.max_length,
                              train_layers=train_layers, labels_file=str(labels_path),
                              labels_sha256=labels_sha, n_train=len(rows), cv=cv_facts,
                              trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
            files = ["scorer.json", ENCODER_DIR, HEAD_FILE, "card.md", "manifest.json"]
            if config.folds:
                import pandas as pd

                from tidekit._io import write_text

                frame = pd.DataFrame({"id": [r.id for r in rows], "group": groups, "fold": folds,
                                      **{f"{s.name}": targets[:, i] * s.sd + s.mean for i, s in enumerate(scales)},
                                      **{f"{s.name}_predicted": np.clip(oof[:, i] * s.sd + s.mean, s.low, s.high)
                                         for i, s in enumerate(scales)}})
                write_text(out / "cv_predictions.csv", frame.to_csv(index=False))
                files += ["cv_predictions.csv", *_calibration_figure(scales, frame, out)]
            write_card(out, meta, agreement, warnings, config)
            write_json(out / META_FILE, meta.model_dump(mode="json"))
        run.counts.update(rows=len(rows), groups=len(set(groups)), folds=config.folds, labels=len(scales))
        run.extra.update(warnings=warnings, agreement=[a.model_dump() for a in agreement], device=device,
                         dtype=str(dtype).removeprefix("torch."), threads=torch.get_num_threads())
    return ScorerTrainResult(out=str(out), name=name, labels=[s.name for s in scales], n_rows=len(rows),
                             n_groups=len(set(groups)), folds=config.folds, cv=agreement, warnings=warnings,
                             train_seconds=round(time.perf_counter() - t0, 2), files=files)


def _cross_validate(config: ScorerTrainConfig, key: str, folds: list[int], cv_dir: Path, run: Any, encoder_path: Path,
                    frozen: Any, targets: Any, weights: Any, device: str, dtype: Any, progress: bool) -> Any:
    """Out-of-fold predictions for every row, one fold fit at a time; each finished fold is saved under
    ``cv_dir`` by the run key, so a killed training resumes at the first fold it had not finished."""
    import numpy as np

    oof = np.full(targets.shape, np.nan)
    for k in range(config.folds):
        done = cv_dir / f"{key}-fold{k}.npy"
        test = [i for i, f in enumerate(folds) if f == k]
        if done.is_file():
            oof[test] = np.load(done)
            continue
        with run.step(f"fold{k}"):
            train = [i for i, f in enumerate(folds) if f != k]
            _, preds = _fit(config, encoder_path, frozen, targets, weights, train, test, device, dtype,
                            f"fold {k + 1}/{config.folds}", progress)
            oof[test] = preds
            cv_dir.mkdir(parents=True, exist_ok=True)
            tmp = done.with_suffix(".tmp.npy")
            np.save(tmp, preds)
            tmp.replace(done)
    return oof


def _save_model(model: Any, tokenizer: Any, out: Path) -> None:
    """Write the encoder (float32, with its tokenizer) and the head into ``out``, staged beside them and
    moved into place part by part, so a reader never sees a half-written encoder."""
    import torch
    from safetensors.torch import save_file

    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    model.encoder.to("cpu", dtype=torch.float32).save_pretrained(staging / ENCODER_DIR)
    tokenizer.save_pretrained(staging / ENCODER_DIR)
    save_file({k: v.detach().cpu().float().contiguous() for k, v in model.head.state_dict().items()},
              str(staging / HEAD_FILE))
    for part in (ENCODER_DIR, HEAD_FILE):
        target = out / part
        if target.is_dir():
            shutil.rmtree(target)
        (staging / part).replace(target)
    shutil.rmtree(staging, ignore_errors=True)


def _calibration_figure(scales: list[LabelScale], frame: Any, out: Path) -> list[str]:
    """Per label: out-of-fold prediction against the mean human label in prediction quintiles."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(scales), figsize=(3.2 * len(scales), 3.0), squeeze=False, dpi=110)
    for ax, s in zip(axes[0], scales, strict=True):
        sub = frame[[s.name, f"{s.name}_predicted"]].dropna()
        x, y = sub[f"{s.name}_predicted"].to_numpy(), sub[s.name].to_numpy()
        edges = np.unique(np.quantile(x, np.linspace(0, 1, 6))) if len(x) else np.array([])
        if len(edges) > 1:
            which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
            bins = [(x[which == b].mean(), y[which == b].mean()) for b in range(len(edges) - 1) if (which == b).any()]
            ax.plot([b[0] for b in bins], [b[1] for b in bins], "-o", color="C3", ms=4, label="quintile mean")
        ax.plot([s.low, s.high], [s.low, s.high], ":", color="grey", lw=1, label="ideal")
        ax.set_title(f"{s.name} (out-of-fold)", fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("human label (mean)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "calibration.png", suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return ["calibration.png"]
