"""The protocol facts a client needs, generated from the core and served to the browser.

`document()` describes the protocol as JSON-ready data: the operations table of
`stages.py`, the part kinds, link kinds and answers with their labels, the Self qualities
with theirs, the error codes with their HTTP status and close codes, every close code
with what a client does after it, and the clients' reconnect schedule. The server embeds
it in its pages and serves it at `GET /api/protocol`; the browser's `rules.js` reads it
instead of keeping a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple, TypeVar, get_args

from . import geometry
from .errors import CLOSES, ERRORS, Busy, Close
from .model import PART_KINDS, ROLES, SELF_QUALITIES, Answer, LinkKind, PartKind
from .stages import FIRST_STAGE, LAST_STAGE, OPERATIONS, SENTENCE_STEMS, UTURN_PROMPT
from .types import COLOR_PATTERN, MAX_ID, MAX_TEXT
from .wire import MAX_FRAME_BYTES, SUBPROTOCOL

Name = TypeVar("Name", bound=str)


class Backoff(NamedTuple):
    """Reconnect delays, in seconds: each uniform in [0, ceiling] (full jitter), the
    ceiling starting at `initial` and growing by `factor` up to `cap`; back to the start
    after a welcome."""

    initial: float
    factor: float
    cap: float


BACKOFF: Final = Backoff(initial=0.05, factor=2.0, cap=3.0)

KIND_LABELS: Final[dict[PartKind, str]] = {
    "manager": "Manager",
    "firefighter": "Firefighter",
    "exile": "Exile",
    "unsure": "Not sure yet",
}
LINK_KIND_LABELS: Final[dict[LinkKind, str]] = {
    "protects": "protects",
    "reacts_to": "reacts to",
    "polarized_with": "is polarized with",
    "allied_with": "is allied with",
}
ANSWER_LABELS: Final[dict[Answer, str]] = {
    "yes": "Yes",
    "not_yet": "Not yet",
    "lets_talk": "Let's talk",
}
SELF_QUALITY_LABELS: Final[dict[str, str]] = {q: q.capitalize() for q in SELF_QUALITIES}

assert tuple(KIND_LABELS) == PART_KINDS
assert tuple(LINK_KIND_LABELS) == get_args(LinkKind)
assert tuple(ANSWER_LABELS) == get_args(Answer)


def _labelled(labels: Mapping[Name, str]) -> list[dict[str, str]]:
    return [{"name": name, "label": label} for name, label in labels.items()]


def document() -> dict[str, Any]:
    """The protocol as plain JSON data (keys in a stable order)."""
    return {
        "subprotocol": SUBPROTOCOL,
        "max_frame_bytes": MAX_FRAME_BYTES,
        "max_id": MAX_ID,
        "max_text": MAX_TEXT,
        "color_pattern": COLOR_PATTERN,
        "roles": list(ROLES),
        "stages": {"first": FIRST_STAGE, "last": LAST_STAGE},
        "operations": {
            op: {"roles": sorted(rule.roles), "stage": rule.stage, "freezable": rule.freezable}
            for op, rule in OPERATIONS.items()
        },
        # Ordered lists, not maps: the order is the order a client offers them in.
        "part_kinds": _labelled(KIND_LABELS),
        "link_kinds": _labelled(LINK_KIND_LABELS),
        "answers": _labelled(ANSWER_LABELS),
        "self_qualities": _labelled(SELF_QUALITY_LABELS),
        "sentence_stems": {who: list(stems) for who, stems in SENTENCE_STEMS.items()},
        "uturn_prompt": UTURN_PROMPT,
        "errors": {
            code: {
                "message": cls.default_message,
                "http_status": cls.http_status,
                "hello_close": int(cls.hello_close),
                "command_close": None if cls.command_close is None else int(cls.command_close),
                **({"retry_after": Busy.DEFAULT_RETRY_AFTER} if cls is Busy else {}),
            }
            for code, cls in ERRORS.items()
        },
        "backoff": BACKOFF._asdict(),
        "board": geometry.document(),
        "closes": {
            str(code): {"name": Close(code).name.lower(), "then": rule.then,
                        "meaning": rule.meaning}
            for code, rule in CLOSES.items()
        },
    }
