"""Backend options per kind: one model per registered kind, dispatched on ``kind``, where an option
of another kind is an error naming the key and the kind (never silently ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from tidekit._config import StrictModel, load_config
from tidekit.backends import (
    BACKENDS,
    AnthropicConfig,
    BackendConfig,
    HFConfig,
    MockConfig,
    OpenAIConfig,
    VLLMConfig,
    backend_kinds,
    load_backend,
)
from tidekit.errors import ConfigError

# per kind: an option that belongs to another kind only
FOREIGN = {"hf": ("base_url", "http://x/v1"), "openai": ("device", "cuda"), "anthropic": ("batch_size", 8),
           "vllm": ("optimize", False), "mock": ("timeout_s", 3.0)}


class Section(StrictModel):
    backend: BackendConfig = Field(default_factory=BackendConfig)
    judge: BackendConfig | None = None


def test_every_registered_kind_has_a_foreign_option_case() -> None:
    assert set(FOREIGN) == set(BACKENDS) == set(backend_kinds())


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_foreign_option_names_the_field_and_the_kind(kind: str) -> None:
    key, value = FOREIGN[kind]
    with pytest.raises(ConfigError) as info:
        load_config(Section, overrides=[f"backend.kind={kind}", f"backend.{key}={value}"])
    message = str(info.value)
    assert f"'backend.{key}': not an option of the '{kind}' backend" in message
    own = [name for name in BACKENDS[kind].options.model_fields if name != "kind"]
    assert f"(its options: {', '.join(own)})" in message
    owners = sorted(k for k, spec in BACKENDS.items() if key in spec.options.model_fields)
    assert f"an option of: {', '.join(owners)}" in message and kind not in owners
    with pytest.raises(ValidationError, match=f"not an option of the '{kind}' backend"):
        BackendConfig(kind=kind, **{key: value})


def test_a_key_of_no_kind_is_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'backend.modle'; check its spelling"):
        load_config(Section, overrides=["backend.kind=openai", "backend.modle=x"])


def test_kind_dispatches_to_its_model_and_omitted_kind_is_hf(tmp_path: Path) -> None:
    assert type(BackendConfig()) is HFConfig and type(BackendConfig(model="m")) is HFConfig
    assert isinstance(BackendConfig(kind="openai", base_url="u"), OpenAIConfig)
    assert type(BackendConfig.model_validate({"kind": "anthropic"})) is AnthropicConfig
    assert type(BackendConfig.model_validate({"kind": "vllm", "port": 8001})) is VLLMConfig
    path = tmp_path / "c.yaml"
    path.write_text("backend: {model: tiny, device: cpu}\njudge: {kind: mock, reply: fixed}\n")
    section = load_config(Section, path)
    assert isinstance(section.backend, HFConfig) and section.backend.device == "cpu"
    assert isinstance(section.judge, MockConfig) and section.judge.reply == "fixed"


def test_a_kind_model_round_trips_with_its_own_options() -> None:
    section = Section(backend=BackendConfig(kind="openai", base_url="http://h/v1", concurrency=9))
    dumped = section.model_dump(mode="json")
    assert dumped["backend"] == {"kind": "openai", "model": "smollm2-135m", "base_url": "http://h/v1",
                                 "api_key_env": None, "concurrency": 9, "timeout_s": 120.0, "max_retries": 4}
    assert Section.model_validate_json(section.model_dump_json()) == section
    copied = section.backend.model_copy(update={"model": "other"})
    assert isinstance(copied, OpenAIConfig) and copied.model == "other" and copied.concurrency == 9


def test_unknown_kind_lists_the_registry() -> None:
    with pytest.raises(ConfigError, match=r"'backend.kind': unknown backend kind; the kinds are: "
                                          + ", ".join(backend_kinds())):
        load_config(Section, overrides=["backend.kind=tpu"])


def test_other_errors_keep_their_key_path() -> None:
    with pytest.raises(ConfigError, match=r"'judge.timeout_s': Input should be greater than 0"):
        load_config(Section, overrides=["judge.kind=openai", "judge.timeout_s=0"])


def test_load_backend_builds_a_mock_from_a_plain_backend_config() -> None:
    backend = load_backend(BackendConfig(kind="mock", model="m"))
    again = load_backend(BackendConfig.model_validate({"kind": "mock", "model": "m", "batch_size": 2}))
    assert backend.identity == again.identity and backend.identity.alias == "m"
    assert again.capabilities.max_batch_size == 2


def test_cli_rejects_an_option_of_another_kind(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tidekit.cli import cli

    # DATA and OUT are arguments or options, depending on the CLI revision; either way, the
    # backend options must be rejected before anything is read
    options = {o for param in cli.commands["generate"].params for o in getattr(param, "opts", [])}
    where = (["--data", tmp_path / "data"] if "--data" in options else [tmp_path / "data"]) + (
        ["--out", tmp_path / "out"] if "--out" in options else [tmp_path / "out"])
    result = run_cli("generate", "--backend", "openai", "--device", "cuda", "--model", "x", *where)
    assert result.code != 0 and "Traceback" not in result.err
    assert "'backend.device': not an option of the 'openai' backend" in result.err
