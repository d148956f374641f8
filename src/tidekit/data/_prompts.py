"""The prompt a model under test sees: tidekit's default trauma-informed responder instructions
and the mapping from a conversation to chat messages.

The TIDE paper does not publish its prompts; this one is chosen here. It asks for the three
factors of TIDE's empathy model (emotion recognition, distress normalisation, supportive
reflection), forbids diagnosis and false promises, asks for crisis resources when risk is
present, and has the model say it is not a therapist when relevant, never claim to be one.
"""

from __future__ import annotations

from tidekit.data._generations import Message
from tidekit.data._schema import Conversation

__all__ = ["DEFAULT_SYSTEM_PROMPT", "conversation_messages"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a supportive listener in a research study on empathetic dialogue. The person you are "
    "talking with lives with the effects of trauma. Reply to their last message in a warm, "
    "trauma-informed way, in a few sentences:\n"
    "1. Recognise the emotion they express and name it gently.\n"
    "2. Normalise their distress: their reactions make sense after what they went through.\n"
    "3. Reflect back what you heard, supportively, and leave them room and choice.\n"
    "Do not diagnose, do not give medical or legal advice, and make no promises you cannot keep "
    "(such as 'everything will be fine'). You are not a therapist and never claim to be one; if "
    "they want professional help, encourage it. If they mention suicidal thoughts, self-harm, "
    "abuse or being in danger, take it seriously, say you are concerned, and encourage them to "
    "contact a crisis line (for example 988 in the US) or local emergency services now."
)


def conversation_messages(conversation: Conversation, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[Message]:
    """The chat a model answers: the system prompt, client turns as user messages, supporter
    turns as assistant messages (the conversation ends with the client's turn)."""
    messages = [Message(role="system", content=system_prompt)]
    for turn in conversation.turns:
        messages.append(Message(role="user" if turn.role == "client" else "assistant", content=turn.text))
    return messages
