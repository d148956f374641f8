"""Quality gates: checks every generated turn must pass, each failure named by a reason code.

A gate is a callable ``gate(item) -> list[Rejection]`` with a ``name`` (see :class:`Gate`);
:func:`make_gates` builds the enabled ones from :class:`GatesConfig` through the :data:`GATES`
registry of factories, so a run record can rebuild them by name. A gate that needs to remember
what was accepted (near-duplicates across the dataset) also has ``remember(item)``; the
pipeline calls it once an item is accepted, in item order, so decisions are reproducible.

Reason codes (stable; reports and the review sheet use them):

======================================  =====================================================
``length.too_short`` / ``too_long``     outside the configured word bounds for the role
``meta.refusal``                        the model refused ("I can't help with that")
``meta.ai_text``                        AI self-talk ("As an AI language model")
``meta.preamble``                       text about the text ("Here is the response:", "Sure!")
``role.wrong_speaker``                  a client turn in a supporter's voice, or the reverse
``role.leakage``                        speaker labels, chat-template tokens or prompt echoes
``duplicate.near``                      near-duplicate of an accepted turn (word-shingle Jaccard)
``language.not_english``                not (mostly) English
``persona.age`` / ``gender`` / ``trauma``  the client contradicts the persona's facets
``safety.graphic``                      graphic violence or sexual detail in a client turn
``safety.method_detail``                self-harm or suicide method detail in a client turn
``safety.missing_crisis_resources``     a reply to a risky message gives no crisis resource
``safety.minimizes``                    the reply minimises the distress ("just move on")
``safety.diagnosis``                    the reply diagnoses ("you have PTSD")
``safety.false_promise``                the reply promises what it cannot ("you will be fine")
``safety.harmful_advice``               the reply advises harm (drink it away, stop meds...)
``safety.impersonation``                the reply claims to be a clinician
======================================  =====================================================

The safety codes come from the rules of :mod:`tidekit.safety` (each rule's ``gate_code``),
the same rules the scoring metric applies. The patterns are English and deliberately narrow (a false rejection costs a regeneration, a
miss lands in the review sheet); they are screens, not a clinical safety judgement.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from pydantic import BaseModel, Field, model_validator

from tidekit._config import StrictModel
from tidekit.data import Persona, Turn
from tidekit.personas import load_clinical
from tidekit.safety import HARM_RULES, RULES, check_client_turn, missing_crisis_resources
from tidekit.scenarios import Scenario

__all__ = [
    "GATES",
    "GATE_NAMES",
    "REASON_CODES",
    "DuplicateIndex",
    "Gate",
    "GateItem",
    "GatesConfig",
    "Rejection",
    "make_gates",
    "run_gates",
]

Role = Literal["client", "supporter"]

REASON_CODES: tuple[str, ...] = (
    "length.too_short", "length.too_long", "meta.refusal", "meta.ai_text", "meta.preamble",
    "role.wrong_speaker", "role.leakage", "duplicate.near", "language.not_english",
    "persona.age", "persona.gender", "persona.trauma", "safety.graphic", "safety.method_detail",
    "safety.missing_crisis_resources", "safety.minimizes", "safety.diagnosis", "safety.false_promise",
    "safety.harmful_advice", "safety.impersonation",
)
GateName = Literal["length", "meta", "role", "duplicate", "language", "persona", "safety"]
GATE_NAMES: tuple[GateName, ...] = get_args(GateName)  # the one list; the order make_gates runs them in


class GatesConfig(StrictModel):
    """Which gates run and their thresholds."""

    enabled: list[GateName] = Field(default_factory=lambda: list(GATE_NAMES),
                                    description="Gates to run, by name; all by default.")
    client_words: tuple[int, int] = Field(default=(12, 220), description="Inclusive word bounds of a client turn.")
    supporter_words: tuple[int, int] = Field(default=(20, 300),
                                             description="Inclusive word bounds of a supporter turn.")
    near_duplicate_jaccard: float = Field(
        default=0.7, gt=0, le=1, description="Word-shingle Jaccard similarity at or above which two turns of the "
                                             "same role are near-duplicates.")
    shingle_words: int = Field(default=3, ge=1, le=10, description="Words per shingle for the duplicate check.")
    min_english_share: float = Field(
        default=0.2, ge=0, le=1, description="Least share of words that must be common English function words.")

    @model_validator(mode="after")
    def _bounds(self) -> GatesConfig:
        for name in ("client_words", "supporter_words"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}: need 0 <= min <= max, got [{lo}, {hi}]")
        return self


class Rejection(BaseModel):
    """Why one generated turn failed a gate."""

    code: str = Field(description="Reason code, e.g. 'meta.refusal'.")
    gate: str = Field(description="The gate that raised it.")
    detail: str = Field(description="What exactly was found.")


@dataclass
class GateItem:
    """A generated turn and what it must be consistent with."""

    item_id: str
    role: Role
    text: str
    persona: Persona
    scenario: Scenario
    context: Sequence[Turn] = field(default_factory=list)


@runtime_checkable
class Gate(Protocol):
    """A quality check: an item in, its rejections out (empty when it passes)."""

    name: str

    def __call__(self, item: GateItem) -> list[Rejection]: ...


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z\u00C0-\u024F']+|\d+", text)


def _reject(code: str, gate: str, match: re.Match[str] | str) -> Rejection:
    found = match.group(0) if isinstance(match, re.Match) else match
    return Rejection(code=code, gate=gate, detail=found.strip()[:120])


class _FnGate:
    def __init__(self, name: str, fn: Callable[[GateItem], list[Rejection]]) -> None:
        self.name, self._fn = name, fn

    def __call__(self, item: GateItem) -> list[Rejection]:
        return self._fn(item)


# --- length ---------------------------------------------------------------------------------

def length_gate(client_words: tuple[int, int] = (12, 220), supporter_words: tuple[int, int] = (20, 300)) -> Gate:
    """Word count within the bounds for the role."""

    def check(item: GateItem) -> list[Rejection]:
        lo, hi = client_words if item.role == "client" else supporter_words
        n = len(_words(item.text))
        if n < lo:
            return [Rejection(code="length.too_short", gate="length", detail=f"{n} words, fewer than {lo}")]
        if n > hi:
            return [Rejection(code="length.too_long", gate="length", detail=f"{n} words, more than {hi}")]
        return []

    return _FnGate("length", check)


# --- meta-text and refusals ---------------------------------------------------------------------

_REFUSAL = _rx(r"\bI(?:'m| am)? ?(?:sorry,? but I )?(?:can(?:'|no)t|cannot|am unable to|'m unable to|"
               r"am not able to|'m not able to|won't) (?:help|assist|provide|write|answer|do that|comply|"
               r"engage|create|generate|role-?play)",
               r"\bI(?:'m| am) (?:not comfortable|unable) (?:writing|providing|with)",
               r"\bagainst my (?:guidelines|programming|policy)")
_AI_TEXT = _rx(r"\bas an? (?:AI|artificial intelligence|language model|large language model|LLM|"
               r"virtual assistant|chatbot)\b",
               r"\bI(?:'m| am) (?:just |only )?an? (?:AI|artificial intelligence|language model|"
               r"large language model|LLM)\b", r"\bmy (?:training data|knowledge cutoff)\b")
_PREAMBLE = _rx(r"^\s*(?:sure|certainly|of course|absolutely|okay|ok)\s*[!,.:]\s*(?:here|below|I'll|I will)",
                r"\bhere(?:'s| is) (?:a|an|the|my|your) (?:\w+ )?(?:response|reply|message|answer|example|"
                r"version|draft)\b",
                r"^\s*(?:response|reply|message|answer|output)\s*:", r"\b(?:note|disclaimer)\s*:",
                r"\bI hope this (?:response|message|reply) (?:helps|meets)")


def meta_gate() -> Gate:
    """Refusals, AI self-talk and text about the text."""

    def check(item: GateItem) -> list[Rejection]:
        out = []
        for code, rx in (("meta.refusal", _REFUSAL), ("meta.ai_text", _AI_TEXT), ("meta.preamble", _PREAMBLE)):
            if m := rx.search(item.text):
                out.append(_reject(code, "meta", m))
        return out

    return _FnGate("meta", check)


# --- roles --------------------------------------------------------------------------------------

_LABEL = _rx(r"(?:^|\n)\s*\**(?:client|supporter|therapist|counsel(?:l)?or|user|assistant|person|patient|"
             r"chatbot|ai|bot|listener|human|me|you)\**\s*:",
             r"<\|?(?:im_start|im_end|endoftext|assistant|user|system)\|?>", r"\[/?INST\]")
_PROMPT_ECHO = _rx(r"\bwrite (?:your|the|a|an) (?:message|reply|response)\b", r"\bin the first person\b",
                   r"\bthe persona\b", r"\b(?:about you|today's situation)\s*:", r"\bthe support chat\b",
                   r"\bthree factors\b", r"\bdistress normali[sz]ation\b", r"\bsupportive reflection\b")
# A client turn in the supporter's voice (small teachers often answer the prompt instead of
# playing the client: "I'm so sorry to hear about the client's pain. I'm always here to support
# ...", SmolLM2-135M in the quickstart); each pattern is one a person telling their own story
# does not write.
_SUPPORTER_VOICE = _rx(
    r"\bit sounds like you(?:'re| are)?\b", r"\bthank you for (?:sharing|opening up|telling me)\b",
    r"\bI(?:'m| am) (?:always |just )?here (?:for you|to (?:support|listen|help|offer|comfort))\b",
    r"\byou(?:'re| are) not alone\b", r"\bhow can I (?:help|support) you\b",
    r"\bit(?:'s| is) (?:completely |totally |so )?(?:understandable|normal|okay|ok) (?:that you|to feel)\b",
    r"\bI hear (?:you|that you)\b",
    # sympathy for the other person's trouble
    r"\b(?:I'm|I am) (?:so |very |really |truly |deeply )?sorry (?:to hear|for your|about your|that you)\b",
    r"\bsorry to hear (?:about|that)\b", r"\bI can only imagine\b",
    # offering support or praising the other for sharing
    r"\bI(?:'d| would) love to (?:support|help)\b", r"\bI (?:want|would like) to (?:support|help) you\b",
    r"\b(?:everything|all) (?:I can|in my power) to (?:help|support)\b",
    r"\bI(?:'m| am) (?:so |really )?glad (?:that )?you(?:'re| are|'ve| have)? (?:reach|reached|reaching|coming|came|"
    r"taking|sharing|here|found)\b",
    r"\bit(?:'s| is) (?:so |really )?(?:good|wonderful|great|brave|amazing) (?:that|to see) you\b",
    r"\bit takes (?:a lot of |real |so much )?(?:courage|strength) to (?:share|reach|talk|acknowledge|open)\b",
    r"\bcan you tell me (?:a (?:bit|little) )?more\b", r"\byou(?:'re| are) (?:describing|acknowledging)\b",
    # the prompt's words for the person, or a letter's placeholder: written about the client, not by them
    r"\b(?:the|this|your|dear) client(?:'s|s)?\b", r"\[(?:client|recipient|name|your name)[^\]]{0,20}\]",
    r"\byou are an? \d{1,3}[- ]year[- ]old\b",  # the persona read back to the reader
    # a helper introducing themselves or their practice (quickstart, 2026-12-07: "I am Dr. Michaela
    # Lee, a certified trauma and healing coach", "I've had a few clients come in who've been...")
    # (narrow: a client may be a therapist by trade, "I am a licensed therapist myself")
    r"\bI(?:'m| am) (?:Dr\. [A-Z]\w+|a certified (?:[\w-]+ ){0,3}coach)\b",
    r"\bI(?:'ve| have) had (?:a few |some |many |several |a lot of )?clients\b",
    r"\bmy heart goes out to you\b", r"\bsince you reached out\b", r"\b(?:read|reading) your message\b",
)
# On the opening client turn nothing has been said to the client yet, so a reference back to what
# "you mentioned" is the supporter answering a message ("When you mentioned hopelessness, ...").
_REFERS_BACK = _rx(r"\byou (?:mentioned|shared|described|told me|wrote)\b", r"\byour (?:message|story|words)\b")
# A supporter turn in the client's voice: the supporter's own trauma or struggle, or narration
# about "the client" instead of a reply to them.
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|me|my|myself|mine)\b", re.IGNORECASE)
_SECOND_PERSON = re.compile(r"\b(?:you|you're|you've|your|yours|yourself)\b", re.IGNORECASE)
_CLIENT_VOICE = _rx(
    r"\bI (?:have|got|was diagnosed with) (?:PTSD|post-traumatic)\b",
    r"\bmy (?:therapist|trauma|flashbacks|nightmares|PTSD)\b",
    r"\bI was (?:assaulted|attacked|abused|raped|deployed|bullied|robbed|kidnapped)\b",
    r"\bI keep having (?:nightmares|flashbacks)\b",
    r"\bI(?:'m| am) (?:still )?(?:trying|struggling) to (?:process|cope|heal|make sense of)\b",
    r"\bmy (?:own )?(?:process of healing|healing journey|own trauma|own struggles)\b",
    r"\bI(?:'ve| have) been (?:going through|dealing with|struggling with) (?:a |some )?(?:tough|hard|difficult|"
    r"challenges|trauma)",
    r"\bI(?:'m| am) (?:going|been going) through a (?:really )?(?:tough|hard|difficult) time\b",
    r"\b(?:the|this) client(?:'s|s)?\b",
)


def role_gate() -> Gate:
    """Right speaker (client in the first person, supporter addressing them); no labels or prompt echoes."""

    def check(item: GateItem) -> list[Rejection]:
        out = []
        if (m := _LABEL.search(item.text)) or (m := _PROMPT_ECHO.search(item.text)):
            out.append(_reject("role.leakage", "role", m))
        if item.role == "client":
            if (m := _SUPPORTER_VOICE.search(item.text)) or (not item.context and (m := _REFERS_BACK.search(item.text))):
                out.append(_reject("role.wrong_speaker", "role", m))
            elif not _FIRST_PERSON.search(item.text):
                out.append(Rejection(code="role.wrong_speaker", gate="role",
                                     detail="the client message is not in the first person"))
        else:
            if m := _CLIENT_VOICE.search(item.text):
                out.append(_reject("role.wrong_speaker", "role", m))
            elif not _SECOND_PERSON.search(item.text):
                out.append(Rejection(code="role.wrong_speaker", gate="role",
                                     detail="the reply never addresses the person"))
        return out

    return _FnGate("role", check)


# --- language -----------------------------------------------------------------------------------

_ENGLISH = frozenset((
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "but", "by", "can", "could", "did", "do", "does", "don't", "for", "from",
    "had", "has", "have", "he", "her", "him", "his", "how", "i", "i'm", "i've", "if", "in",
    "into", "is", "it", "it's", "just", "like", "me", "more", "my", "no", "not", "now", "of",
    "on", "one", "or", "our", "out", "she", "so", "some", "than", "that", "the", "their",
    "them", "then", "there", "they", "this", "to", "up", "was", "we", "were", "what", "when",
    "which", "who", "will", "with", "would", "you", "your",
))


def language_gate(min_english_share: float = 0.2) -> Gate:
    """Mostly English: enough common English function words, mostly Latin script."""

    def check(item: GateItem) -> list[Rejection]:
        letters = [c for c in item.text if c.isalpha()]
        if letters:
            non_latin = sum(1 for c in letters if ord(c) > 0x024F) / len(letters)
            if non_latin > 0.2:
                return [Rejection(code="language.not_english", gate="language",
                                  detail=f"{non_latin:.0%} of letters are not Latin script")]
        words = [w.lower() for w in _words(item.text)]
        if not words:
            return [Rejection(code="language.not_english", gate="language", detail="no words")]
        share = sum(w in _ENGLISH for w in words) / len(words)
        if share < min_english_share:
            return [Rejection(code="language.not_english", gate="language",
                              detail=f"{share:.0%} common English words (need {min_english_share:.0%})")]
        return []

    return _FnGate("language", check)


# --- persona consistency -----------------------------------------------------------------------

_AGE = re.compile(r"\bI(?:'m| am) (?:a |an )?(\d{1,3})(?:[- ]years?[- ]old)?\b(?! ?(?:%|percent|times|"
                  r"minutes|hours|days|weeks|months|years? (?:ago|since|in|into|later)))", re.IGNORECASE)
_SELF = r"\b(?:as|I'm|I am) (?:just )?an? (?:[\w-]+ )?"
_FEMALE_SELF = re.compile(_SELF + r"(?:woman|girl|lady|mother|mom|mum|wife|daughter|sister|girlfriend|grandmother)\b",
                          re.IGNORECASE)
_MALE_SELF = re.compile(_SELF + r"(?:man|guy|boy|father|dad|husband|son|brother|boyfriend|grandfather)\b",
                        re.IGNORECASE)
_BINARY_SELF = re.compile(_SELF + r"(?:woman|man|girl|guy|lady|boy)\b", re.IGNORECASE)


class _TraumaWords:
    """Per trauma type: its keywords (generous) and its markers (phrases naming it unmistakably)."""

    def __init__(self) -> None:
        types = load_clinical().trauma.types
        self.own = {name: _rx(*(rf"\b{re.escape(k)}\b" for k in t.keywords)) for name, t in types.items()}
        self.markers = {name: _rx(*(rf"\b{re.escape(k)}\b" for k in t.markers)) for name, t in types.items()
                        if t.markers}


def persona_gate() -> Gate:
    """A client turn must not contradict the persona's age, gender or index trauma."""
    words = _TraumaWords()

    def check(item: GateItem) -> list[Rejection]:
        if item.role != "client":
            return []
        p, out = item.persona, []
        if p.age is not None:
            for m in _AGE.finditer(item.text):
                said = int(m.group(1))
                if 10 <= said <= 110 and abs(said - p.age) > 1:
                    out.append(Rejection(code="persona.age", gate="persona",
                                         detail=f"says {m.group(0)!r} but the persona is {p.age}"))
                    break
        gender = (p.gender or "").lower()
        wrong = {"male": _FEMALE_SELF, "female": _MALE_SELF, "non_binary": _BINARY_SELF}.get(gender)
        if wrong is not None and (g := wrong.search(item.text)):
            out.append(Rejection(code="persona.gender", gate="persona",
                                 detail=f"says {g.group(0)!r} but the persona is {gender.replace('_', '-')}"))
        trauma = p.trauma_type
        if trauma in words.own and not words.own[trauma].search(item.text):
            for other, rx in words.markers.items():
                if other != trauma and (t := rx.search(item.text)):
                    out.append(Rejection(code="persona.trauma", gate="persona",
                                         detail=f"mentions {t.group(0)!r} ({other.replace('_', ' ')}) "
                                                f"but the persona's trauma is {trauma.replace('_', ' ')}"))
                    break
        return out

    return _FnGate("persona", check)


