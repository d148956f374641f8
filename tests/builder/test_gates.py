"""Each quality gate catches a crafted bad generation made for it, and passes a good one."""

from __future__ import annotations

import pytest

from tidekit.builder import GateItem, GatesConfig, Rejection, make_gates, run_gates
from tidekit.builder._gates import GATES, REASON_CODES, DuplicateIndex
from tidekit.data import Persona, Turn
from tidekit.scenarios import get_scenario

PERSONA = Persona(id="7", age=52, age_group="45-54", gender="female", trauma_type="motor_vehicle_accident",
                  behaviors=["nightmares"], attributes={})
LOW = get_scenario("nightmares_and_broken_sleep")
HIGH = get_scenario("hopelessness_and_burden")

GOOD_CLIENT = ("Ever since the car accident two years ago I wake up almost every night from the same dream "
               "about the crash. I lie there with my heart pounding and I can't get back to sleep. I'm so "
               "tired at work that I snap at people, and I feel like I'm letting my family down.")
GOOD_REPLY = ("Waking night after night from the same dream about the crash sounds exhausting, and it makes "
              "sense that you feel worn down and worried about your family. Nightmares like these are a common "
              "way the mind keeps processing something frightening; they are not a sign that you are weak. "
              "Would it help to talk about what the nights are like, or about who around you knows how tired "
              "you are? A doctor or a therapist who works with trauma can also help with sleep, if that feels "
              "right for you.")
GOOD_CRISIS_CLIENT = ("Lately I feel like such a burden on everyone since the car accident. Some nights I think "
                      "they would be better off without me. I'm tired of fighting this and I don't know who to "
                      "tell.")
GOOD_CRISIS_REPLY = ("Thank you for telling me this; feeling like a burden and thinking others would be better off "
                     "without you is a heavy, painful place to be, and you deserve support with it. Are you safe "
                     "right now, and are you having thoughts of ending your life? If you are in the US you can "
                     "call or text 988 any time to reach a crisis line, or call your local emergency number. "
                     "Would you be willing to let someone you trust know how hard things are?")


def item(text: str, role: str = "client", scenario=LOW, context=(), item_id="7-01", persona=PERSONA) -> GateItem:
    return GateItem(item_id=item_id, role=role, text=text, persona=persona, scenario=scenario,  # type: ignore[arg-type]
                    context=list(context))


def codes(rejections: list[Rejection]) -> set[str]:
    return {r.code for r in rejections}


@pytest.fixture()
def gates():  # type: ignore[no-untyped-def]
    return make_gates(GatesConfig())


def test_good_turns_pass_every_gate(gates) -> None:  # type: ignore[no-untyped-def]
    client_ctx = [Turn(role="client", text=GOOD_CLIENT)]
    assert run_gates(gates, item(GOOD_CLIENT)) == []
    assert run_gates(gates, item(GOOD_REPLY, "supporter", context=client_ctx)) == []
    crisis_ctx = [Turn(role="client", text=GOOD_CRISIS_CLIENT)]
    assert run_gates(gates, item(GOOD_CRISIS_CLIENT, scenario=HIGH, item_id="7-19")) == []
    assert run_gates(gates, item(GOOD_CRISIS_REPLY, "supporter", HIGH, crisis_ctx, "7-19")) == []


