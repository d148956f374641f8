"""The OpenAI wire format that ``tidekit serve`` accepts: chat completions, completions, responses.

Requests are validated strictly where it matters (messages, roles, parameter ranges, ``n``,
seeds in the backend's range) and leniently elsewhere: fields tidekit does not use (``user``,
``metadata``, ``store``, ``reasoning``, ...) are accepted and ignored, as OpenAI-compatible
servers do, so stock clients work unchanged. Every failure is a pydantic ``ValidationError``,
which the app turns into a 400 in OpenAI's error envelope (``_app.py``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MAX_CHOICES", "ChatCompletionRequest", "CompletionRequest", "ResponsesRequest", "StreamOptions",
           "WireMessage", "WireResponseFormat"]

MAX_CHOICES = 8  # n: choices per request (each a row of the decode batch)
MAX_STOP_CHARS = 1000  # a stop string is checked against the reply's tail at every step
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # int64: what OpenAI documents and every backend can seed


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _text_parts(content: str | list[dict[str, Any]], kinds: tuple[str, ...]) -> str:
    """A message's text: the string itself, or its text parts joined (any other part refused)."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") not in kinds or not isinstance(part.get("text"), str):
            raise ValueError(f"only text content parts are supported (type {' or '.join(kinds)} with a string "
                             "'text')")
        parts.append(part["text"])
    return "".join(parts)


class WireMessage(_Lenient):
    """One chat message; content is a string or a list of text parts."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    @model_validator(mode="after")
    def _only_text(self) -> WireMessage:
        _text_parts(self.content, ("text",))
        return self

    def text(self) -> str:
        return _text_parts(self.content, ("text",))


class StreamOptions(_Lenient):
    """``stream_options``: ``include_usage`` adds a last chunk with no choices and the token counts."""

    include_usage: bool = False


_SUBSCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def check_schema(schema: Any, path: str = "schema", depth: int = 0) -> None:
    """Refuse what is not a JSON schema's structure (``ValueError`` naming the place), so every
    backend gets a schema it can walk; whether the grammar supports every keyword is the
    backend's answer (a 400 naming the keyword)."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: a JSON schema is an object (or true/false), not {type(schema).__name__}")
    if depth > 32:
        raise ValueError(f"{path}: the schema nests deeper than 32 levels")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if not all(isinstance(k, str) and k in _TYPES for k in kinds) or (isinstance(kind, list) and not kind):
        raise ValueError(f"{path}.type: one of {sorted(_TYPES)} or a list of them")
    for key in _SUBSCHEMA:
        if key in schema:
            check_schema(schema[key], f"{path}.{key}", depth + 1)
    for key in _SUBSCHEMA_LISTS:
        if key in schema:
            if not isinstance(schema[key], list) or not schema[key]:
                raise ValueError(f"{path}.{key}: a non-empty list of schemas")
            for i, sub in enumerate(schema[key]):
                check_schema(sub, f"{path}.{key}.{i}", depth + 1)
    for key in _SUBSCHEMA_MAPS:
        if key in schema:
            if not isinstance(schema[key], dict):
                raise ValueError(f"{path}.{key}: an object of schemas")
            for name, sub in schema[key].items():
                check_schema(sub, f"{path}.{key}.{name}", depth + 1)
    if "required" in schema and not (isinstance(schema["required"], list)
                                     and all(isinstance(r, str) for r in schema["required"])):
        raise ValueError(f"{path}.required: a list of property names")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise ValueError(f"{path}.enum: a non-empty list")
    for key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        if key in schema and (not isinstance(schema[key], int) or isinstance(schema[key], bool) or schema[key] < 0):
            raise ValueError(f"{path}.{key}: a non-negative integer")
    if "$ref" in schema and not isinstance(schema["$ref"], str):
        raise ValueError(f"{path}.$ref: a string")


class JsonSchemaSpec(_Lenient):
    """``response_format.json_schema``: the schema the reply must follow."""

    name: str = Field(default="response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    strict: bool | None = None
    description: str | None = None

    @field_validator("schema_")
    @classmethod
    def _is_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_schema(v)
        return v


class WireResponseFormat(_Lenient):
    """``response_format``: ``text`` (free), ``json_object`` (any JSON object) or ``json_schema``.

    Both JSON kinds are enforced by constrained decoding on backends that can (the judge's
    grammar), and refused with a 400 by the others: never silently ignored.
    """

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> WireResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object with a 'schema'")
        return self

    def schema_and_name(self) -> tuple[dict[str, Any], str] | None:
        """The JSON schema to enforce and its name; None for free text."""
        if self.type == "json_object":
            return {"type": "object"}, "json_object"
        if self.type == "json_schema" and self.json_schema is not None:
            return self.json_schema.schema_, self.json_schema.name
        return None


class _Sampling(_Lenient):
    """What every generating route shares: sampling, length, stop strings, seed, streaming."""

    model: str = Field(description="Served model name (see /v1/models).")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0,
                                      description="Sampling temperature; none: the server's default (1.0, as "
                                                  "OpenAI's; 0 = greedy).")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX, description="Makes a sampled reply "
                                                                                 "repeatable (int64).")
    stream: bool = False
    stream_options: StreamOptions | None = Field(default=None, description="Only with stream: true.")

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self


