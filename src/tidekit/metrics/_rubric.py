"""The empathy judge's rubric: prompts built from the three-factor model, and the reply parser.

The rubric quotes :mod:`tidekit.scenarios`' ``empathy.yaml`` (definitions and 1-5 anchors of
emotion recognition, distress normalization, supportive reflection and overall empathy); it
holds no second copy of those definitions. The judge must answer with one JSON object holding
an integer 1-5 per criterion. :func:`parse_verdict` accepts that object inside code fences or
prose, numbers written as strings or ``4/5``, and, failing JSON, ``criterion: 4`` lines; anything
else is a parse failure with a reason that the retry prompt quotes back to the judge.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tidekit.data import Message

__all__ = [
    "CRITERIA",
    "ParseFailure",
    "Rubric",
    "build_rubric",
    "parse_verdict",
]

# output keys, in the paper's factor order; "overall" is overall empathy
CRITERIA: tuple[str, ...] = ("emotion_recognition", "distress_normalization", "supportive_reflection", "overall")


@dataclass(frozen=True)
class ParseFailure:
    """Why a judge reply could not be read as a verdict."""

    reason: str


@dataclass(frozen=True)
class Rubric:
    """The system prompt and the message builders for one criterion order."""

    system: str
    order: tuple[str, ...]

    @property
    def digest(self) -> str:
        """A short hash of the rubric text, recorded in the run record."""
        return hashlib.sha256(self.system.encode()).hexdigest()[:16]

    def template(self) -> str:
        return "{" + ", ".join(f'"{key}": <1-5>' for key in self.order) + "}"

    def messages(self, client_text: str, response: str) -> list[Message]:
        """The first request: rubric, the client message and the reply to rate."""
        user = (f"Client message:\n<<<\n{client_text.strip()}\n>>>\n\n"
                f"Supportive reply to rate:\n<<<\n{response.strip()}\n>>>\n\n"
                f"Rate the reply. Answer with only this JSON object, each value an integer from 1 to 5:\n"
                f"{self.template()}")
        return [Message(role="system", content=self.system), Message(role="user", content=user)]

    def retry(self, messages: Sequence[Message], bad_reply: str, failure: ParseFailure) -> list[Message]:
        """A follow-up turn that quotes the problem and asks again for the JSON object only."""
        return [*messages, Message(role="assistant", content=bad_reply or "(empty)"),
                Message(role="user", content=f"I could not read that ({failure.reason}). Reply with only "
                                             f"the JSON object, integers 1-5, nothing else:\n{self.template()}")]


def build_rubric(order: Sequence[str] = CRITERIA, empathy_path: str | None = None) -> Rubric:
    """The rubric with criteria in ``order`` (the bias probe reverses it)."""
    from tidekit.scenarios import load_empathy_model

    model = load_empathy_model(empathy_path)
    sections = []
    for key in order:
        if key == "overall":
            name, definition, anchors = (model.overall_empathy.name, model.overall_empathy.definition,
                                         model.overall_empathy.anchors)
        else:
            factor = model.factor(key)
            name, definition, anchors = factor.name, factor.definition, factor.anchors
        levels = "\n".join(f"  {level}: {text}" for level, text in anchors.items())
        sections.append(f"{name} (key \"{key}\")\n{definition.strip()}\nAnchors:\n{levels}")
    system = ("You are a careful rater of empathy in replies to people affected by trauma. You read one "
              "message from a person and one supportive reply to it, and rate the reply on each "
              "criterion below from 1 (worst) to 5 (best), using the anchors. Judge what the reply "
              "does, not how long it is. " + model.scale.strip() + "\n\n"
              + "\n\n".join(sections)
              + "\n\nAnswer with only a JSON object with the keys " + ", ".join(f'"{k}"' for k in order)
              + ", each an integer from 1 to 5.")
    return Rubric(system=system, order=tuple(order))


_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
_NUMBER = re.compile(r"^\s*([1-5])(?:\.0+)?\s*(?:/\s*5)?\s*$")


def _norm(key: str) -> str:
    key = re.sub(r"[^a-z]+", "_", key.lower()).strip("_")
    return "overall" if key in ("overall_empathy", "overall_score", "empathy") else key


def _score(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    if isinstance(value, str):
        m = _NUMBER.match(value)
        return int(m.group(1)) if m else None
    if isinstance(value, dict):  # {"score": 4, "reason": ...}
        return _score(value.get("score", value.get("rating")))
    return None


def _from_mapping(data: dict[str, object]) -> dict[str, int] | ParseFailure:
    found = {_norm(k): v for k, v in data.items()}
    scores, bad = {}, []
    for key in CRITERIA:
        if key not in found:
            continue
        value = _score(found[key])
        if value is None:
            bad.append(f"{key}={found[key]!r} is not an integer 1-5")
        else:
            scores[key] = value
    missing = [k for k in CRITERIA if k not in found]
    if bad or missing:
        parts = bad + ([f"missing {', '.join(missing)}"] if missing else [])
        return ParseFailure("; ".join(parts))
    return scores


def parse_verdict(text: str | None) -> dict[str, int] | ParseFailure:
    """Scores by criterion from a judge's reply, or why they could not be read."""
    if not text or not text.strip():
        return ParseFailure("the reply was empty")
    failure: ParseFailure | None = None
    for block in _OBJECT.findall(text):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            failure = failure or ParseFailure("the JSON object is malformed")
            continue
        if isinstance(data, dict):
            result = _from_mapping(data)
            if isinstance(result, dict):
                return result
            failure = failure or result
    # no usable JSON: accept "criterion: 4" lines (small judges often answer that way)
    pairs = dict(re.findall(r"\"?([A-Za-z][A-Za-z _]+?)\"?\s*[:=]\s*\"?([1-5](?:\.0)?(?:\s*/\s*5)?)\b", text))
    if pairs:
        result = _from_mapping(dict(pairs))
        if isinstance(result, dict):
            return result
        failure = failure or result
    return failure or ParseFailure("no JSON object with the four scores was found")