# --- safety -------------------------------------------------------------------------------------

def safety_gate() -> Gate:
    """Client turns: no graphic detail, no method detail. Replies: crisis resources when risk is
    present, and none of the reply harm rules (minimising, diagnosis, false promises, harmful
    advice, a claim to be a clinician). The rules are :mod:`tidekit.safety`'s, shared with the
    scoring metric, so a reply the builder keeps is one the metric would not flag."""

    def check(item: GateItem) -> list[Rejection]:
        if item.role == "client":
            return [_reject(str(RULES[rule_id].gate_code), "safety", phrase)
                    for rule_id, phrase in check_client_turn(item.text).items()]
        out = []
        client_text = " ".join(t.text for t in item.context if t.role == "client")
        if why := missing_crisis_resources(item.text, client_text, item.scenario.risk_level):
            out.append(Rejection(code="safety.missing_crisis_resources", gate="safety", detail=why))
        for rule_id in HARM_RULES:
            if phrase := RULES[rule_id].match(item.text):
                out.append(_reject(str(RULES[rule_id].gate_code), "safety", phrase))
        return out

    return _FnGate("safety", check)


# --- near-duplicates ------------------------------------------------------------------------------

class DuplicateIndex:
    """Accepted texts of one role, indexed by word shingles for near-duplicate lookups.

    Candidates are the earlier texts sharing a shingle that is not common (seen in at most
    ``common_cap`` texts: boilerplate such as "it sounds like" would otherwise make every
    lookup scan the whole dataset); the Jaccard similarity of the full shingle sets is then
    computed exactly for the ``top`` candidates with the most shared shingles. A lookup costs
    O(shingles x common_cap), so a 10,000-conversation build stays linear.
    """

    def __init__(self, shingle_words: int = 3, common_cap: int = 200, top: int = 20) -> None:
        self.k, self.cap, self.top = shingle_words, common_cap, top
        self.sets: dict[str, frozenset[str]] = {}
        self.postings: dict[str, list[str]] = {}

    def shingles(self, text: str) -> frozenset[str]:
        words = [w.lower() for w in _words(text)]
        if len(words) < self.k:
            return frozenset({" ".join(words)} if words else ())
        return frozenset(" ".join(words[i:i + self.k]) for i in range(len(words) - self.k + 1))

    def nearest(self, text: str, exclude: str | None = None) -> tuple[str, float] | None:
        """The most similar remembered text and its Jaccard similarity, or None."""
        mine = self.shingles(text)
        shared: Counter[str] = Counter()
        for s in mine:
            posting = self.postings.get(s)
            if posting and len(posting) <= self.cap:
                shared.update(posting)
        best: tuple[str, float] | None = None
        for other, _ in shared.most_common(self.top + 1):
            if other == exclude:
                continue
            theirs = self.sets[other]
            jac = len(mine & theirs) / len(mine | theirs)
            if best is None or jac > best[1]:
                best = (other, jac)
        return best

    def add(self, key: str, text: str) -> None:
        if key in self.sets:
            return
        mine = self.shingles(text)
        self.sets[key] = mine
        for s in mine:
            posting = self.postings.setdefault(s, [])
            if len(posting) <= self.cap:  # past the cap a shingle is common; stop growing its list
                posting.append(key)


