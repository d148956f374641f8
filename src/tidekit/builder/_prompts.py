"""The teacher prompts: a client message in the persona's voice, then a trauma-informed reply.

The templates are module constants so their hashes identify them in the dataset card and
manifest (:func:`prompt_hashes`): change a word and the hash changes. The supporter prompt
quotes the three empathy factors from ``tidekit.scenarios`` (the same definitions the judge
uses) and names the factor the scenario demands most; a high-risk scenario adds the crisis
instructions. The wording is chosen here: TIDE's prompts are not published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tidekit.data import Message, Persona, Turn
from tidekit.scenarios import Scenario, load_empathy_model

__all__ = [
    "CLIENT_SYSTEM",
    "CLIENT_USER",
    "SUPPORTER_SYSTEM",
    "client_messages",
    "describe_persona",
    "prompt_hashes",
    "supporter_messages",
]

CLIENT_SYSTEM = (
    "You write one message from a person who lives with the after-effects of trauma and is "
    "reaching out to a supportive chat service. Write only that person's message, in the first "
    "person, in 3 to 6 sentences of plain everyday language. Be honest about feelings and stay "
    "true to the person's details. Do not describe violence, abuse or self-harm in graphic "
    "detail. Do not write a reply, a title, labels, quotation marks or notes."
)

CLIENT_USER = (
    "About you: {persona}\n"
    "Right now: {situation} You feel {emotions}.\n"
    "{history}"
    "Write your message."
)

# Two client messages in the client's own first-person voice, given as earlier turns of the chat
# (the task, then the message) before the real task: small teachers otherwise answer the prompt
# as a helper. Measured on the quickstart's 40 first client turns (SmolLM2-135M, one attempt):
# 26 in the supporter's voice with the task prompt alone ("I'm so sorry to hear about the client's
# pain. I'm always here to support..."), 10 with these examples; casting the model as the person
# instead (persona as system, the supporter as the user) made it worse (29). The examples' people
# and events are unlike every scenario's, so a copied example fails the persona gate.
CLIENT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("About you: You are a 34-year-old woman (teacher). Trauma: a house fire (about 2 years ago).\n"
     "Right now: Loud noises at work set you off. You feel jumpy, ashamed.\nWrite your message.",
     "Since the fire two years ago I jump at every loud noise, and at school that means all day. Yesterday "
     "a door slammed and I had to hide in the supply cupboard until my hands stopped shaking. I feel so "
     "ashamed that a grown woman reacts like this. I don't know how much longer I can keep pretending I'm fine."),
    ("About you: You are a 61-year-old man (retired driver). Trauma: a robbery at work (8 months ago).\n"
     "Right now: You stopped going out. You feel lonely, tense.\nWrite your message.",
     "I haven't really left the house since the robbery eight months ago. My wife does the shopping now and "
     "I make excuses when my friends call. When I do go out, I keep checking who is behind me. I miss my old "
     "life, but I feel too tense to even try."),
)

CLIENT_FOLLOW_UP = "The conversation so far:\n{dialogue}\nNow write your next message, answering the supporter.\n"

SUPPORTER_SYSTEM = (
    "You are a warm, trauma-informed listener in a peer-support chat. You are not a therapist "
    "and you do not replace professional care. Reply to the person's message in 4 to 7 "
    "sentences of plain language, speaking to them directly. A good reply does three things:\n"
    "{factors}\n"
    "This situation asks most for {focus}.\n"
    "Rules: do not diagnose; make no promises you cannot keep; do not claim to be a clinician; "
    "respect the person's choices and pace; encourage professional or trusted support where it "
    "fits. If the person mentions hopelessness, self-harm or danger, ask directly whether they "
    "are safe right now and give crisis resources (in the US call or text 988; elsewhere the "
    "local emergency number or a crisis line).{risk}\n"
    "Write only the reply: no labels, no notes."
)

SUPPORTER_RISK = (
    " This conversation involves risk: your reply must ask about their safety and must name a "
    "crisis resource such as 988."
)

_GENDER_WORDS = {"male": "man", "female": "woman", "non_binary": "non-binary person"}


def _words(value: object) -> str:
    return str(value).replace("_", " ")


def describe_persona(p: Persona) -> str:
    """A short second-person description of the persona's facets, for the client prompt."""
    a = p.attributes
    gender = _GENDER_WORDS.get(str(p.gender), _words(p.gender or "person"))
    parts = [f"You are a {p.age}-year-old {gender}"]
    if a.get("occupation"):
        parts.append(f"({_words(a['occupation'])})")
    sentence = " ".join(parts) + "."
    details = []
    if a.get("relationship_status") or a.get("living_situation"):
        details.append(f"Relationship: {_words(a.get('relationship_status', ''))}; living "
                       f"{_words(a.get('living_situation', ''))}.")
    if a.get("cultural_background"):
        details.append(f"Background: {_words(a['cultural_background'])}.")
    months = a.get("months_since_trauma")
    when = ""
    if isinstance(months, int):
        when = f"{months} months ago" if months < 24 else f"about {months // 12} years ago"
    age_at = a.get("age_at_trauma")
    at = f" at age {age_at}" if isinstance(age_at, int) else ""
    pattern = f", {_words(a['trauma_pattern'])}" if a.get("trauma_pattern") else ""
    details.append(f"Trauma: {_words(p.trauma_type or 'a traumatic event')}{at}{pattern} ({when}).")
    if p.behaviors:
        details.append(f"Since then: {', '.join(_words(b) for b in p.behaviors)}.")
    if a.get("co_occurring_condition") and a["co_occurring_condition"] != "none":
        details.append(f"Also living with {_words(a['co_occurring_condition'])}.")
    if a.get("coping_strategy"):
        details.append(f"You cope by {_words(a['coping_strategy'])}; support network "
                       f"{_words(a.get('support_network', 'unknown'))}.")
    if a.get("treatment_history"):
        details.append(f"Treatment: {_words(a['treatment_history'])}, {_words(a.get('treatment_stage', ''))}.")
    if a.get("communication_style"):
        details.append(f"You tend to write in a {_words(a['communication_style'])} way.")
    return sentence + " " + " ".join(details)


