"""Config conventions: unknown keys named, every problem at once, key=value overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from tidekit._config import StrictModel, apply_overrides, load_config
from tidekit.errors import ConfigError


class Model(StrictModel):
    name: str = "smollm2-135m"
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)


class Study(StrictModel):
    seed: int = 0
    model: Model = Model()
    tags: list[str] = Field(default_factory=list)


def test_load_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("seed: 3\nmodel:\n  name: qwen2.5-0.5b\n")
    cfg = load_config(Study, path, ["model.temperature=0.7", "tags=[a, b]", "seed=9"])
    assert (cfg.seed, cfg.model.name, cfg.model.temperature, cfg.tags) == (9, "qwen2.5-0.5b", 0.7, ["a", "b"])


def test_every_problem_reported_and_unknown_keys_named(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("seed: many\nmodle: {}\nmodel:\n  temperature: 9\n  nmae: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(Study, path)
    text = str(info.value)
    assert "4 problem(s)" in text
    for needle in ("'seed'", "unknown key 'modle'", "'model.temperature'", "unknown key 'model.nmae'", str(path)):
        assert needle in text


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("seed: 1\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_config(Study, path)


def test_bad_override_forms() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Study, "/nonexistent/x.yaml")