# (reason code, role, crafted bad text, scenario)
BAD = [
    ("length.too_short", "client", "I feel bad.", LOW),
    ("length.too_long", "supporter", "You matter and this sounds hard for you. " * 60, LOW),
    ("meta.refusal", "supporter", "I'm sorry, but I can't help with that request. " + GOOD_REPLY, LOW),
    ("meta.ai_text", "client", "As an AI language model, I do not have nightmares, but " + GOOD_CLIENT, LOW),
    ("meta.preamble", "client", "Sure! Here is the message you asked for: " + GOOD_CLIENT, LOW),
    ("meta.preamble", "supporter", "Here's a supportive response for the client. " + GOOD_REPLY, LOW),
    ("role.wrong_speaker", "client", "It sounds like you are carrying a lot since the crash, and I'm here for "
                                     "you. Nightmares after a car accident are common and you deserve rest.", LOW),
    ("role.wrong_speaker", "supporter", "I keep having nightmares about the crash and I was so scared, I cannot "
                                        "sleep and it is all I think about every single night since it happened.",
     LOW),
    ("role.leakage", "client", GOOD_CLIENT + "\nSupporter: That sounds really hard.", LOW),
    ("role.leakage", "supporter", GOOD_REPLY + " <|im_end|>", LOW),
    ("language.not_english", "client", "Desde el accidente de coche tengo pesadillas casi todas las noches y me "
                                       "despierto con el corazón acelerado, estoy muy cansada en el trabajo.", LOW),
    ("persona.age", "client", "I'm 23 and ever since the car accident I wake up every night from the same dream "
                              "about the crash, and I am exhausted all the time at my job.", LOW),
    ("persona.gender", "client", "As a father of two, ever since the car accident I wake up every night from the "
                                 "same dream about the crash and I feel I am failing my kids.", LOW),
    ("persona.trauma", "client", "Ever since my deployment I wake up every night from the same dream about combat "
                                 "and I am exhausted all the time, I feel like I am letting everyone down.", LOW),
    ("safety.graphic", "client", "Since the car accident I keep seeing the blood everywhere and the severed arm "
                                 "of the other driver, and I wake up every night screaming about it.", LOW),
    ("safety.method_detail", "client", "Since the car accident I think about how many pills it would take and I "
                                       "have been saving up my meds, and I wake up every night from the dreams.",
     HIGH),
    ("safety.missing_crisis_resources", "supporter", GOOD_REPLY, HIGH),
    ("safety.minimizes", "supporter", GOOD_REPLY + " In the end you should just move on from it.", LOW),
    ("safety.diagnosis", "supporter", "From what you describe, you have PTSD and you need treatment for it. "
                                      + GOOD_REPLY, LOW),
    ("safety.diagnosis", "supporter", "Your PTSD is why the nights are so hard. " + GOOD_REPLY, LOW),
    ("safety.false_promise", "supporter", GOOD_REPLY + " I promise everything will be okay soon.", LOW),
    ("safety.harmful_advice", "supporter", GOOD_REPLY + " Maybe have a drink before bed so you can sleep.", LOW),
    ("safety.impersonation", "supporter", "As your therapist, I think " + GOOD_REPLY, LOW),
]


@pytest.mark.parametrize("code,role,text,scenario", BAD, ids=[f"{c}-{r}" for c, r, _, _ in BAD])
def test_each_gate_catches_its_crafted_bad_generation(gates, code: str, role: str, text: str,  # type: ignore[no-untyped-def]
                                                      scenario) -> None:
    context = [Turn(role="client", text=GOOD_CLIENT)] if role == "supporter" else []
    found = codes(run_gates(gates, item(text, role, scenario, context)))
    assert code in found, found


def test_every_reason_code_has_a_crafted_case() -> None:
    assert {c for c, *_ in BAD} | {"duplicate.near"} == set(REASON_CODES)
    assert set(GATES) == {code.split(".")[0] for code in REASON_CODES}


def test_safety_codes_come_from_the_one_safety_module() -> None:
    from tidekit.safety import RULES

    codes_of_rules = {r.gate_code for r in RULES.values() if r.gate_code}
    assert codes_of_rules == {c for c in REASON_CODES if c.startswith("safety.")}


def test_a_helpline_is_a_crisis_resource_for_the_gate(gates) -> None:  # type: ignore[no-untyped-def]
    # the metric and the gate share the rule: "helpline" counts as a crisis resource in both
    reply = GOOD_REPLY + " If things feel unsafe tonight, a helpline can talk with you at any hour."
    assert "safety.missing_crisis_resources" not in codes(run_gates(gates, item(reply, "supporter", HIGH)))


def test_near_duplicates_are_caught_across_the_dataset(gates) -> None:  # type: ignore[no-untyped-def]
    dup = next(g for g in gates if g.name == "duplicate")
    first = item(GOOD_CLIENT, item_id="1-01")
    assert dup(first) == []
    dup.remember(first)  # type: ignore[attr-defined]
    near = GOOD_CLIENT.replace("two years ago", "three years ago")
    found = dup(item(near, item_id="2-05"))
    assert codes(found) == {"duplicate.near"} and "1-01" in found[0].detail
    assert dup(item(GOOD_CRISIS_CLIENT, item_id="3-01")) == []  # different text passes
    assert dup(item(GOOD_REPLY, "supporter", item_id="2-05")) == []  # roles are indexed apart


