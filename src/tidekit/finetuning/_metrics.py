"""Training metrics as JSONL: one line per logging event (train loss, validation loss, summary).

``OUT/metrics.jsonl`` lines look like::

    {"kind": "train", "step": 10, "epoch": 0.5, "loss": 2.31, "learning_rate": 0.0002,
     "grad_norm": 0.8, "tokens_seen": 5120, "tokens_per_s": 812.4, "elapsed_s": 6.3}
    {"kind": "eval", "step": 10, "epoch": 0.5, "eval_loss": 2.12, ...}

``tokens_seen`` counts real (non-padding) input tokens; ``tokens_per_s`` is over the optimizer
steps since the previous training line (time inside steps only: evaluation and checkpoint saves
are left out), and ``step_s`` is the mean step time over that interval. On ``--resume`` the lines after the checkpoint's step are
dropped first, so the file always describes one unbroken run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tidekit._io import write_text

__all__ = ["METRICS_FILE", "make_metrics_logger", "read_metrics"]

METRICS_FILE = "metrics.jsonl"

# keys transformers/TRL put in logs that we rename or leave out (per-run totals are in the summary line)
_RENAME = {"num_input_tokens_seen": "tokens_seen"}
_DROP = {"total_flos", "train_tokens_per_second", "num_tokens", "eval_num_tokens", "train_runtime"}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a metrics.jsonl file (or of the one inside a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_metrics_logger(path: Path) -> Any:
    """A transformers ``TrainerCallback`` that appends every log to ``path`` (built lazily: the
    callback base class lives in transformers, which must not load at import time)."""
    from transformers import TrainerCallback

    class MetricsLogger(TrainerCallback):
        def __init__(self) -> None:
            self.path = path
            self._t0 = self._step_t0 = time.perf_counter()
            self.train_s = 0.0  # seconds inside optimizer steps since training (re)started
            self.tokens_at_start = 0  # tokens seen when this session started (resumed runs start above 0)
            self._last = (0.0, 0, 0)  # train_s, tokens seen, step at the previous training line

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            kept = [row for row in read_metrics(self.path) if int(row.get("step", 0)) <= state.global_step]
            write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))
            self._t0 = time.perf_counter()
            self.tokens_at_start = int(state.num_input_tokens_seen or 0)
            self._last = (0.0, self.tokens_at_start, state.global_step)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._step_t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.train_s += time.perf_counter() - self._step_t0

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not logs:
                return
            now = time.perf_counter()
            row: dict[str, Any] = {"kind": _kind(logs), "step": state.global_step,
                                   "epoch": round(float(state.epoch or 0.0), 4)}
            for key, value in logs.items():
                if key in _DROP or key == "epoch":
                    continue
                row[_RENAME.get(key, key)] = value
            if row["kind"] == "train":
                seen = int(state.num_input_tokens_seen or 0)
                t_prev, seen_prev, step_prev = self._last
                if self.train_s > t_prev and state.global_step > step_prev:
                    row["tokens_per_s"] = round((seen - seen_prev) / (self.train_s - t_prev), 2)
                    row["step_s"] = round((self.train_s - t_prev) / (state.global_step - step_prev), 4)
                self._last = (self.train_s, seen, state.global_step)
            row["elapsed_s"] = round(now - self._t0, 3)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
                fh.flush()

    return MetricsLogger()


def _kind(logs: dict[str, Any]) -> str:
    if any(k.startswith("eval_") for k in logs):
        return "eval"
    if "train_loss" in logs:  # the end-of-training totals (transformers adds train_runtime to every log)
        return "summary"
    return "train"
