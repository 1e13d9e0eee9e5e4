"""Every command a client may send, as a declarative schema.

A command travels as `{"t": "cmd", "id": <client id>, "op": <name>, "args": {...}}`;
`parse_args` turns the args of one op into its typed struct or raises
UnknownOp, or BadRequest naming the field. Types and shapes are checked here; lengths and
counts depend on the room's configured limits and are checked by the reducer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from .errors import BadRequest, UnknownOp
from .model import Answer, BlendedLink, LinkKind, PartKind, Partner, ShareTo, WithdrawTo
from .stages import OPERATIONS
from .types import Color, Coordinate, Id, Level, Text
from .wire import field_of


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    op: ClassVar[str]


class StageSet(Command, frozen=True):
    op = "stage.set"
    stage: int
    confirm: bool = False


class AgreementAdd(Command, frozen=True):
    op = "agreement.add"
    text: Text


class AgreementEdit(Command, frozen=True):
    op = "agreement.edit"
    id: Id
    text: Text


class AgreementRemove(Command, frozen=True):
    op = "agreement.remove"
    id: Id


class AgreementAck(Command, frozen=True):
    op = "agreement.ack"
    id: Id


class SpotlightSet(Command, frozen=True):
    op = "spotlight.set"
    part: Id | None = None


class FreezeSet(Command, frozen=True):
    op = "freeze.set"
    frozen: bool


class PauseRaise(Command, frozen=True):
    op = "pause.raise"


class PauseClear(Command, frozen=True):
    op = "pause.clear"
    partner: Partner | None = None  # None clears every pause


class OverwhelmRaise(Command, frozen=True):
    op = "overwhelm.raise"


class OverwhelmAck(Command, frozen=True):
    op = "overwhelm.ack"
    partner: Partner


class OverwhelmClear(Command, frozen=True):
    op = "overwhelm.clear"
    partner: Partner


class EndingStart(Command, frozen=True):
    op = "ending.start"


class EndingCancel(Command, frozen=True):
    op = "ending.cancel"


class ReadySet(Command, frozen=True):
    op = "ready.set"
    ready: bool = True


class TurnStart(Command, frozen=True):
    op = "turn.start"
    speaker: Partner


class TurnSpeak(Command, frozen=True):
    op = "turn.speak"
    text: Text
    part: Id | None = None


class TurnReflect(Command, frozen=True):
    op = "turn.reflect"
    text: Text


class TurnConfirm(Command, frozen=True):
    op = "turn.confirm"
    heard: bool
    correction: Text = ""


class TurnEnd(Command, frozen=True):
    op = "turn.end"
    swap: bool = False


class UturnAsk(Command, frozen=True):
    op = "uturn.ask"
    partner: Partner
    prompt: Text = ""


class UturnAnswer(Command, frozen=True):
    op = "uturn.answer"
    id: Id
    text: Text


class UturnShare(Command, frozen=True):
    op = "uturn.share"
    id: Id
    shared: bool = True


class NoteAdd(Command, frozen=True):
    op = "note.add"
    text: Text


class NoteEdit(Command, frozen=True):
    op = "note.edit"
    id: Id
    text: Text


class NoteRemove(Command, frozen=True):
    op = "note.remove"
    id: Id


class PartnerUpdate(Command, frozen=True):
    op = "partner.update"
    partner: Partner
    name: Text | None = None
    color: Color | None = None


class PartAdd(Command, frozen=True):
    op = "part.add"
    name: Text
    kind: PartKind = "unsure"
    x: Coordinate = 0.5
    y: Coordinate = 0.5


class PartEdit(Command, frozen=True):
    op = "part.edit"
    id: Id
    name: Text | None = None
    kind: PartKind | None = None


class PartMove(Command, frozen=True):
    op = "part.move"
    id: Id
    x: Coordinate
    y: Coordinate


class PartRemove(Command, frozen=True):
    op = "part.remove"
    id: Id


class PartDetails(Command, frozen=True):
    op = "part.details"
    id: Id
    job: Text | None = None
    fear: Text | None = None
    age: Text | None = None
    intent: Text | None = None
    burden: Text | None = None


class PartAccept(Command, frozen=True):
    op = "part.accept"
    id: Id


class ScribePartAdd(Command, frozen=True):
    op = "scribe.part_add"
    partner: Partner
    name: Text
    kind: PartKind = "unsure"
    x: Coordinate = 0.5
    y: Coordinate = 0.5


class ScribePartEdit(Command, frozen=True):
    op = "scribe.part_edit"
    id: Id
    name: Text | None = None
    kind: PartKind | None = None
    job: Text | None = None
    fear: Text | None = None
    age: Text | None = None
    intent: Text | None = None
    burden: Text | None = None


class ScribeLinkAdd(Command, frozen=True):
    op = "scribe.link_add"
    kind: LinkKind
    source: Id
    target: Id
    label: Text = ""


class PartReveal(Command, frozen=True):
    op = "part.reveal"
    id: Id
    to: ShareTo = "everyone"
    confirm: bool = False


class PartRevealAll(Command, frozen=True):
    op = "part.reveal_all"
    confirm: bool = False


class PartWithdraw(Command, frozen=True):
    op = "part.withdraw"
    id: Id
    to: WithdrawTo = "owner"


class PartTidy(Command, frozen=True):
    op = "part.tidy"


class PartBlend(Command, frozen=True):
    op = "part.blend"
    id: Id
    level: Level


class PartFeel(Command, frozen=True):
    op = "part.feel"
    id: Id
    qualities: dict[str, bool] = {}
    other: Text = ""
    new_part: Text | None = None
    new_kind: PartKind = "unsure"
    new_link: BlendedLink = "reacts_to"


class LinkAdd(Command, frozen=True):
    op = "link.add"
    kind: LinkKind
    source: Id
    target: Id
    label: Text = ""


class LinkEdit(Command, frozen=True):
    op = "link.edit"
    id: Id
    label: Text


class LinkRemove(Command, frozen=True):
    op = "link.remove"
    id: Id


class CheckinSet(Command, frozen=True):
    op = "checkin.set"
    scores: dict[str, Level]
    note: Text = ""


class CheckinReveal(Command, frozen=True):
    op = "checkin.reveal"


class CheckinWithdraw(Command, frozen=True):
    op = "checkin.withdraw"


class NeedSet(Command, frozen=True):
    op = "need.set"
    part: Id
    text: Text


class NeedSelf(Command, frozen=True):
    op = "need.self"
    part: Id
    text: Text


class NeedRemove(Command, frozen=True):
    op = "need.remove"
    part: Id


class NeedReveal(Command, frozen=True):
    op = "need.reveal"
    part: Id


class NeedWithdraw(Command, frozen=True):
    op = "need.withdraw"
    part: Id


class RequestMake(Command, frozen=True):
    op = "request.make"
    part: Id
    text: Text


class RequestAnswer(Command, frozen=True):
    op = "request.answer"
    part: Id
    answer: Answer
    note: Text = ""


COMMANDS: dict[str, type[Command]] = {
    cls.op: cls for cls in Command.__subclasses__()
}
assert set(COMMANDS) == set(OPERATIONS), "every operation needs exactly one schema"

def parse_args(op: str, args: Mapping[str, Any]) -> Command:
    """Validate one command's args (already decoded by the wire codec) into its schema."""
    schema = COMMANDS.get(op)
    if schema is None:
        raise UnknownOp()
    try:
        command = msgspec.convert(args, schema)
    except msgspec.ValidationError as error:
        # msgspec's message may quote the value sent; only the field name leaves here.
        raise BadRequest(field=field_of(error, schema.__struct_fields__) or "args") from None
    for name in command.__struct_fields__:
        value = getattr(command, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(field=name)
    return command


def args_of(command: Command) -> dict[str, Any]:
    """The wire args of a command (used by clients and tests)."""
    out: dict[str, Any] = msgspec.to_builtins(command)
    return out


def command(op: str, **args: Any) -> Command:
    """Build a command from keyword args, validated like one from the wire."""
    return parse_args(op, args)

