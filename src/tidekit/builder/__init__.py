"""The dataset builder: persona x scenario -> client turn -> reference reply, gated and carded.

For each persona and scenario the teacher model writes the client's message in the persona's
voice, then a trauma-informed supportive reply following the three empathy factors. Every
turn passes quality gates (each failure has a reason code); a rejected turn is regenerated
with a new seed. Model calls go through the cached generation engine, so a killed build
resumes without recomputing anything. Outputs: the TIDE layout, JSONL and Parquet, a dataset
card, a rejection report and a review sheet for a clinician.

Typical use::

    from tidekit._config import load_config
    from tidekit.builder import BuildConfig, build_dataset, apply_review
    config = load_config(BuildConfig, "configs/build-quickstart.yaml")
    result = build_dataset(config)                          # ConfigError before any model call
    apply_review(result.out, "reviewed.csv")                # a clinician's decisions
"""

from tidekit.builder._build import BuildResult, build_dataset
from tidekit.builder._card import DatasetCard, render_card
from tidekit.builder._config import (
    BuildConfig,
    BuildPlan,
    RegenerationConfig,
    ScenarioSelection,
    plan_build,
)
from tidekit.builder._gates import (
    GATE_NAMES,
    GATES,
    REASON_CODES,
    DuplicateIndex,
    Gate,
    GateItem,
    GatesConfig,
    Rejection,
    make_gates,
    run_gates,
)
from tidekit.builder._pipeline import GenerationStats, RejectionRecord, generate_conversations
from tidekit.builder._prompts import (
    client_messages,
    describe_persona,
    prompt_hashes,
    supporter_messages,
)
from tidekit.builder._review import (
    DECISIONS,
    REVIEW_COLUMNS,
    ReviewResult,
    apply_review,
    review_sheet,
)
from tidekit.builder._stage import DATASET_STAGE, SPLIT_STAGE  # noqa: F401  (the study's stage specs)

__all__ = [
    "DECISIONS",
    "GATES",
    "GATE_NAMES",
    "REASON_CODES",
    "REVIEW_COLUMNS",
    "BuildConfig",
    "BuildPlan",
    "BuildResult",
    "DatasetCard",
    "DuplicateIndex",
    "Gate",
    "GateItem",
    "GatesConfig",
    "GenerationStats",
    "RegenerationConfig",
    "Rejection",
    "RejectionRecord",
    "ReviewResult",
    "ScenarioSelection",
    "apply_review",
    "build_dataset",
    "client_messages",
    "describe_persona",
    "generate_conversations",
    "make_gates",
    "plan_build",
    "prompt_hashes",
    "render_card",
    "review_sheet",
    "run_gates",
    "supporter_messages",
]