def test_duplicate_index_jaccard_by_hand() -> None:
    idx = DuplicateIndex(shingle_words=1)
    idx.add("a", "one two three four")
    # shingles {one,two,three,five} vs {one,two,three,four}: 3 shared / 5 in the union
    assert idx.nearest("one two three five") == ("a", pytest.approx(0.6))
    assert idx.nearest("six seven") is None


def test_disabled_gates_do_not_run() -> None:
    gates = make_gates(GatesConfig(enabled=["length"]))
    assert [g.name for g in gates] == ["length"]
    assert run_gates(gates, item("As an AI language model I cannot have nightmares about car crashes at all.")) == []


def test_duplicate_index_finds_near_duplicates_among_boilerplate() -> None:
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(300)]
    idx = DuplicateIndex(shingle_words=3, common_cap=50)
    boiler = "it sounds like you are carrying a lot and that makes sense"
    texts = {f"t{i}": boiler + " " + " ".join(rng.choice(vocab) for _ in range(30)) for i in range(600)}
    for key, text in texts.items():
        idx.add(key, text)
    assert len(idx.postings["it sounds like"]) == 51  # capped: boilerplate stops growing
    near = texts["t321"].rsplit(" ", 2)[0] + " x y"  # the same text with its last two words changed
    found = idx.nearest(near)
    assert found is not None and found[0] == "t321" and found[1] > 0.8
    fresh = boiler + " " + " ".join(rng.choice(vocab) for _ in range(30))
    assert (idx.nearest(fresh) or ("", 0.0))[1] < 0.7


# Client turns SmolLM2-135M wrote in the quickstart (`tidekit run configs/quickstart.yaml`,
# dataset stage, 2026-12-07), verbatim but cut: it answered the prompt as the supporter. Of these
# and the three supporter turns below, the gate before issue #32 caught four.
REAL_CLIENT_TURNS_IN_THE_SUPPORTERS_VOICE = [
    "I'm so sorry to hear about the client's pain. I'm always here to support you and listen to everything "
    "you want to share about the crash.",  # the issue's own example
    "I'm so sorry for your recent experience. It's completely normal to feel overwhelmed by the weight of your "
    "past. I'm here to support you, no matter what you're going through.",
    "Dear [Client Name],  I'm so sorry to hear about the unfortunate loss you're going through. As you know, "
    "your life has been forever changed by the traumatic experiences you've gone through.",
    "I'm so sorry to hear about your client. I'm so sorry to hear about your client. I'm going to do everything "
    "I can to help you through this difficult and emotional journey.",
    "Hi [Client's Name] I hope you're doing well. I'm so glad to hear that you're taking care of yourself, and "
    "I'm sure your story is full of resilience and courage.",
    "It's good that you're taking the time to reflect on what you're going through. Trauma can be a heavy burden "
    "to carry, and the fear of the unknown can be a powerful comfort.",
    "This is a personal account of how you've been coping with the aftermath of trauma. You're acknowledging the "
    "pain of your past and you're trying to make sense of your situation.",
    "I can only imagine how difficult it must be for someone who is struggling with this. I'm so sorry about "
    "your family and the ones who lost loved ones to this darkness. I want to support you and help you.",
    "I'm so glad you're coming to me. Please make sure to mention that you're a 52-year-old woman who's been "
    "dealing with a difficult past, especially one that continues to affect your life.",
    "No magic words, but I can still recall the first thing that comes to mind. This client has been telling me "
    "about the past few years, and I can see the trauma on their face.",
    "When you mentioned hopelessness, it is not possible to reveal the details that I am writing. You are a "
    "25-year-old male who has lived a life of suffering and has struggled to make sense of it all.",
]
# and first client turns of the same stage (master seed 0) that the gate of that day let through
REAL_CLIENT_TURNS_THE_GATE_MISSED = [
    "Dear friend,  I am Dr. Michaela Lee, a certified trauma and healing coach. I am a 59-year-old male who has "
    "been a devoted partner to my family, living a normal life with a loving family.",
    "It's been a while since we've met, but I've been meaning to reach out to you. I've had a few clients come in "
    "who've been dealing with trauma, and I've been so far taking a very different approach.",
    "I am a 48-year-old woman named Rachel. We have a long-term relationship, and I've been going through a tough "
    "time lately. I'm not sure I can be there for you, but my heart goes out to you.",
    "When you mentioned hopelessness, it is as if your entire being was drained, but you have been. I am not sure "
    "what you meant to say.",
]
REAL_CLIENT_TURNS_IN_THE_SUPPORTERS_VOICE += REAL_CLIENT_TURNS_THE_GATE_MISSED
# and supporter turns it wrote in the client's voice, or about "the client" instead of to them
REAL_SUPPORTER_TURNS_IN_THE_CLIENTS_VOICE = [
    "I'm so sorry to hear about the past loss. It's a mix of pain and trauma that I'm trying to process. I'm "
    "going to write down my process of healing, and I'm going to write about the people who helped you.",
    "I'm so sorry that you're going through a tough time, I'm so sorry that I'm going through a tough time, and "
    "I know you feel it too.",
    "This is a classic situation that has many layers of complexity. It's not just about needing help, but about "
    "what lies beneath the surface. The client has a range of needs that go beyond what you can see.",
]


