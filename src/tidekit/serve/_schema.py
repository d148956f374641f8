"""The OpenAI chat-completions wire format that ``tidekit serve`` accepts and returns.

Requests are validated strictly where it matters (messages, roles, parameter ranges, ``n``)
and leniently elsewhere: fields tidekit does not use (``user``, ``logprobs: false``, ...) are
accepted and ignored, as OpenAI-compatible servers do, so stock clients work unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ChatCompletionRequest", "StreamOptions", "WireMessage"]


class WireMessage(BaseModel):
    """One message; content is a string or a list of text parts."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk with no choices and the token counts."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="Served model name (see /v1/models).")
    messages: list[WireMessage] = Field(min_length=1, description="The conversation so far.")
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0,
                                      description="Sampling temperature; none: the server's default (1.0, as "
                                                  "OpenAI's; 0 = greedy).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = Field(default=None, description="Only with stream: true.")
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request is supported.")
    logprobs: bool | None = Field(default=None, description="Not supported: true is refused.")
    tools: list[dict[str, Any]] | None = Field(default=None, description="Not supported: a non-empty list is "
                                                                         "refused.")

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletionRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        if self.logprobs:
            raise ValueError("logprobs: this server does not return token log-probabilities; send false or omit it")
        if self.tools:
            raise ValueError("tools: this server does not call tools; omit them")
        return self

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v
