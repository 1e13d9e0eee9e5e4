"""The browser learns the protocol's rules from the document the server serves.

`client/web/rules.js` reads the protocol document embedded in the page (generated from
`rooms/` by the server, also at `GET /api/protocol`): its tables equal the core's, and a
page served a different document offers what that document says, not a copy of its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from browser_helpers import RoomLinks, move_to_stage
from playwright.sync_api import expect

from rooms.errors import CLOSES, ERRORS
from rooms.model import PART_KINDS, SELF_QUALITIES
from rooms.protocol import ANSWER_LABELS, KIND_LABELS, SELF_QUALITY_LABELS
from rooms.stages import OPERATIONS

EMBEDDED = re.compile(r'<script type="application/json" id="protocol">(.*?)</script>', re.S)

# Rewrites the document the server embedded once the page is parsed, before its modules
# run ("interactive" comes first), as a server serving another table would have written it.
# (A page answered by Playwright's route.fulfill may not open a websocket to 127.0.0.1.)
SERVE_LATER_PARTS = """
document.addEventListener("readystatechange", () => {
  if (document.readyState !== "interactive") return;
  const element = document.getElementById("protocol");
  const served = JSON.parse(element.textContent);
  served.operations["part.add"].stage = 3;
  element.textContent = JSON.stringify(served);
});
"""

READ_RULES = """async () => {
  const rules = await import("/static/rules.js");
  return {
    operations: rules.OPERATIONS,
    kinds: rules.KINDS,
    kindLabels: rules.KIND_LABELS,
    qualities: rules.SELF_QUALITIES,
    qualityLabels: rules.SELF_QUALITY_LABELS,
    answerLabels: rules.ANSWER_LABELS,
    closes: rules.CLOSES,
    offered: Object.fromEntries(["therapist", "a", "b"].map((role) => [role,
      Object.keys(rules.OPERATIONS).filter((op) => rules.allowed(op, role, 2, false))])),
  };
}"""


def test_rules_js_reads_the_tables_of_the_core(open_person, room: RoomLinks) -> None:
    alex = open_person("alex")
    alex.join(room.a)
    rules: dict[str, Any] = alex.page.evaluate(READ_RULES)

    assert rules["operations"] == {
        op: {"roles": sorted(rule.roles), "stage": rule.stage, "freezable": rule.freezable}
        for op, rule in OPERATIONS.items()
    }
    for role in ("therapist", "a", "b"):
        expected = {op for op, rule in OPERATIONS.items() if role in rule.roles and rule.stage <= 2}
        assert set(rules["offered"][role]) == expected, role
    assert rules["kinds"] == list(PART_KINDS)
    assert rules["kindLabels"] == KIND_LABELS
    assert rules["qualities"] == list(SELF_QUALITIES)
    assert rules["qualityLabels"] == SELF_QUALITY_LABELS
    assert rules["answerLabels"] == ANSWER_LABELS
    assert {int(code): (c["then"]) for code, c in rules["closes"].items()} == {
        code: rule.then for code, rule in CLOSES.items()}


def test_the_protocol_is_served_as_json(server) -> None:  # type: ignore[no-untyped-def]
    served = httpx.get(f"{server.base_url}/api/protocol", timeout=10).json()
    assert served["operations"]["part.add"] == {"roles": ["a", "b"], "stage": 2,
                                                "freezable": True}
    assert {code: e["http_status"] for code, e in served["errors"].items()} == {
        code: cls.http_status for code, cls in ERRORS.items()}
    page = httpx.get(f"{server.base_url}/", timeout=10).text
    match = EMBEDDED.search(page)
    assert match is not None, "the start page carries no protocol document"
    assert json.loads(match.group(1)) == served


def test_a_page_served_another_table_offers_what_that_table_says(
        open_person, room: RoomLinks) -> None:  # type: ignore[no-untyped-def]
    """Alex's page is served a document in which adding a part unlocks only at stage 3;
    Sam's page gets the real one. At stage 2 only Sam is offered the form."""
    therapist = open_person("therapist")
    therapist.join(room.therapist)
    alex = open_person("alex")
    alex.page.add_init_script(SERVE_LATER_PARTS)
    alex.join(room.a)
    sam = open_person("sam")
    sam.join(room.b)
    assert alex.page.evaluate(
        "async () => (await import('/static/rules.js')).OPERATIONS['part.add'].stage") == 3

    move_to_stage(therapist, [alex, sam], 2)
    expect(sam.page.locator("#add-part")).to_be_visible()
    expect(alex.page.locator("#add-part")).to_be_hidden()

    move_to_stage(therapist, [alex, sam], 3)
    expect(alex.page.locator("#add-part")).to_be_visible()
