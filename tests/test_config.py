"""Config conventions: unknown keys named, every problem at once, key=value overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, field_validator, model_validator

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


class Seeded(StrictModel):
    """A model whose before-validator reads a raw value, as the study's seed derivation does."""

    seed: int = 0
    model: Model = Model()
    derived: int = 0

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, "derived": int(data.get("seed", 0)) + 1}  # ValueError on 'abc'
        return data


def test_a_bad_override_names_the_override_key_value_and_type() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Seeded, None, ["seed=abc"])
    text = str(info.value)
    assert "1 problem(s)" in text
    assert "override 'seed=abc': 'seed' must be int, got 'abc'" in text
    assert "(top level)" not in text and "got dict" not in text and "invalid literal" not in text


def test_the_real_study_override_error_names_seed(run_cli: Any) -> None:
    """The failure of issue #32: `tidekit run configs/quickstart.yaml seed=abc`."""
    root = Path(__file__).resolve().parents[1]
    result = run_cli("run", root / "configs" / "quickstart.yaml", "seed=abc", "--dry-run")
    assert result.code == 2
    assert "override 'seed=abc': 'seed' must be int, got 'abc'" in result.err
    assert "(top level)" not in result.err and "Traceback" not in result.err


def test_bad_nested_overrides_are_all_named_with_types(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("seed: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(Study, path, ["model.temperature=hot", "tags=7"])
    text = str(info.value)
    assert "3 problem(s)" in text
    assert f"{path}: 'seed' must be int, got 'x'" in text  # from the file: the file is named
    assert "override 'model.temperature=hot': 'model.temperature' must be float, got 'hot'" in text
    assert "override 'tags=7': 'tags' must be list[str], got 7" in text


def test_a_value_only_the_field_validator_accepts_is_not_blamed() -> None:
    class Ratios(StrictModel):
        ratios: tuple[float, float] = (0.5, 0.5)
        seed: int = 0

        @field_validator("ratios", mode="before")
        @classmethod
        def _parse(cls, v: Any) -> Any:
            return tuple(float(x) for x in v.split(",")) if isinstance(v, str) else v

    assert load_config(Ratios, None, ["ratios=0.3,0.7"]).ratios == (0.3, 0.7)
    with pytest.raises(ConfigError) as info:
        load_config(Ratios, None, ["ratios=0.3,0.7", "seed=many"])
    assert "1 problem(s)" in str(info.value) and "'seed' must be int" in str(info.value)
