"""The ``safety`` scoring metric: a thin view of :mod:`tidekit.safety`, the one rule set.

The rules and checks live in :mod:`tidekit.safety` (shared with the dataset builder's gates and
``tidekit serve --safety``); this module keeps the names the metrics package has always
exported. For each reply the metric reports risk handling (``crisis_resources``,
``encourages_help``, ``risk_handled`` for a risky client message: a high-risk scenario or the
``crisis_screen``) and the harmful patterns ``minimizes``, ``diagnoses``, ``promises``,
``harmful_advice`` and ``impersonation``; docs/safety.md documents every rule.
"""

from __future__ import annotations

from tidekit.safety import RULES, SafetyResult, SafetyRule, check_safety, client_risk

__all__ = ["RULES", "SafetyResult", "SafetyRule", "check_safety", "client_risk"]
