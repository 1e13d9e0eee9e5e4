"""docs/protocol.md is the single source of the protocol: it must cover what rooms/ defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rooms import wire
from rooms.actions import COMMANDS
from rooms.errors import ERROR_CODES
from rooms.model import SELF_QUALITIES
from rooms.stages import OPERATIONS, PARTNERS, THERAPIST
from rooms.views import COLLECTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
WHO = {"T": THERAPIST, "P": PARTNERS}
ROW = re.compile(r"^\| `(?P<op>[a-z_.]+)` \| (?P<args>.*) \| (?P<who>[TP]) \| (?P<stage>\d) \| "
                 r"(?P<frozen>yes|no) \|$")


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(doc: str, heading: str) -> str:
    start = doc.index(heading)
    end = doc.find("\n## ", start + len(heading))
    return doc[start:end if end != -1 else len(doc)]


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_every_operation_is_documented(doc: str, op: str) -> None:
    assert f"`{op}`" in doc


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_is_documented(doc: str, code: str) -> None:
    assert f"`{code}`" in doc
    errors = section(doc, "## 11. Errors")
    assert re.search(rf"^\| `{code}` \|", errors, re.M), f"{code} has no row in the error table"


def test_the_command_table_matches_the_stage_table(doc: str) -> None:
    table = section(doc, "### The command table")
    rows = {m["op"]: m for m in map(ROW.match, table.splitlines()) if m is not None}
    assert set(rows) == set(OPERATIONS)
    for op, rule in OPERATIONS.items():
        row = rows[op]
        assert WHO[row["who"]] == rule.roles, op
        assert int(row["stage"]) == rule.stage, op
        assert (row["frozen"] == "yes") is rule.freezable, op
        for field in COMMANDS[op].__struct_fields__:
            assert f"`{field}`" in row["args"], f"{op}: argument {field} is not documented"
        if not COMMANDS[op].__struct_fields__:
            assert row["args"] == "—", op


def test_each_command_has_its_own_notes(doc: str) -> None:
    notes = section(doc, "### What each command does")
    described = [
        name
        for line in notes.splitlines() if line.startswith("- `")
        for name in re.findall(r"`([a-z_.]+)`", line.split(" — ", 1)[0])
    ]
    assert sorted(described) == sorted(OPERATIONS)  # each exactly once


def test_transport_frames_and_view_are_documented(doc: str) -> None:
    assert f"`{wire.SUBPROTOCOL}`" in doc
    assert f"{wire.MAX_FRAME_BYTES // 1024} KiB" in doc
    frames = section(doc, "## 2. Frames")
    for tag in ("hello", "cmd", "drag", "welcome", "ev", "ack", "error", "presence", "ended"):
        assert f"| `{tag}` |" in frames, tag
    for field in ("room", "secret", "resume", "epoch", "seq", "replay", "view"):
        assert f"`{field}`" in frames, field
    view = section(doc, "## 6. The view")
    for coll in COLLECTIONS:
        assert f"| `{coll}` |" in view, coll
    for quality in SELF_QUALITIES:
        assert f"`{quality}`" in view, quality


def test_close_codes_are_documented(doc: str) -> None:
    closes = section(doc, "## 12. Close codes")
    for code in (4000, 4404, 4408, 4409, 4429, 1008, 1009):
        assert f"| {code} |" in closes, code
