"""The protocol's facts are declared once in rooms/ and agree with docs/protocol.md.

Each error class carries its HTTP status and close codes; every close code is in one
table with what a client does after it; the served document (rooms.protocol.document)
is plain JSON generated from those declarations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rooms.errors import CLOSES, ERRORS, Close, RoomError, then_after
from rooms.protocol import BACKOFF, document
from rooms.stages import OPERATIONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")


def section(heading: str) -> str:
    start = DOC.index(heading)
    end = DOC.find("\n## ", start + len(heading))
    return DOC[start:end if end != -1 else len(DOC)]


def table_rows(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| code"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_each_error_closes_with_a_code_of_the_close_table(code: str) -> None:
    cls = ERRORS[code]
    assert cls.code == code
    assert cls.hello_close in CLOSES
    assert cls.command_close is None or cls.command_close in CLOSES


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_the_error_table_of_the_doc_gives_each_errors_status_and_closes(code: str) -> None:
    row = table_rows(section("## 11. Errors"))[code]
    cls = ERRORS[code]
    command_close = "—" if cls.command_close is None else str(int(cls.command_close))
    assert row[2:] == [str(cls.http_status), str(int(cls.hello_close)), command_close]


def test_the_close_table_of_the_doc_is_the_close_table_of_the_code() -> None:
    rows = table_rows(section("## 12. Close codes"))
    assert {int(code) for code in rows} == set(CLOSES)
    for code, rule in CLOSES.items():
        assert rows[str(code)][3].startswith(f"`{rule.then}`"), code


def test_a_bare_room_error_is_internal() -> None:
    assert (RoomError.code, RoomError.http_status, RoomError.hello_close) == (
        ERRORS["internal"].code, ERRORS["internal"].http_status, ERRORS["internal"].hello_close)


def test_what_a_client_does_after_each_close() -> None:
    assert then_after(Close.ENDED) == "stop"
    assert then_after(4404) == "stop"
    assert then_after(Close.LOST) == "stop"
    assert then_after(Close.TRY_AGAIN) == then_after(Close.TOO_MANY) == "wait"
    assert then_after(Close.RESYNC) == "resume"
    # Anything else is a lost connection: a network drop, a restart, no close frame at all.
    for code in (1000, 1001, 1006, 1011, 1012, None):
        assert then_after(code) == "resume"


def test_the_document_is_plain_json_generated_from_the_core() -> None:
    doc = document()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc["operations"]) == set(OPERATIONS)
    assert doc["operations"]["stage.set"] == {"roles": ["therapist"], "stage": 1,
                                              "freezable": False}
    assert {int(code): c["then"] for code, c in doc["closes"].items()} == {
        code: rule.then for code, rule in CLOSES.items()}
    assert doc["closes"]["4404"]["name"] == "invalid_link"
    assert doc["errors"]["room_ended"] == {
        "message": ERRORS["room_ended"].default_message, "http_status": 404,
        "hello_close": 4404, "command_close": 4000}
    assert doc["backoff"] == {"initial": BACKOFF.initial, "factor": BACKOFF.factor,
                              "cap": BACKOFF.cap}
    assert re.fullmatch(doc["color_pattern"], "#1f6fB2")
    assert not re.fullmatch(doc["color_pattern"], "#1f6fb")
