"""Synthetic labels files for the scorer tests: replies whose label is a known function of their text.

Nothing here comes from a real labelled dataset (EPITOME's licence keeps it out of the project).
Each reply is built from a seeded choice of phrases; its ``warmth`` label is the number of warm
phrases it holds (0-3), so a scorer that reads the text can learn it and one that cannot, cannot.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

WARM = ["I'm so sorry you're going through this.", "That sounds really painful.",
        "It makes sense that you feel this way.", "You are not alone in this.",
        "Thank you for telling me.", "I can hear how exhausted you are."]
FLAT = ["The meeting is on Tuesday.", "Traffic was heavy this morning.", "Try restarting the router.",
        "The shop closes at six.", "Rain is expected later.", "The form needs a signature."]
POSTS = ["I can't sleep since the accident.", "Loud noises make me freeze.", "I keep reliving that night.",
         "My friends don't get why I avoid crowds.", "I feel numb most days.", "Work is too much lately."]

# the fast settings every trained-scorer test uses: one trained block, short pairs, few steps
FAST = {"train_layers": 1, "max_length": 48, "epochs": 3, "batch_size": 16, "learning_rate": 1e-3,
        "folds": 3, "n_resamples": 200}


def synthetic_rows(n: int, seed: int = 0, shuffle_labels: bool = False) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        warm = rng.randint(0, 3)
        parts = rng.sample(WARM, warm) + rng.sample(FLAT, 3 - warm)
        rng.shuffle(parts)
        post = f"{POSTS[i % len(POSTS)]} (post {i // 2})"  # two replies per post: a group of two
        rows.append({"id": f"r{i}", "post": f"p{i // 2}", "context": post, "response": " ".join(parts),
                     "warmth": warm})
    if shuffle_labels:
        labels = [r["warmth"] for r in rows]
        rng.shuffle(labels)
        for r, label in zip(rows, labels, strict=True):
            r["warmth"] = label
    return rows


def write_labels(path: Path, rows: list[dict[str, object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
