"""Configuration conventions shared by every stage.

A stage's configuration is a pydantic model derived from :class:`StrictModel`, so unknown keys
are errors. :func:`load_config` reads a YAML file, applies ``key=value`` overrides from the
command line (dotted keys reach nested fields: ``model.temperature=0.7``), validates, and
reports every problem at once as one :class:`~tidekit.errors.ConfigError`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from tidekit.errors import ConfigError

__all__ = [
    "StrictModel",
    "apply_overrides",
    "format_validation_error",
    "load_config",
    "parse_override",
    "read_yaml",
    "set_dotted",
    "type_problems",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every configuration model: unknown keys are rejected by name."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def format_validation_error(exc: ValidationError, source: str = "config") -> list[str]:
    """Turn a pydantic error into one readable line per problem, naming the key path."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{loc}'; check its spelling or remove it")
        elif err["type"] == "missing":
            lines.append(f"{source}: required key '{loc}' is missing")
        elif not err["loc"]:  # a whole-model check: its input is the whole config, not worth showing
            lines.append(f"{source}: {err['msg']}")
        else:
            given = err.get("input")
            shown = repr(given) if isinstance(given, str | int | float | bool) else type(given).__name__
            lines.append(f"{source}: '{loc}': {err['msg']} (got {shown})")
    return lines


def _sub_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``Section`` or ``Section | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(models) == 1:
            return _sub_model(models[0])
    return None


def _holds_models(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    return any(_holds_models(a) for a in typing.get_args(annotation))


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def type_problems(model: type[BaseModel], data: Mapping[str, Any], source: str,
                  origins: Mapping[str, str] | None = None, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, line) for each value in ``data`` whose type the field of ``model`` refuses.

    Checked before the model itself, so a model validator that reads a raw value (the study's
    seed derivation reads ``seed``) cannot turn a bad value into a message without its key. Each
    line names the key, the value, the type wanted, and the override that set it (``origins``:
    dotted key -> override text) or else ``source``. Fields holding a union of models (backends)
    are left to the model.
    """
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            continue  # an unknown key: the model names it
        dotted = f"{prefix}{key}"
        annotation: Any = field.annotation
        sub = _sub_model(annotation)
        if sub is not None and isinstance(value, Mapping):
            out += type_problems(sub, value, source, origins, prefix=f"{dotted}.")
            continue
        if _holds_models(annotation):
            continue
        try:
            TypeAdapter(annotation).validate_python(value)  # only on the error path
        except ValidationError as exc:
            where = f"override '{origins[dotted]}'" if origins and dotted in origins else source
            reason = exc.errors()[0]["msg"]
            out.append((dotted, f"{where}: '{dotted}' must be {_type_name(annotation)}, got {value!r} ({reason})"))
        except TypeError:  # an annotation pydantic cannot check on its own (a forward reference)
            continue
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; syntax errors name the line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (``3`` is int, ``[1,2]`` a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{text}' is not of the form key=value (e.g. seed=7)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_dotted(data: dict[str, Any], key: str, value: Any, origin: str | None = None) -> None:
    """Set ``data[a][b][c] = value`` for ``key`` 'a.b.c' in place, creating sections on the way."""
    keys = key.split(".")
    node = data
    for i, part in enumerate(keys[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(keys[: i + 1])
            raise ConfigError(f"{origin or key}: '{prefix}' is not a section, cannot set '{keys[-1]}' in it")
        node = child
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override applied (nested by dots)."""
    result: dict[str, Any] = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted(result, ".".join(keys), value, origin=f"override '{text}'")
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def load_config(
    model: type[M],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    defaults: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> M:
    """Build a validated ``model`` from defaults, a YAML file, command-line flags and overrides
    (later wins).

    ``flags`` maps dotted keys to values already typed by the command line (``{"backend.device":
    "cuda"}``); they are merged as data, never re-parsed as YAML text (a ``--model 1.0`` stays
    the string '1.0'). ``None`` values are flags not given and leave the config alone.

    Raises ConfigError listing every problem found, each naming the key.
    """
    data: dict[str, Any] = _deep_copy(defaults or {})
    source = "command line"
    if path is not None:
        source = str(path)
        data = _merge(data, read_yaml(path))
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(data, key, str(value) if isinstance(value, Path) else value)
    data = apply_overrides(data, overrides)
    origins = {".".join(parse_override(text)[0]): text for text in overrides}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems_text(model, data, exc, source, origins)) from None


def _problems_text(model: type[BaseModel], data: Mapping[str, Any], exc: ValidationError, source: str,
                   origins: Mapping[str, str]) -> str:
    """Every problem, one a line; a value of the wrong type named with its key, value and type."""
    errors = exc.errors()
    locs = [".".join(str(part) for part in err["loc"]) for err in errors]
    whole = "" in locs  # a model validator failed on the raw data, maybe on a bad value
    # only keys the model itself refused (or all, after a whole-model failure): a field whose own
    # validator accepts more than its type is never blamed
    typed = {key: line for key, line in type_problems(model, data, source, origins) if whole or key in locs}
    lines = list(typed.values())
    for loc, line in zip(locs, format_validation_error(exc, source), strict=True):
        if loc in typed or (not loc and typed):  # said better above; the whole-model echo of a bad value
            continue
        lines.append(line)
    return f"{len(lines)} problem(s) in the configuration:\n  " + "\n  ".join(lines)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
