"""An evaluation harness end to end against ``tidekit serve``: inspect_ai 0.3.x with its default
``openai/`` provider and ``OPENAI_BASE_URL`` pointing at a real server (SmolLM2 on loopback).

For a model name it does not know (``smollm2-135m``) inspect_ai takes the OpenAI Responses API
(``/v1/responses``), probing reasoning summaries first; the eval must run to the end with every
sample answered, and the temperature it asks for must be the one the server sampled at (the
response object echoes it, and temperature 0 gives identical replies to identical inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serve.conftest import MODEL

pytestmark = pytest.mark.slow


def test_inspect_ai_eval_runs_end_to_end_with_its_temperature(server: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    monkeypatch.setenv("OPENAI_BASE_URL", f"{server}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "anything")
    question = "Say hello in one word."
    task = Task(dataset=[Sample(input=question, target="hello"), Sample(input=question, target="hello"),
                         Sample(input="Name one colour.", target="red")],
                solver=generate(), scorer=includes(ignore_case=True))
    logs = inspect_eval(task, model=f"openai/{MODEL}", log_dir=str(tmp_path), display="none",
                        temperature=0.0, max_tokens=12, max_connections=3)
    log = logs[0]
    assert log.status == "success", log.error
    assert log.samples is not None and len(log.samples) == 3
    outputs = [s.output.completion for s in log.samples]
    assert all(outputs), outputs
    assert outputs[0] == outputs[1]  # temperature 0 honoured: greedy, identical inputs, identical replies
    calls: list[Any] = [e.call for s in log.samples for e in s.events if e.event == "model" and e.call is not None]
    assert calls, "no model calls were logged"
    for call in calls:
        assert call.request.get("temperature") == 0.0, call.request
        assert call.response is not None and call.response.get("temperature") == 0.0, call.response
        assert call.response.get("object") == "response"  # it went through /v1/responses
