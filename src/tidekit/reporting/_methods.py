"""The methods section, generated from each stage's manifest (never written by hand)."""

from __future__ import annotations

from typing import Any

from tidekit._manifest import RunManifest

__all__ = ["methods_paragraphs"]

_KEYS = ("seed", "model", "models", "metrics", "encoder", "lora", "train", "scale", "by", "correction",
         "bootstrap", "alpha", "ordinal", "split", "ratios", "temperature", "max_new_tokens")


def _short(v: Any, limit: int = 160) -> str:
    text = str(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def methods_paragraphs(manifests: dict[str, RunManifest]) -> list[dict[str, Any]]:
    """One entry per stage: what ran, on what, with which settings, counts and time."""
    out = []
    for label, m in manifests.items():
        settings = {k: _short(m.config[k]) for k in _KEYS if k in m.config and m.config[k] not in (None, {}, [])}
        models = [f"{x.alias}" + (f" ({x.role})" if x.role else "") + (f", sha256 {x.sha256[:12]}" if x.sha256 else "")
                  for x in m.models]
        text = (f"'tidekit {m.command}' ({m.status}) ran tidekit {m.tidekit_version}"
                + (f" at commit {m.git_commit[:10]}" if m.git_commit else "")
                + f" on Python {m.python}, {m.platform}"
                + (f", seed {m.seed}" if m.seed is not None else "")
                + (f", in {m.wall_s:.1f} s" if m.wall_s is not None else "") + ".")
        out.append({"stage": label, "text": text, "settings": settings, "models": models,
                    "counts": dict(m.counts), "packages": ", ".join(f"{k} {v}" for k, v in sorted(m.packages.items())),
                    "started_at": m.started_at, "error": m.error})
    return out
