"""The learned empathy scorer against people: grouped cross-validation, a frozen-embedding ridge
baseline on the same folds, and the SmolLM2 judge, in one run.

1. ``tidekit scorer train`` with its default settings on ``--labels`` (timed: the whole command,
   cross-validation and final fit): out-of-fold Spearman and Kendall per label, every held-out
   pair from a group (``--group``) the fold's model never saw.
2. The baseline: frozen all-MiniLM-L6-v2 sentence embeddings of the reply and of the context
   (concatenated), ridge regression per label (penalty chosen by grouped inner CV from a grid),
   on the very same outer folds.
3. The SmolLM2-135M judge (``tidekit judge validate``, the default judge) on a seeded sample of
   ``--judge-n`` pairs, its overall expected score against the total and each factor against the
   closest label; a sample, because the judge takes ~1 s per pair on this CPU.

Labels files with licences (EPITOME's is academic only) are read, never copied: the scorer and
its predictions go to a temporary folder unless ``--out`` is given. Run it with::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scorer.py --labels PATH/epitome_labels.csv \\
        --label er --label ip --label ex --label total --group seeker_id      # ~15-20 min on 2 idle cores

It prints the table and appends it, the command and the machine to docs/benchmarks.md
(## Learned empathy scorer) unless ``--no-append``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _docs import append_to_section, cpu_name, markdown_table, print_rows

SECTION = "## Learned empathy scorer"
ALPHAS = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0)
JUDGE_FOR = {"total": "overall", "er": "emotion_recognition", "ip": "supportive_reflection",
             "ex": "supportive_reflection", "empathy": "overall"}


def _ridge_fit(x: Any, y: Any, idx: Any, alpha: float) -> Any:
    """Ridge coefficients on rows ``idx`` (the last column, the intercept, is not penalised)."""
    import numpy as np

    a = x[idx]
    penalty = alpha * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(a.T @ a + penalty, a.T @ y[idx])


def _inner_score(x: Any, y: Any, train: Any, inner: Any, alpha: float) -> float:
    """Spearman of grouped 3-fold inner-CV predictions on ``train`` at penalty ``alpha``."""
    import numpy as np
    from scipy.stats import spearmanr

    guesses = np.empty(len(train))
    for g in range(3):
        guesses[inner == g] = x[train[inner == g]] @ _ridge_fit(x, y, train[inner != g], alpha)
    return float(spearmanr(guesses, y[train]).statistic)


def ridge_baseline(rows: list, labels: list[str], folds: list[int], k: int, seed: int) -> dict[str, float]:
    """Out-of-fold Spearman per label of ridge on frozen MiniLM embeddings, on the scorer's folds."""
    import numpy as np
    from scipy.stats import spearmanr

    from tidekit.metrics._embedding import embed_texts
    from tidekit.scorer import grouped_folds

    x = np.hstack([embed_texts([r.response for r in rows]), embed_texts([r.context for r in rows]),
                   np.ones((len(rows), 1))])
    out = {}
    folds_a = np.array(folds)
    for label in labels:
        y = np.array([np.nan if r.human[label] is None else r.human[label] for r in rows], dtype=float)
        pred = np.full(len(rows), np.nan)
        for f in range(k):
            train = np.where((folds_a != f) & ~np.isnan(y))[0]
            test = np.where(folds_a == f)[0]
            inner = np.array(grouped_folds([rows[i].group for i in train], 3, seed + 1))
            best = max(ALPHAS, key=lambda a, tr=train, inn=inner, yy=y: _inner_score(x, yy, tr, inn, a))
            pred[test] = x[test] @ _ridge_fit(x, y, train, best)
        keep = ~np.isnan(y)
        out[label] = float(spearmanr(pred[keep], y[keep]).statistic)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", required=True, type=Path)
    parser.add_argument("--label", action="append", required=True)
    parser.add_argument("--group", default=None)
    parser.add_argument("--judge-n", type=int, default=60, help="pairs the SmolLM2 judge rates (0: no judge)")
    parser.add_argument("--out", type=Path, default=None, help="keep the scorer here [temporary folder]")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE settings of the scorer (docs/config.md)")
    args = parser.parse_args()

    import random

    from tidekit._config import load_config
    from tidekit.metrics import ScoreConfig, load_labels, validate_judge
    from tidekit.scorer import ScorerTrainConfig, grouped_folds, train_scorer

    work = Path(tempfile.mkdtemp(prefix="tidekit-scorer-bench-"))
    out = args.out or work / "scorer"
    config = load_config(ScorerTrainConfig, None, args.overrides,
                         flags={"labels": str(args.labels), "label": args.label, "group": args.group})
    t0 = time.perf_counter()
    result = train_scorer(config, out=out, progress=True)
    train_s = time.perf_counter() - t0

    rows = load_labels(args.labels, args.label, group=args.group)
    folds = grouped_folds([r.group for r in rows], config.folds, config.seed)
    t1 = time.perf_counter()
    ridge = ridge_baseline(rows, args.label, folds, config.folds, config.seed)
    ridge_s = time.perf_counter() - t1

    judge: dict[str, float | None] = {}
    if args.judge_n:
        import pandas as pd

        sample = random.Random(config.seed).sample(rows, min(args.judge_n, len(rows)))
        path = work / "judge_sample.csv"
        pd.DataFrame([{"id": r.id, "context": r.context, "response": r.response, **r.human} for r in sample]
                     ).to_csv(path, index=False)
        validation = validate_judge(path, args.label, work / "judge", ScoreConfig(), progress=True)
        for label in args.label:
            c = validation.find(label, JUDGE_FOR.get(label, "overall"))
            judge[label] = c.spearman

    cv = {a.label: a for a in result.cv}
    table = [("labels", f"{args.labels.name}: {result.n_rows} pairs, {result.n_groups} groups "
                        f"(by {args.group or 'context'}), {result.folds}-fold grouped CV")]
    for label in args.label:
        a = cv.get(label)
        fig = "-" if a is None or a.spearman is None else f"{a.spearman:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}]"
        js = judge.get(label)
        table.append((f"{label}: scorer / ridge baseline / SmolLM2 judge (Spearman)",
                      f"{fig} / {ridge[label]:.3f} / "
                      + (f"{js:.3f} ({JUDGE_FOR.get(label, 'overall')}, n={args.judge_n})" if js is not None
                         else "-")))
    table += [("scorer train wall time (CV + final fit)", f"{train_s:.0f} s"),
              ("ridge baseline wall time (embeddings + CV)", f"{ridge_s:.0f} s"),
              ("settings", f"encoder {config.encoder}, {config.epochs} epochs, batch {config.batch_size}, "
                           f"lr {config.learning_rate:g}, max_length {config.max_length}")]
    print_rows(table)
    if not args.no_append:
        command = "HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join(["benchmarks/scorer.py", *sys.argv[1:]])
        append_to_section(SECTION, f"\n### {dt.date.today().isoformat()}, {cpu_name()}\n\n`{command}`\n\n"
                          + markdown_table(table),
                          intro="`benchmarks/scorer.py`: the learned scorer's cross-validated agreement with "
                                "human labels, a frozen-embedding ridge baseline on the same folds and the "
                                "SmolLM2 judge on a sample, in one run.")


if __name__ == "__main__":
    main()
