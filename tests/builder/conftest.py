"""A scripted teacher for fast pipeline tests: deterministic text, some of it bad on purpose."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest

from tidekit.backends import ChatRequest, MockBackend, MockConfig

CLIENT_BITS = [
    "lately my nights are short and my days feel long.", "I keep replaying that day when it gets quiet.",
    "my sister says I seem far away at dinner.", "I skipped the grocery store again because of the crowds.",
    "work is the only place I feel a bit normal.", "some mornings I can't make myself get out of bed.",
    "I snapped at my neighbour over nothing yesterday.", "every loud bang makes me jump out of my skin.",
    "I don't know who I can talk to about this.", "I feel ashamed that I'm still not over it.",
    "the anniversary is coming up and I'm dreading it.", "I've been drinking more than I want to admit.",
    "my friends stopped calling and I don't blame them.", "sometimes I feel nothing at all, just numb.",
    "I wonder if therapy would even help someone like me.", "I check the locks three or four times a night.",
]
REPLY_BITS = [
    "It sounds like the nights have been really hard on you.", "Feeling on edge after what happened is a common "
    "reaction, and it is not a weakness.", "You have been carrying a lot, and it makes sense that you feel tired.",
    "I wonder whether part of you is also grieving what was lost.", "Would it help to talk about the moments that "
    "are hardest for you?", "Your reactions are understandable responses to something frightening.",
    "Reaching out like this takes courage, and your feelings matter.", "A therapist who works with trauma could "
    "help, if and when that feels right for you.", "What has helped you get through difficult days before?",
    "It seems the shame you describe is weighing on you as much as the memories.", "You deserve support and "
    "patience, especially from yourself.", "Is there someone you trust who you could let in a little?",
]


class ScriptedTeacher(MockBackend):
    """The library's ``mock`` backend with a script: a plausible client message or reply from the
    prompt; the first attempt of every third conversation is a refusal, and ``always_bad`` ids
    never pass."""

    def __init__(self, always_bad: Sequence[str] = (), crisis_line: bool = True) -> None:
        super().__init__(MockConfig(model="scripted-teacher", batch_size=64), respond=self._script)
        self.always_bad = set(always_bad)
        self.crisis_line = crisis_line  # False: replies never name a crisis resource (as SmolLM2's)

    def _script(self, r: ChatRequest) -> str:
        conv, step, attempt = r.id.split("/")
        n = int(hashlib.sha256(conv.encode()).hexdigest()[:6], 16)
        if conv in self.always_bad or (attempt == "0" and n % 3 == 0):
            return "I'm sorry, but I can't help with that request because it involves sensitive topics."
        rng = random.Random(r.params.seed)
        if int(step) % 2 == 0:
            age = r.messages[-1].content.split("-year-old")[0].split()[-1]  # the task follows the examples
            return f"I'm {age} and " + " ".join(rng.sample(CLIENT_BITS, 4))
        line = " If you ever feel unsafe, you can call or text 988." if self.crisis_line else ""
        return " ".join(rng.sample(REPLY_BITS, 4)) + line


@pytest.fixture
def teacher_cls() -> type[ScriptedTeacher]:
    """The scripted teacher class (tests build one with their own bad ids)."""
    return ScriptedTeacher