class _Stops(_Sampling):
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=MAX_CHOICES, description=f"Choices, 1 to {MAX_CHOICES}.")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(len(stop) > MAX_STOP_CHARS for stop in ([v] if isinstance(v, str) else v or [])):
            raise ValueError(f"a stop sequence has at most {MAX_STOP_CHARS} characters")
        return v

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatCompletionRequest(_Stops):
    """The body of ``POST /v1/chat/completions``."""

    messages: list[WireMessage] = Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    logprobs: bool | None = Field(default=None, description="Return each reply token's log-probability.")
    top_logprobs: int | None = Field(default=None, ge=0, le=20, description="With logprobs: the most likely "
                                                                            "tokens at each position.")
    response_format: WireResponseFormat | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, description="Not supported: a non-empty list is "
                                                                         "refused.")

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletionRequest:
        if self.tools:
            raise ValueError("tools: this server does not call tools; omit them")
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self


class CompletionRequest(_Stops):
    """The body of ``POST /v1/completions`` (a raw prompt continued; no chat template)."""

    prompt: str | list[str] = Field(description="The text to continue (a list: one completion each).")
    max_tokens: int = Field(default=16, ge=1, le=32768, description="16 when unset, as OpenAI's.")
    logprobs: int | None = Field(default=None, ge=0, le=5, description="Most likely tokens at each position.")
    echo: bool = Field(default=False, description="Not supported: true is refused.")
    suffix: str | None = Field(default=None, description="Not supported: a suffix is refused.")

    @model_validator(mode="after")
    def _supported(self) -> CompletionRequest:
        if self.echo:
            raise ValueError("echo: this server does not echo the prompt; send false or omit it")
        if self.suffix:
            raise ValueError("suffix: insertion is not supported; omit it")
        if isinstance(self.prompt, list) and not 1 <= len(self.prompt) * self.n <= MAX_CHOICES:
            raise ValueError(f"prompt: 1 to {MAX_CHOICES} completions per request (prompts x n)")
        return self

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class InputItem(_Lenient):
    """One ``input`` message of ``/v1/responses`` (text only)."""

    type: Literal["message"] = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    @model_validator(mode="after")
    def _only_text(self) -> InputItem:
        _text_parts(self.content, ("input_text", "output_text", "text"))
        return self

    def text(self) -> str:
        return _text_parts(self.content, ("input_text", "output_text", "text"))


class TextOptions(_Lenient):
    """``text`` of ``/v1/responses``: its ``format`` is the response format."""

    format: dict[str, Any] | None = None

    def response_format(self) -> WireResponseFormat | None:
        if self.format is None:
            return None
        fmt = dict(self.format)
        if fmt.get("type") == "json_schema":  # the responses API flattens name/schema into format
            fmt = {"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
        return WireResponseFormat.model_validate(fmt)


class ResponsesRequest(_Sampling):
    """The body of ``POST /v1/responses``: the text subset (no tools, no stored state)."""

    input: str | list[InputItem] = Field(description="A user message, or a list of messages.")
    instructions: str | None = Field(default=None, description="A system message put first.")
    max_output_tokens: int | None = Field(default=None, ge=1, le=32768)
    text: TextOptions | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, description="Not supported: a non-empty list is "
                                                                         "refused.")
    previous_response_id: str | None = Field(default=None, description="Not supported: responses are not "
                                                                       "stored.")

    @model_validator(mode="after")
    def _supported(self) -> ResponsesRequest:
        if self.tools:
            raise ValueError("tools: this server does not call tools; omit them")
        if self.previous_response_id:
            raise ValueError("previous_response_id: this server stores no responses; send the whole input")
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input: at least one message")
        if self.text is not None:
            self.text.response_format()  # a bad format is this request's 400
        return self

    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of the conversation, the instructions first."""
        out = [("system", self.instructions)] if self.instructions else []
        if isinstance(self.input, str):
            return [*out, ("user", self.input)]
        return [*out, *((item.role, item.text()) for item in self.input)]