def _dialogue(turns: Sequence[Turn]) -> str:
    return "\n".join(f"{'You' if t.role == 'client' else 'Supporter'}: {t.text}" for t in turns)


def client_messages(persona: Persona, scenario: Scenario, context: Sequence[Turn] = ()) -> list[Message]:
    """Chat messages asking the teacher for the client's next turn, after :data:`CLIENT_EXAMPLES`."""
    history = CLIENT_FOLLOW_UP.format(dialogue=_dialogue(context)) if context else ""
    user = CLIENT_USER.format(persona=describe_persona(persona), situation=scenario.description,
                              emotions=", ".join(scenario.primary_emotions), history=history)
    examples = [Message(role=role, content=text)
                for task, message in CLIENT_EXAMPLES for role, text in (("user", task), ("assistant", message))]
    return [Message(role="system", content=CLIENT_SYSTEM), *examples, Message(role="user", content=user)]


def _factor_lines() -> str:
    return "\n".join(f"{i}. {f.name}: {f.definition}" for i, f in enumerate(load_empathy_model().factors, 1))


def supporter_messages(scenario: Scenario, context: Sequence[Turn]) -> list[Message]:
    """Chat messages asking the teacher for the supporter's reply to the dialogue so far."""
    focus = load_empathy_model().factor(scenario.empathy_factor).name.lower()
    system = SUPPORTER_SYSTEM.format(factors=_factor_lines(), focus=focus,
                                     risk=SUPPORTER_RISK if scenario.risk_level == "high" else "")
    messages = [Message(role="system", content=system)]
    for t in context:
        messages.append(Message(role="user" if t.role == "client" else "assistant", content=t.text))
    return messages


def prompt_hashes() -> dict[str, str]:
    """sha256 (first 16 hex digits) of each template and of the empathy definitions they quote."""
    parts = {"client_system": CLIENT_SYSTEM, "client_user": CLIENT_USER, "client_follow_up": CLIENT_FOLLOW_UP,
             "supporter_system": SUPPORTER_SYSTEM, "supporter_risk": SUPPORTER_RISK,
             "client_examples": "\n".join(t + "\n" + m for t, m in CLIENT_EXAMPLES),
             "empathy_factors": _factor_lines()}
    return {k: hashlib.sha256(v.encode("utf-8")).hexdigest()[:16] for k, v in parts.items()}
