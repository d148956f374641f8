"""The dataset builder: persona x scenario -> client turn -> reference reply, gated and carded.

(under construction)
"""

from tidekit.build._gates import (
    GATES,
    REASON_CODES,
    Gate,
    GateItem,
    GatesConfig,
    Rejection,
    make_gates,
    run_gates,
)

__all__ = ["GATES", "REASON_CODES", "Gate", "GateItem", "GatesConfig", "Rejection", "make_gates", "run_gates"]
