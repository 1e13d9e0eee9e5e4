"""The five IFIO stages as data.

Theory of operation: each operation belongs to exactly one row of OPERATIONS,
which says who may send it, the first stage that unlocks it and whether a
frozen board refuses it. A capability stays unlocked in every later stage;
moving back a stage locks again what that stage does not allow. The reducer
consults this table before it looks at any argument, so a locked or
forbidden command is refused without reading further.
"""

from __future__ import annotations

from typing import NamedTuple

from .model import FIRST_STAGE as FIRST_STAGE
from .model import LAST_STAGE as LAST_STAGE
from .model import Role, StageInfo

THERAPIST: frozenset[Role] = frozenset({"therapist"})
PARTNERS: frozenset[Role] = frozenset({"a", "b"})


class Rule(NamedTuple):
    roles: frozenset[Role]
    stage: int
    freezable: bool = False


OPERATIONS: dict[str, Rule] = {
    # therapist, at any stage
    "stage.set": Rule(THERAPIST, 1),
    "agreement.add": Rule(THERAPIST, 1),
    "agreement.edit": Rule(THERAPIST, 1),
    "agreement.remove": Rule(THERAPIST, 1),
    "spotlight.set": Rule(THERAPIST, 1),
    "freeze.set": Rule(THERAPIST, 1),
    "pause.clear": Rule(THERAPIST, 1),
    "overwhelm.ack": Rule(THERAPIST, 1),
    "overwhelm.clear": Rule(THERAPIST, 1),
    "ending.start": Rule(THERAPIST, 1),
    "ending.cancel": Rule(THERAPIST, 1),
    "note.add": Rule(THERAPIST, 1),
    "note.edit": Rule(THERAPIST, 1),
    "note.remove": Rule(THERAPIST, 1),
    "partner.update": Rule(THERAPIST, 1),
    # the therapist as scribe, writing for a partner
    "scribe.part_add": Rule(THERAPIST, 2),
    "scribe.part_edit": Rule(THERAPIST, 2),
    "scribe.link_add": Rule(THERAPIST, 3),
    # partners, stage 1: safety first, never frozen
    "agreement.ack": Rule(PARTNERS, 1),
    "pause.raise": Rule(PARTNERS, 1),
    "overwhelm.raise": Rule(PARTNERS, 1),
    "ready.set": Rule(PARTNERS, 1),
    # stage 2: Identifying Parts
    "part.add": Rule(PARTNERS, 2, freezable=True),
    "part.edit": Rule(PARTNERS, 2, freezable=True),
    "part.details": Rule(PARTNERS, 2, freezable=True),
    "part.accept": Rule(PARTNERS, 2, freezable=True),
    "part.move": Rule(PARTNERS, 2, freezable=True),
    "part.remove": Rule(PARTNERS, 2, freezable=True),
    "part.reveal": Rule(PARTNERS, 2, freezable=True),
    "part.reveal_all": Rule(PARTNERS, 2, freezable=True),
    "part.withdraw": Rule(PARTNERS, 2, freezable=True),
    "part.tidy": Rule(PARTNERS, 2, freezable=True),
    # stage 3: Unblending
    "part.blend": Rule(PARTNERS, 3, freezable=True),
    "part.feel": Rule(PARTNERS, 3, freezable=True),
    "link.add": Rule(PARTNERS, 3, freezable=True),
    "link.edit": Rule(PARTNERS, 3, freezable=True),
    "link.remove": Rule(PARTNERS, 3, freezable=True),
    "turn.start": Rule(THERAPIST, 3),
    "turn.end": Rule(THERAPIST, 3),
    "uturn.ask": Rule(THERAPIST, 3),
    "turn.speak": Rule(PARTNERS, 3, freezable=True),
    "turn.reflect": Rule(PARTNERS, 3, freezable=True),
    "turn.confirm": Rule(PARTNERS, 3, freezable=True),
    "uturn.answer": Rule(PARTNERS, 3, freezable=True),
    "uturn.share": Rule(PARTNERS, 3, freezable=True),
    # stage 4: Accessing the Self
    "checkin.set": Rule(PARTNERS, 4, freezable=True),
    "checkin.reveal": Rule(PARTNERS, 4, freezable=True),
    "checkin.withdraw": Rule(PARTNERS, 4, freezable=True),
    # stage 5: Working with Parts in the Relationship
    "need.set": Rule(PARTNERS, 5, freezable=True),
    "need.self": Rule(PARTNERS, 5, freezable=True),
    "need.remove": Rule(PARTNERS, 5, freezable=True),
    "need.reveal": Rule(PARTNERS, 5, freezable=True),
    "need.withdraw": Rule(PARTNERS, 5, freezable=True),
    "request.make": Rule(PARTNERS, 5, freezable=True),
    "request.answer": Rule(PARTNERS, 5, freezable=True),
}

# Dragging is ephemeral (never committed) but follows part.move's rule.
DRAG_RULE = OPERATIONS["part.move"]

# Courageous communication, as words to start from (served in the protocol document).
SENTENCE_STEMS: dict[str, tuple[str, ...]] = {
    "speaker": (
        "A part of me feels … when …",
        "It is trying to protect …",
        "What it is afraid of is …",
        "What it would like you to know is …",
    ),
    "listener": (
        "What I heard is …",
        "Did I get that right?",
        "Is there more?",
    ),
}
UTURN_PROMPT = "What is happening inside you right now? Which part of you is reacting?"

DEFAULT_STAGES: tuple[StageInfo, ...] = (
    StageInfo(
        "Creating a Safe Space",
        "Agree together how you will take care of each other today. Either of you "
        "can take a pause at any time. Nothing is judged here.",
    ),
    StageInfo(
        "Identifying Parts",
        "Name the parts of you that show up in your relationship: the protectors "
        "and the young parts they guard. Write them privately first, and share what "
        "you are ready to share.",
    ),
    StageInfo(
        "Unblending",
        "Notice how much each part has taken over right now, and help it step back a "
        "little. Draw how your parts protect each other and react to your partner's.",
    ),
    StageInfo(
        "Accessing the Self",
        "With your parts stepped back, check in with your Self: calm, curiosity, "
        "compassion, confidence, courage, clarity, creativity, connectedness.",
    ),
    StageInfo(
        "Working with Parts in the Relationship",
        "Ask what your parts need. Turn a need into a request of your partner, and "
        "answer each other's requests. What you agree is what you take home.",
    ),
)
