"""The study design: which (context, reply) items exist, their blinding codes, and who rates what.

Pure functions, no database: :func:`build_plan` turns a dataset, generation records and a
:class:`~tidekit.rating.RatingStudyConfig` into a :class:`RatingPlan` that the store writes once.

Balance. The items are laid out in ``k`` passes; each pass lists every item once, conversations
in a fresh shuffled order and each conversation's systems rotated, so neighbouring slots come
from different conversations and systems. Bundles (one per rater) are cut greedily from that
queue: a bundle never holds an item twice and, while the queue allows, never a conversation
twice. Every item gets exactly ``k`` ratings, except that the last bundle is padded to full size
with the least-covered items (those get ``k + 1``), so every rater does the same work.
Order. Each bundle stores its own ``order_seed``; the rater's order (attention checks included,
never first) is a shuffle with that seed, so it is random per rater and reproducible.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidekit.data import Dataset, GenerationRecord, Problems
from tidekit.errors import ConfigError
from tidekit.rating._config import RatingStudyConfig
from tidekit.rating._sampling import SamplingRecord, draw_sample

__all__ = ["PlannedBundle", "PlannedItem", "RatingPlan", "SystemCode", "build_plan", "plan_bundles"]

# Attention checks: a plausible client message and a reply that asks for a given answer.
_CHECK_CONTEXT = ("Since the accident I jump at every loud noise and I can't sleep more than a few "
                  "hours. I don't know what to do.")
_CHECK_REPLY = ("This is an attention check, not a real reply. To show that you are reading "
                "carefully, please choose {n} for every rating on this page, and leave the "
                "comment empty.")
_CHECK_ANSWERS = (2, 6, 1, 5, 7, 3)


@dataclass(frozen=True)
class SystemCode:
    """A system and the random code that blinds it."""

    code: str
    system: str
    model: str | None
    condition: str | None


@dataclass(frozen=True)
class PlannedItem:
    """One thing to rate: a conversation context and a reply, or an attention check."""

    index: int
    item_id: str
    context: list[dict[str, str]]
    response: str
    conversation_id: str | None = None
    persona_id: str | None = None
    scenario_id: str | None = None
    system_code: str | None = None
    is_attention_check: bool = False
    expected: int | None = None


@dataclass(frozen=True)
class PlannedBundle:
    """One rater's items (indexes into the plan's items) in the rater's randomised order."""

    index: int
    order_seed: int
    items: list[int]


@dataclass
class RatingPlan:
    """Everything ``tidekit rate create`` writes, plus what it had to leave out."""

    systems: list[SystemCode]
    items: list[PlannedItem]
    bundles: list[PlannedBundle]
    skipped: Counter[str] = field(default_factory=Counter)
    inputs_hash: str = ""
    sampling: SamplingRecord | None = None

    @property
    def rated_items(self) -> list[PlannedItem]:
        return [i for i in self.items if not i.is_attention_check]


def _condition_of(system: str) -> tuple[str | None, str | None]:
    if system == "reference":
        return None, "reference"
    model, _, condition = system.rpartition(":")
    return (model or system), (condition or None)


def _codes(n: int, rng: random.Random) -> list[str]:
    alphabet = "".join(c for c in string.ascii_uppercase + string.digits if c not in "O0I1")
    seen: set[str] = set()
    while len(seen) < n:
        seen.add("S" + "".join(rng.choice(alphabet) for _ in range(4)))
    out = sorted(seen)
    rng.shuffle(out)
    return out


def _rotation_pass(by_conv: dict[str, list[int]], rng: random.Random, offset: int) -> list[int]:
    convs = list(by_conv)
    rng.shuffle(convs)
    rounds = max(len(v) for v in by_conv.values())
    seq: list[int] = []
    for r in range(rounds):
        for ci, conv in enumerate(convs):
            options = by_conv[conv]
            if r < len(options):
                seq.append(options[(ci + r + offset) % len(options)])
    return seq


def plan_bundles(item_convs: Sequence[str], k: int, m: int, rng: random.Random) -> list[list[int]]:
    """Cut ``k`` passes over the items (``item_convs[i]`` = item i's conversation) into bundles of
    ``m`` distinct items; see the module docstring for the guarantees."""
    n = len(item_convs)
    if m > n:
        raise ConfigError(f"items_per_rater={m} is more than the {n} items in the study; "
                          f"lower items_per_rater or include more conversations/systems")
    by_conv: dict[str, list[int]] = {}
    for i, conv in enumerate(item_convs):
        by_conv.setdefault(conv, []).append(i)
    queue: list[int] = []
    for p in range(k):
        queue += _rotation_pass(by_conv, rng, offset=p)
    counts: Counter[int] = Counter(queue)
    bundles: list[list[int]] = []
    lookahead = 4 * m
    while queue:
        bundle: list[int] = []
        chosen: set[int] = set()
        convs: set[str] = set()
        while len(bundle) < m and queue:
            pick = None
            for j, item in enumerate(queue[:lookahead]):
                if item not in chosen and item_convs[item] not in convs:
                    pick = j
                    break
            if pick is None:  # every nearby slot repeats a conversation: allow that, never an item
                pick = next((j for j, item in enumerate(queue) if item not in chosen), None)
                if pick is None:
                    break
            item = queue.pop(pick)
            bundle.append(item)
            chosen.add(item)
            convs.add(item_convs[item])
        if len(bundle) < m:  # the last bundle: pad with the least-covered items
            spare = [i for i in range(n) if i not in chosen]
            rng.shuffle(spare)
            spare.sort(key=lambda i: counts[i])
            for item in spare[: m - len(bundle)]:
                bundle.append(item)
                counts[item] += 1
        bundles.append(bundle)
    return bundles


