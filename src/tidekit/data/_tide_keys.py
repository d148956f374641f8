"""The TIDE reader's vocabulary: the key aliases it accepts and how keys are compared.

The published TIDE files do not fix their key names, so the reader matches keys against these
alias lists after :func:`_norm` (lower case, runs of other characters as one ``_``). Adding an
alias a new release uses is one edit here; the persona and conversation readers
(``_tide_persona``, ``_tide_conversations``) only look names up.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from tidekit.data._flat import _SPLIT_ALIASES

MAX_TEXT_CHARS = 20_000
_MAX_DEPTH = 4  # how deep the reader looks for conversations or metadata blocks

# key aliases, compared after _norm (lower case, runs of other characters as one '_')
CLIENT_KEYS = ("person", "client", "user_input", "user", "patient", "human", "seeker", "client_message",
               "person_message", "user_message", "client_text", "person_text", "client_input",
               "client_utterance", "client_statement", "user_query", "person_input", "input")
SUPPORTER_KEYS = ("chatbot", "assistant", "reference_response", "response", "supporter", "bot", "ai",
                  "chatbot_response", "ai_response", "assistant_response", "reference_reply", "reference",
                  "reply", "model_response", "bot_response", "supporter_response", "therapist", "gpt",
                  "model_output", "output")
TURN_LIST_KEYS = ("turns", "messages", "dialogue", "dialog", "conversation", "utterances", "exchange")
ROLE_KEYS = ("role", "speaker", "from", "author")
TEXT_KEYS = ("text", "content", "message", "utterance", "value")
SCENARIO_ID_KEYS = ("scenario_id", "scenario_key")
SCENARIO_KEYS = ("scenario", "emotional_scenario", "scenario_name", "scenario_title", "scenario_label",
                 "scenario_description", "category", "scenario_type", "scenario_category", "emotion",
                 "emotion_category", "topic", "situation", "theme")
CONV_ID_KEYS = ("conversation_id", "id", "conv_id")
CONTAINER_KEYS = ("conversations", "dialogues", "dialogs", "data", "items", "records", "pairs", "conversation")
SPLIT_ALIASES = _SPLIT_ALIASES
_CLIENT_ROLES = {*CLIENT_KEYS, "speaker"}
_SUPPORTER_ROLES = {*SUPPORTER_KEYS, "listener", "system_response", "model", "counselor", "counsellor"}

# persona field -> metadata names that may hold it (after _norm; a nested block's name is
# joined to its key, so {"trauma": {"type": ...}} is 'trauma_type'). Typed fields of Persona
# first, then the canonical attribute keys. Order is priority: the first name found wins.
PERSONA_KEYS: dict[str, tuple[str, ...]] = {
    "age": ("age", "client_age", "age_years", "age_in_years", "current_age", "persona_age", "demographics_age"),
    "age_group": ("age_group", "age_range", "age_band", "age_bracket", "age_category", "age_cohort"),
    "gender": ("gender", "sex", "gender_identity", "client_gender", "persona_gender"),
    "trauma_type": ("trauma_type", "trauma", "index_trauma", "trauma_category", "type_of_trauma", "primary_trauma",
                    "trauma_kind", "trauma_name", "trauma_event", "trauma_event_type", "traumatic_event"),
    "behaviors": ("behaviors", "behaviours", "behavior", "behaviour", "exhibited_behaviors", "exhibited_behaviours",
                  "trauma_related_behaviors", "trauma_related_behaviours", "behaviors_exhibited",
                  "behaviours_exhibited", "behaviors_list", "behaviours_list", "trauma_behaviors",
                  "trauma_behaviours"),
    "education": ("education", "education_level", "educational_level", "highest_education", "educational_attainment",
                  "education_attainment", "level_of_education"),
    "co_occurring_condition": ("co_occurring_condition", "co_occurring_conditions", "cooccurring_condition",
                               "co_occurring", "comorbidity", "comorbidities", "comorbid_condition",
                               "comorbid_conditions", "co_morbidity", "co_occurring_disorder"),
}
TYPED_FIELDS = ("age", "age_group", "gender", "trauma_type", "behaviors")
ATTRIBUTE_FIELDS = ("education", "co_occurring_condition")
_ALIAS_FIELD = {alias: field for field, aliases in PERSONA_KEYS.items() for alias in aliases}
# nested metadata blocks the reader looks into: about the client themself (a block about a
# spouse or a perpetrator is not, so its 'age' stays where it is)
METADATA_BLOCKS = frozenset(("demographics", "demographic", "demographic_info", "demographic_information", "client",
                   "client_info", "client_profile", "client_information", "persona", "persona_info", "profile",
                   "personal", "personal_info", "personal_information", "personal_details", "basic_info",
                   "background", "details", "info", "metadata", "meta", "attributes", "trauma", "trauma_info",
                   "trauma_history", "trauma_details", "trauma_profile", "trauma_background", "clinical",
                   "clinical_info", "clinical_profile", "clinical_presentation", "presentation", "mental_health",
                   "diagnosis", "conditions", "symptoms", "behaviors", "behaviours", "age", "education",
                   "co_occurring", "trauma_information", "trauma_data"))
PERSONA_ID_KEYS = ("persona_id", "client_id", "id", "persona")


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def _norm_text(key: str) -> str:
    return _NON_ALNUM.sub("_", key.lower()).strip("_")


def _norm(key: object) -> str:
    """A key as compared with the aliases: lower case, runs of other characters as one '_'."""
    return _norm_text(str(key))


def _find(data: dict[str, Any], aliases: tuple[str, ...]) -> str | None:
    """The key of ``data`` matching the first alias (by priority), compared after _norm."""
    by_norm: dict[str, str] = {}
    for key in data:
        by_norm.setdefault(_norm(key), key)
    return next((by_norm[a] for a in aliases if a in by_norm), None)

def _role_of(name: str) -> str | None:
    name = _norm(name)
    if name in _CLIENT_ROLES:
        return "client"
    if name in _SUPPORTER_ROLES:
        return "supporter"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:80] or "unknown"
