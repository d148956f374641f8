"""Experiment trackers (TensorBoard, Weights & Biases) for fine-tuning runs and whole studies.

``tidekit finetune`` hands ``train.report_to`` to the TRL/transformers trainer, which logs its
own losses and learning rates; :func:`tracker_env` points the trainer's loggers into the run's
output folder for the duration. ``tidekit run`` logs each finished stage's figures (its numeric
facts and wall time) with :class:`StageTracker`. Both check first (:func:`check_tracker`) that
the package is installed and that W&B can log without asking for a key, so a missing piece is a
clear error before any work, never a prompt or a hang on a machine with no network.
"""

from __future__ import annotations

import importlib.util
import math
import netrc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from tidekit.errors import ConfigError, MissingDependencyError

__all__ = ["ReportTo", "StageTracker", "check_tracker", "tracker_env"]

ReportTo = Literal["none", "tensorboard", "wandb"]

_INSTALL = "pip install 'tidekit[tracking]'"
# W&B modes that never contact the server (dryrun is the old name of offline)
_LOCAL_MODES = {"offline", "dryrun", "disabled"}


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        path = os.environ.get("NETRC") or None
        return netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_tracker(report_to: ReportTo, setting: str = "train.report_to") -> None:
    """Raise before any work when ``report_to`` cannot log here."""
    if report_to == "none":
        return
    if importlib.util.find_spec(report_to) is None:
        feature = "TensorBoard logging" if report_to == "tensorboard" else "Weights & Biases logging"
        raise MissingDependencyError(f"{feature} ({setting}={report_to})", report_to, _INSTALL)
    if report_to == "wandb" and os.environ.get("WANDB_MODE", "").lower() not in _LOCAL_MODES \
            and not _wandb_logged_in():
        raise ConfigError(f"{setting}=wandb: W&B has no API key here, so it would ask for one. Log in with "
                          "'wandb login' (or set WANDB_API_KEY), or set WANDB_MODE=offline to write the run "
                          "locally and upload it later with 'wandb sync'.")


@contextmanager
def tracker_env(report_to: ReportTo, out: Path) -> Iterator[None]:
    """Environment the transformers loggers read, pointed into ``out`` unless the user set it.

    TensorBoard event files go to ``out/tensorboard``; a W&B run to ``out/wandb`` in project
    ``$WANDB_PROJECT`` (default ``tidekit``). The W&B run is finished on exit, so a second run in
    the same process starts its own. The variables are restored on exit.
    """
    chosen: dict[str, str] = {}
    if report_to == "tensorboard":
        chosen["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    elif report_to == "wandb":
        chosen.update(WANDB_DIR=str(out), WANDB_PROJECT="tidekit")
    saved = {k: os.environ.get(k) for k in chosen}
    for key, value in chosen.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        if report_to == "wandb":
            _finish_wandb()
        for key, before in saved.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before


def _finish_wandb() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _numbers(facts: dict[str, Any]) -> dict[str, float]:
    """The facts a tracker can plot: finite numbers (not booleans)."""
    return {k: float(v) for k, v in facts.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}


class StageTracker:
    """Logs each finished stage of a study as scalars ``<stage>/<fact>`` (and ``<stage>/wall_s``).

    TensorBoard: event files in ``out/tensorboard``, one step per logged stage. W&B: one run named
    after the study in ``out/wandb`` (project ``$WANDB_PROJECT``, default ``tidekit``), with the
    resolved study configuration as the run's config.
    """

    def __init__(self, report_to: ReportTo, out: Path, name: str, config: dict[str, Any]) -> None:
        check_tracker(report_to, "tracking.report_to")
        self.report_to = report_to
        self.step = 0
        self._writer: Any = None
        self._run: Any = None
        if report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        elif report_to == "wandb":
            import wandb

            out.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tidekit"), name=name, dir=str(out),
                                   config=config, job_type="study", reinit="finish_previous")

    def log(self, stage: str, facts: dict[str, Any], wall_s: float | None) -> dict[str, float]:
        """Log one stage's figures; returns what was logged."""
        scalars = {f"{stage}/{k}": v for k, v in _numbers(facts).items()}
        if wall_s is not None:
            scalars[f"{stage}/wall_s"] = float(wall_s)
        if self._writer is not None:
            for tag, value in scalars.items():
                self._writer.add_scalar(tag, value, global_step=self.step)
            self._writer.flush()
        elif self._run is not None:
            self._run.log(scalars, step=self.step)
        self.step += 1
        return scalars

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._run is not None:
            self._run.finish()
            self._run = None