def _order(items: list[int], checks: list[int], seed: int) -> list[int]:
    order = items + checks
    rnd = random.Random(seed)
    rnd.shuffle(order)
    if checks and order[0] in checks:  # a check as the very first item feels like a trick
        swap = next(j for j, it in enumerate(order) if it not in checks)
        order[0], order[swap] = order[swap], order[0]
    return order


def build_plan(
    config: RatingStudyConfig,
    dataset: Dataset,
    generations: Sequence[GenerationRecord],
    source: str = "generations",
) -> RatingPlan:
    """Items, blinding codes and bundles for a study; DataError lists every input problem."""
    rng = random.Random(config.seed)
    problems = Problems()
    skipped: Counter[str] = Counter()
    convs = {c.id: c for c in dataset.conversations}
    replies: dict[tuple[str, str], GenerationRecord] = {}
    for rec in generations:
        if config.systems is not None and rec.system not in config.systems:
            continue
        if rec.conversation_id not in convs:
            problems.add(source, f"generation for conversation {rec.conversation_id!r}, which the dataset lacks",
                         field="conversation_id", hint="rate generations made from this dataset")
            continue
        if rec.output is None or not rec.output.strip() or rec.error:
            skipped["failed or empty output"] += 1
            continue
        key = (rec.conversation_id, rec.system)
        if key in replies:
            problems.add(source, f"system {rec.system!r} answered conversation {rec.conversation_id!r} twice",
                         hint="keep one record per conversation and system")
            continue
        replies[key] = rec
    problems.raise_if_errors(source)
    have_reference = any(s == "reference" for _, s in replies)
    want_reference = config.systems is None or "reference" in config.systems
    if config.include_reference and want_reference and not have_reference:
        answered = {cid for cid, _ in replies}  # references only beside the systems' replies
        for c in dataset.conversations:
            if c.reference and (c.id in answered or not answered):
                replies[(c.id, "reference")] = GenerationRecord(
                    conversation_id=c.id, system="reference", model="reference", condition="reference",
                    output=c.reference)
    conv_ids = sorted({cid for cid, _ in replies
                       if config.split is None or convs[cid].split == config.split})
    if not conv_ids:
        raise ConfigError("no conversation has a reply to rate: check the generations, 'systems' and "
                          "'split' in the study config")
    strata_of = None if config.strata is None else {
        cid: str(getattr(convs[cid], config.strata) or "(none)") for cid in conv_ids}
    conv_ids, sampling = draw_sample(conv_ids, config.conversations, rng, strata_of, config.strata, config.seed)
    keep = set(conv_ids)
    system_names = sorted({s for cid, s in replies if cid in keep})
    codes = dict(zip(system_names, _codes(len(system_names), rng), strict=True))
    systems = []
    for name in system_names:
        _, condition = _condition_of(name)
        rec = next(r for (cid, s), r in replies.items() if s == name and cid in keep)
        systems.append(SystemCode(codes[name], name, None if name == "reference" else rec.model,
                                  rec.condition or condition))
    items: list[PlannedItem] = []
    for cid in conv_ids:
        conv = convs[cid]
        context = [{"role": t.role, "text": t.text} for t in conv.turns]
        for name in system_names:
            rec_ = replies.get((cid, name))
            if rec_ is None:
                continue
            assert rec_.output is not None
            items.append(PlannedItem(
                index=len(items), item_id=f"I{len(items) + 1:05d}", context=context,
                response=rec_.output.strip(), conversation_id=cid, persona_id=conv.persona_id,
                scenario_id=conv.scenario_id, system_code=codes[name]))
    n_real = len(items)
    bundles_items = plan_bundles([i.conversation_id or "" for i in items], config.ratings_per_item,
                                 config.items_per_rater, rng)
    checks: list[int] = []
    points = config.scale.points
    answers = [a for a in _CHECK_ANSWERS if a <= points]
    for j in range(2 * config.attention_checks):
        answer = answers[j % len(answers)]
        checks.append(len(items))
        items.append(PlannedItem(
            index=len(items), item_id=f"A{j + 1:02d}", context=[{"role": "client", "text": _CHECK_CONTEXT}],
            response=_CHECK_REPLY.format(n=answer), is_attention_check=True, expected=answer))
    bundles = []
    for b, chosen in enumerate(bundles_items):
        seed = rng.getrandbits(62)
        own_checks = random.Random(seed ^ 0x5EED).sample(checks, config.attention_checks)
        bundles.append(PlannedBundle(index=b, order_seed=seed, items=_order(chosen, own_checks, seed)))
    config_key = config.model_dump(mode="json")
    if config_key.get("strata") is None:  # keep the hash of studies made before 'strata' existed
        config_key.pop("strata", None)
    digest = hashlib.sha256(json.dumps({
        "config": config_key,
        "items": [[i.conversation_id, i.system_code, i.response, i.context] for i in items[:n_real]],
    }, sort_keys=True).encode()).hexdigest()
    return RatingPlan(systems=systems, items=items, bundles=bundles, skipped=skipped, inputs_hash=digest,
                      sampling=sampling)