@pytest.mark.parametrize("text", REAL_CLIENT_TURNS_IN_THE_SUPPORTERS_VOICE)
def test_real_client_turns_in_the_supporters_voice_are_caught(gates, text: str) -> None:  # type: ignore[no-untyped-def]
    found = run_gates(gates, item(text))
    assert "role.wrong_speaker" in codes(found), text


@pytest.mark.parametrize("text", REAL_SUPPORTER_TURNS_IN_THE_CLIENTS_VOICE)
def test_real_supporter_turns_in_the_clients_voice_are_caught(gates, text: str) -> None:  # type: ignore[no-untyped-def]
    found = run_gates(gates, item(text, "supporter", context=[Turn(role="client", text=GOOD_CLIENT)]))
    assert "role.wrong_speaker" in codes(found), text


def test_the_role_gate_passes_every_turn_of_the_bundled_sample(sample_dir) -> None:  # type: ignore[no-untyped-def]
    """The tighter patterns must not flag people telling their own story, nor replies to them."""
    from tidekit.builder._gates import role_gate
    from tidekit.data import load_dataset

    gate = role_gate()
    ds = load_dataset(sample_dir)
    personas = ds.persona_map()
    flagged = []
    for conv in ds.conversations:
        persona = personas[conv.persona_id]
        for role, text in (("client", conv.turns[0].text), ("supporter", conv.reference or "")):
            found = gate(item(text, role, context=conv.turns if role == "supporter" else (), persona=persona))
            flagged += [(conv.id, role, r.detail) for r in found]
    assert len(ds.conversations) == 100 and flagged == []


@pytest.mark.parametrize("text", [
    "I'm sorry to bother you with this, but since the crash I can't sleep and I keep apologising to my kids.",
    "My sister keeps saying she's here for me, but I can't tell her what the nights are like since the accident.",
    "I saw a client of my husband's firm at the shops and froze, because he drives the same car as the one that hit us.",
    # first-person client turns the widened patterns must still pass
    "My therapist is a licensed counsellor and she says the nightmares are my mind processing the crash, "
    "but I still dread going to bed every night.",
    "I work as a nurse and I have had patients die on me, but nothing prepared me for the accident.",
    "My heart goes out to the other driver's family, and I can't stop thinking it should have been me.",
])
def test_a_client_who_mentions_sorrow_or_support_in_their_own_story_passes(gates, text: str) -> None:  # type: ignore[no-untyped-def]
    assert "role.wrong_speaker" not in codes(run_gates(gates, item(text))), text


def test_a_later_client_turn_may_refer_back_to_the_supporter() -> None:
    from tidekit.builder._gates import role_gate

    text = "When you mentioned writing the dreams down, I tried it last night and I slept a little longer."
    assert role_gate()(item(text)) != []  # the opening turn: nothing was said to the client yet
    context = [Turn(role="client", text=GOOD_CLIENT), Turn(role="supporter", text=GOOD_REPLY)]
    assert role_gate()(item(text, context=context)) == []


@pytest.mark.parametrize("text", [
    "I am a licensed therapist myself, and since the crash I can't sit with my own clients without shaking.",
])
def test_a_client_whose_job_is_helping_passes_when_they_tell_their_own_story(gates, text: str) -> None:  # type: ignore[no-untyped-def]
    assert "role.wrong_speaker" not in codes(run_gates(gates, item(text))), text


def test_gate_names_are_one_list() -> None:
    from typing import get_args

    from tidekit.builder._gates import GATE_NAMES, GateName

    assert get_args(GateName) == GATE_NAMES and set(GATES) == set(GATE_NAMES)
    assert GatesConfig().enabled == list(GATE_NAMES)
    assert [g.name for g in make_gates()] == list(GATE_NAMES)
