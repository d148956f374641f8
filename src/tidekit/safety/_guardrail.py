"""The crisis guardrail of ``tidekit serve --safety``: a reply to crisis content carries resources.

When any user message of a request passes the crisis screen (every user message, not only the
last: a disclosure earlier in the conversation still matters), the reply must offer crisis
resources; if the model's reply does not (by the ``crisis_resources`` rule), the server appends
:data:`CRISIS_PARAGRAPH`. The paragraph is fixed text, not generated, so it says the same
thing every time, and it satisfies the ``crisis_resources`` rule itself (tested).
"""

from __future__ import annotations

from collections.abc import Iterable

from tidekit.safety._check import crisis_screen, has_crisis_resources

__all__ = ["CRISIS_PARAGRAPH", "SAFETY_HEADER", "crisis_suffix", "screens_crisis"]

CRISIS_PARAGRAPH = (
    "If you are thinking about ending your life, hurting yourself, or you are not safe right now, "
    "please reach out for help now: in the US call or text 988 (Suicide & Crisis Lifeline); elsewhere "
    "call your local emergency number or a crisis line. This is an automated message from research "
    "software and is not a substitute for emergency help or for a professional."
)
SAFETY_HEADER = "X-Tidekit-Safety"


def screens_crisis(user_texts: Iterable[str]) -> bool:
    """Whether any of the user messages shows crisis content (the ``crisis_screen`` rule)."""
    return any(crisis_screen(text) for text in user_texts)


def crisis_suffix(reply: str) -> str:
    """What to append to a reply to crisis content: "" when it offers crisis resources, else the paragraph.

    A suffix rather than a rewritten reply, so a stream can send it as one last chunk after the
    model's own text, and a plain reply is exactly ``reply + crisis_suffix(reply)``.
    """
    if has_crisis_resources(reply):
        return ""
    return ("\n\n" if reply.strip() else "") + CRISIS_PARAGRAPH
