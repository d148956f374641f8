"""The empathy judge's rubric: prompts built from the three-factor model, and the reply parser.

The rubric quotes :mod:`tidekit.scenarios`' ``empathy.yaml`` (definitions and 1-5 anchors of
emotion recognition, distress normalization, supportive reflection and overall empathy); it
holds no second copy of those definitions. The judge must answer with one JSON object holding
an integer 1-5 per criterion (:func:`verdict_schema` is that object's JSON schema, which
backends that can enforce it decode under). :func:`parse_verdict` reads that object inside code
fences or prose, numbers written as strings, ``4.0`` or ``4/5``, and, failing JSON,
``criterion: 4`` lines. It reads nothing it would have to guess at: a range or an echoed scale
(``1-5``, ``<1-5>``, ``1 to 5``), a non-integer (``4.5``), another fraction (``5/10``) or a number
off the scale (``0``, ``6``, ``10``) is a parse failure with a reason that the retry prompt
quotes back to the judge. :func:`expected_scores` turns the token probabilities at each
score's position into a probability-weighted (G-Eval style) score.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidekit.data import Message
from tidekit.scenarios import EMPATHY_FACTOR_IDS, load_empathy_model

if TYPE_CHECKING:
    from tidekit.backends import TokenLogprob

__all__ = [
    "CRITERIA",
    "SCALE",
    "ParseFailure",
    "Rubric",
    "build_rubric",
    "expected_scores",
    "parse_verdict",
    "verdict_schema",
]

# output keys, in the paper's factor order; "overall" is overall empathy
CRITERIA: tuple[str, ...] = (*EMPATHY_FACTOR_IDS, "overall")
SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)


def verdict_schema(order: Sequence[str] = CRITERIA) -> dict[str, Any]:
    """The JSON schema of a verdict: one integer of the scale per criterion, in ``order``."""
    return {"type": "object",
            "properties": {key: {"type": "integer", "enum": list(SCALE)} for key in order},
            "required": list(order), "additionalProperties": False}


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


_MALFORMED = "the JSON object is malformed"
_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
# one scale value, optionally "4.0" or "4/5" (the scale's own maximum), then at most words
# without digits ("4 (warm)"); "1-5", "1 to 5", "4.5", "5/10", "10" do not match
_VALUE = re.compile(r"^\s*([1-5])(?:\.0+)?(?:\s*/\s*5)?(?:\s+[^\d\s][^\d]*)?\s*$")
# "criterion: value" lines; the value runs to the end of the line (or a comma, semicolon, brace)
_LINE = re.compile(r"\"?([A-Za-z][A-Za-z _]+?)\"?\s*[:=]\s*([^,;\n{}]*)")


def _norm(key: str) -> str:
    key = re.sub(r"[^a-z]+", "_", key.lower()).strip("_")
    return "overall" if key in ("overall_empathy", "overall_score", "empathy") else key


def _score(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    if isinstance(value, str):
        m = _VALUE.match(value.strip().strip("\"'"))
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
        raw = found[key]
        value = _score(raw)
        if value is None:
            shown = raw.strip() if isinstance(raw, str) else raw
            bad.append(f"{key}={shown!r} is not an integer 1-5")
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
            failure = failure or ParseFailure(_MALFORMED)
            continue
        if isinstance(data, dict):
            result = _from_mapping(data)
            if isinstance(result, dict):
                return result
            failure = failure or result
    # no usable JSON: read "criterion: 4" lines (small judges often answer that way)
    pairs = {key: value for key, value in _LINE.findall(text) if _norm(key) in CRITERIA}
    if pairs:
        result = _from_mapping(dict(pairs))
        if isinstance(result, dict):
            return result
        if failure is None or failure.reason == _MALFORMED:  # e.g. the template echoed: say which values
            failure = result
    return failure or ParseFailure("no JSON object with the four scores was found")


def expected_scores(logprobs: Sequence[TokenLogprob], order: Sequence[str] = CRITERIA) -> dict[str, float] | None:
    """Probability-weighted score per criterion from a reply's token log-probabilities.

    For each criterion, the token holding its value in the reply (``"key": 4``) is found; the
    alternatives the backend listed at that position that spell a scale value (after the same
    prefix, e.g. a leading space) give p(1)..p(5), renormalised over the scale; the score is
    sum(k * p(k)) (G-Eval, Liu et al. 2023). None unless every criterion has one.
    """
    if not logprobs:
        return None
    text = "".join(lp.token for lp in logprobs)
    starts = []
    pos = 0
    for lp in logprobs:
        starts.append(pos)
        pos += len(lp.token)
    out: dict[str, float] = {}
    for key in order:
        m = re.search(r'"' + re.escape(key) + r'"\s*:\s*"?([1-5])(?![0-9.])', text)
        if not m:
            return None
        at = m.start(1)
        i = max(j for j, start in enumerate(starts) if start <= at)
        prefix = text[starts[i]:at]
        mass = {k: 0.0 for k in SCALE}
        for alt, logprob in logprobs[i].top:
            value = re.match(r"([1-5])(?![0-9.])", alt[len(prefix):]) if alt.startswith(prefix) else None
            if value:
                mass[int(value.group(1))] += math.exp(logprob)
        total = sum(mass.values())
        if total <= 0:
            return None
        out[key] = sum(k * p for k, p in mass.items()) / total
    return out
