"""Room state: frozen msgspec structs, replaced whole by the reducer, never mutated.

Collections are plain dicts keyed by id; the reducer copies a dict before
changing it, so an old Room stays valid (tests compare before and after).
Agreements, links, needs and notes carry their `order`, the seq of the command
that made them: consumers list them by it, never by their random ids.
Field types carry the protocol's hard caps (rooms/types.py), so a document made
of these structs (an export) is validated like a command is; the room's own,
smaller limits are the reducer's.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from .types import Color, Coordinate, Id, Level, Text

Role = Literal["therapist", "a", "b"]
Partner = Literal["a", "b"]
PartKind = Literal["manager", "firefighter", "exile", "unsure"]
LinkKind = Literal["protects", "reacts_to", "polarized_with", "allied_with"]
# Where a partner's item may be seen: by its owner (and the therapist when the room lets
# the therapist see drafts), by the owner and the therapist, or by everyone.
ShareTo = Literal["therapist", "everyone"]
WithdrawTo = Literal["therapist", "owner"]
# How a part found through feel-toward relates to the part it feels toward.
BlendedLink = Literal["reacts_to", "polarized_with"]
Answer = Literal["yes", "not_yet", "lets_talk"]

ROLES: tuple[Role, ...] = get_args(Role)
PARTNERS: tuple[Partner, ...] = get_args(Partner)
PART_KINDS: tuple[PartKind, ...] = get_args(PartKind)
SELF_QUALITIES = (
    "calm", "curiosity", "compassion", "confidence",
    "courage", "clarity", "creativity", "connectedness",
)


FIRST_STAGE = 1
LAST_STAGE = 5
StageNumber = Annotated[int, msgspec.Meta(ge=FIRST_STAGE, le=LAST_STAGE)]
# Where an item comes in the order things were made: the seq of the command that made it.
Order = Annotated[int, msgspec.Meta(ge=0)]


def other_partner(partner: Partner) -> Partner:
    return "b" if partner == "a" else "a"


class Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """Room state holds no reference cycles, so the garbage collector need not track it:
    a server holding a thousand rooms then pauses far less for full collections."""


class Limits(Struct, frozen=True):
    # A side of the board has 15 places (rooms/geometry.py); a 16th card would have to lie
    # on another (an operator may still allow more: the server warns at start-up).
    parts_per_partner: int = 15
    name_length: int = 80
    text_length: int = 2000
    agreements: int = 30
    links_per_partner: int = 120
    notes: int = 200
    display_name_length: int = 40
    detail_length: int = 500  # each of a part's details, and a link's label uses name_length
    feelings_per_part: int = 30
    checkins_kept: int = 10  # earlier check-ins kept in a check-in's history
    answers_kept: int = 10  # earlier answers kept with a need
    turns: int = 100  # speaker/listener turns kept in a room
    uturns: int = 100


class StageInfo(Struct, frozen=True):
    name: str
    guidance: str


class Settings(Struct, frozen=True):
    therapist_sees_drafts: bool
    stages: tuple[StageInfo, ...]
    limits: Limits = Limits()


class PartnerInfo(Struct, frozen=True):
    name: Text
    color: Color


class Agreement(Struct, frozen=True):
    id: Id
    text: Text
    acks: Annotated[tuple[Partner, ...], msgspec.Meta(max_length=2)] = ()
    order: Order = 0


class Part(Struct, frozen=True):
    """A partner's part. `shared`: everyone sees it; `with_therapist`: while not shared,
    the therapist sees it too, whatever the room's drafts setting (the first of the two
    steps of sharing). The details follow the part's visibility; `burden` is an exile's.
    A part the therapist wrote as scribe starts with the therapist (`with_therapist`) and
    carries `by_therapist` until its partner accepts it."""

    id: Id
    owner: Partner
    name: Text
    kind: PartKind
    x: Coordinate
    y: Coordinate
    shared: bool = False
    blend: Level | None = None
    with_therapist: bool = False
    job: Text = ""
    fear: Text = ""
    age: Text = ""
    intent: Text = ""
    burden: Text = ""
    by_therapist: bool = False  # written by the therapist as scribe, until its partner accepts


PART_DETAILS = ("job", "fear", "age", "intent", "burden")


class Link(Struct, frozen=True):
    id: Id
    owner: Partner
    kind: LinkKind
    source: Id
    target: Id
    order: Order = 0
    label: Text = ""
    by_therapist: bool = False  # drawn by the therapist as scribe, until its part is accepted


class Feeling(Struct, frozen=True):
    """One answer to "How do you feel toward this part?", kept with its time.

    `qualities` are the Self qualities felt (Self energy toward the part); `other` is any
    other feeling, in the partner's words: another part, blended. Seen by whoever sees
    the part."""

    id: Id
    part: Id
    owner: Partner
    at: float
    qualities: Annotated[tuple[str, ...], msgspec.Meta(max_length=8)] = ()
    other: Text = ""
    order: Order = 0


class PastCheckIn(Struct, frozen=True):
    scores: dict[str, Level]
    note: Text = ""
    at: float = 0.0


class CheckIn(Struct, frozen=True):
    """A partner's latest Self check-in, with the earlier ones of the session (oldest
    first, bounded): one entity, shared or not as a whole."""

    owner: Partner
    scores: dict[str, Level]
    note: Text = ""
    shared: bool = False
    at: float = 0.0
    history: tuple[PastCheckIn, ...] = ()


class PastAnswer(Struct, frozen=True):
    """An earlier answer to a request, with the request it answered."""

    request: Text
    answer: Answer
    note: Text = ""
    at: float = 0.0


class Need(Struct, frozen=True):
    """What a shared part needs; keyed by the part's id (one need per part).

    Private to its owner until shared, like everything a partner writes; a request
    (and its answer) travels with the need."""

    part: Id
    owner: Partner
    text: Text
    request: Text | None = None
    answer: Answer | None = None
    answer_note: Text = ""
    shared: bool = False
    order: Order = 0
    self_offer: Text | None = None  # what the owner's own Self can offer the part: first
    answered_at: float | None = None
    answers: tuple[PastAnswer, ...] = ()  # earlier answers, oldest first


class Turn(Struct, frozen=True):
    """One speaker/listener turn of courageous communication, seen by all three.

    The speaker speaks for one of their shared parts (`spoken`), the listener reflects
    back (`reflection`), the speaker says whether they felt heard (`heard`) or corrects
    (`correction`, then speaks again). `ended_at` is set when the therapist ends or swaps
    the turn; at most one turn is open at a time."""

    id: Id
    speaker: Partner
    listener: Partner
    at: float
    part: Id | None = None
    spoken: Text = ""
    reflection: Text = ""
    heard: bool | None = None
    correction: Text = ""
    ended_at: float | None = None
    order: Order = 0


class UTurn(Struct, frozen=True):
    """A U-turn prompt from the therapist to one partner ("What is happening inside you
    right now?"); the answer is that partner's and the therapist's unless shared."""

    id: Id
    partner: Partner
    prompt: Text
    at: float
    answer: Text = ""
    answered_at: float | None = None
    shared: bool = False
    order: Order = 0


class Note(Struct, frozen=True):
    id: Id
    text: Text
    at: float
    order: Order = 0


class Pause(Struct, frozen=True):
    """A partner's "I need a pause", up until the therapist clears it."""

    by: Partner
    at: float


class Overwhelm(Struct, frozen=True):
    """A partner's quiet "I'm getting overwhelmed"; `seen_at` is when the therapist
    acknowledged it (None until then)."""

    by: Partner
    at: float
    seen_at: float | None = None


class Ending(Struct, frozen=True):
    """The moment before the end: the partners are asked to save their copy."""

    at: float


class StageChange(Struct, frozen=True):
    stage: StageNumber
    seq: Annotated[int, msgspec.Meta(ge=0)]
    at: float


class BoardState(Struct, frozen=True):
    """The room-wide facts everyone sees, carried as one entity."""

    stage: int
    frozen: bool = False
    spotlight: str | None = None
    pauses: tuple[Pause, ...] = ()  # at most one per partner, in the order raised
    history: tuple[StageChange, ...] = ()
    ending: Ending | None = None


class Room(Struct, frozen=True):
    id: str
    epoch: str
    seq: int
    created_at: float
    settings: Settings
    board: BoardState
    partners: dict[str, PartnerInfo]
    agreements: dict[str, Agreement] = {}
    parts: dict[str, Part] = {}
    links: dict[str, Link] = {}
    feelings: dict[str, Feeling] = {}
    checkins: dict[str, CheckIn] = {}
    needs: dict[str, Need] = {}
    turns: dict[str, Turn] = {}
    uturns: dict[str, UTurn] = {}
    notes: dict[str, Note] = {}
    overwhelm: dict[str, Overwhelm] = {}
    ready: dict[str, bool] = {}

    @property
    def stage(self) -> int:
        return self.board.stage