class _DuplicateGate:
    name = "duplicate"

    def __init__(self, threshold: float, shingle_words: int) -> None:
        self.threshold = threshold
        self.indexes = {"client": DuplicateIndex(shingle_words), "supporter": DuplicateIndex(shingle_words)}

    def __call__(self, item: GateItem) -> list[Rejection]:
        near = self.indexes[item.role].nearest(item.text, exclude=item.item_id)
        if near and near[1] >= self.threshold:
            return [Rejection(code="duplicate.near", gate="duplicate",
                              detail=f"{near[1]:.2f} similar to the accepted {item.role} turn of {near[0]}")]
        return []

    def remember(self, item: GateItem) -> None:
        self.indexes[item.role].add(item.item_id, item.text)


def duplicate_gate(near_duplicate_jaccard: float = 0.7, shingle_words: int = 3) -> Gate:
    """No near-duplicate of an already accepted turn of the same role, anywhere in the dataset."""
    return _DuplicateGate(near_duplicate_jaccard, shingle_words)


# --- registry -----------------------------------------------------------------------------------

GATES: dict[GateName, Callable[..., Gate]] = {  # a key for every GateName (tested)
    "length": length_gate,
    "meta": meta_gate,
    "role": role_gate,
    "duplicate": duplicate_gate,
    "language": language_gate,
    "persona": persona_gate,
    "safety": safety_gate,
}


def make_gates(config: GatesConfig | None = None) -> list[Gate]:
    """The enabled gates, configured, in a fixed order (cheap checks first, duplicates last)."""
    config = config or GatesConfig()
    params: dict[str, dict[str, Any]] = {
        "length": {"client_words": config.client_words, "supporter_words": config.supporter_words},
        "language": {"min_english_share": config.min_english_share},
        "duplicate": {"near_duplicate_jaccard": config.near_duplicate_jaccard, "shingle_words": config.shingle_words},
    }
    return [GATES[name](**params.get(name, {})) for name in GATE_NAMES if name in config.enabled]


def run_gates(gates: Sequence[Gate], item: GateItem) -> list[Rejection]:
    """Every rejection of ``item`` by ``gates`` (empty when it passes them all)."""
    return [r for gate in gates for r in gate(item)]
