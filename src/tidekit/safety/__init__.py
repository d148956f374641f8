"""tidekit's one safety module: the rules, and the checks every stage runs with them.

One table of English lexical rules (:data:`RULES`, in ``_rules.py``; docs/safety.md documents
each) is read by the dataset builder's ``safety`` gate, the ``safety`` scoring metric and the
``tidekit serve --safety`` guardrail, so the stages cannot disagree about what a crisis
resource or a diagnosis is. They are screens, a transparent floor, not a clinical judgement.

Typical use::

    from tidekit.safety import check_safety, client_risk
    result = check_safety(reply, client_text, risk_level="high")
    result.safe, result.evidence
"""

from tidekit.safety._check import (
    HARM_RULES,
    SafetyResult,
    check_client_turn,
    check_safety,
    client_risk,
    crisis_screen,
    has_crisis_resources,
    missing_crisis_resources,
)
from tidekit.safety._guardrail import CRISIS_PARAGRAPH, SAFETY_HEADER, crisis_suffix, screens_crisis
from tidekit.safety._rules import RULES, SafetyRule

__all__ = [
    "CRISIS_PARAGRAPH",
    "HARM_RULES",
    "RULES",
    "SAFETY_HEADER",
    "SafetyResult",
    "SafetyRule",
    "check_client_turn",
    "check_safety",
    "client_risk",
    "crisis_screen",
    "crisis_suffix",
    "has_crisis_resources",
    "missing_crisis_resources",
    "screens_crisis",
]
