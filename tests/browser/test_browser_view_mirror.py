"""The browser's mirror of a view (client/web/view.js) follows rooms/views.py exactly.

A session is played through the pure core; each viewer's events are applied by the
browser's own applyEvent (run by node, no browser needed) to that viewer's first
snapshot, and the result must equal the core's final snapshot for that viewer. An
event that skips a sequence number must raise GapError there, as in Python.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rooms import actions, machine, views
from rooms.model import PartnerInfo, Role

VIEW_JS = Path(__file__).resolve().parents[2] / "client" / "web" / "view.js"

RUNNER = """
import { applyEvent, GapError } from %s;
let input = "";
for await (const chunk of process.stdin) input += chunk;
const { views, events } = JSON.parse(input);
const out = {};
for (const [viewer, view] of Object.entries(views)) {
  for (const event of events[viewer]) applyEvent(view, event);
  out[viewer] = view;
}
const probe = structuredClone(out.a);
let gap = "none";
try {
  applyEvent(probe, { seq: probe.seq + 2, hidden: true, owner: "b", counts: probe.counts });
} catch (error) {
  gap = error instanceof GapError && probe.seq === out.a.seq ? "GapError" : String(error);
}
process.stdout.write(JSON.stringify({ out, gap }));
"""


def play() -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, Any]]:
    counter = iter(range(1, 10_000))
    clock = iter(range(1, 10_000))
    room = machine.new_room(
        room_id="r1", epoch="e1",
        partners={"a": PartnerInfo("Noor", "#224488"), "b": PartnerInfo("Teo", "#884422")},
        therapist_sees_drafts=False, now=0.0)
    viewers: tuple[Role, ...] = ("therapist", "a", "b")
    first: dict[str, Any] = {viewer: views.snapshot_for(room, viewer) for viewer in viewers}
    events: dict[str, list[Any]] = {viewer: [] for viewer in viewers}

    def do(actor: Role, op: str, **args: Any) -> None:
        nonlocal room
        ctx = machine.Context(float(next(clock)), lambda: f"x{next(counter):04d}")
        room, event = machine.apply(room, actor, actions.command(op, **args), ctx)
        for viewer in viewers:
            events[viewer].append(views.event_for(event, viewer))

    def part_named(name: str) -> str:
        return next(p.id for p in room.parts.values() if p.name == name)

    do("therapist", "agreement.add", text="No blaming")
    do("a", "agreement.ack", id=next(iter(room.agreements)))
    do("therapist", "stage.set", stage=3)
    do("a", "part.add", name="Lantern keeper", kind="manager", x=0.2, y=0.3)
    do("a", "part.add", name="Small one in the attic", kind="exile", x=0.1, y=0.8)
    do("b", "part.add", name="Door slammer", kind="firefighter", x=0.8, y=0.4)
    do("a", "link.add", kind="protects", source=part_named("Lantern keeper"),
       target=part_named("Small one in the attic"))
    do("b", "part.reveal_all", confirm=True)
    do("a", "part.reveal", id=part_named("Lantern keeper"))
    do("a", "link.add", kind="reacts_to", source=part_named("Lantern keeper"),
       target=part_named("Door slammer"))
    do("a", "part.move", id=part_named("Lantern keeper"), x=0.45, y=0.5)
    do("a", "part.blend", id=part_named("Lantern keeper"), level=6)
    do("a", "part.withdraw", id=part_named("Lantern keeper"))
    do("a", "overwhelm.raise")
    do("b", "ready.set", ready=True)
    do("therapist", "note.add", text="Teo softened")
    do("therapist", "stage.set", stage=5)
    do("b", "need.set", part=part_named("Door slammer"), text="a minute to breathe")
    do("b", "need.reveal", part=part_named("Door slammer"))
    do("b", "need.self", part=part_named("Door slammer"), text="a slow breath")
    do("b", "request.make", part=part_named("Door slammer"), text="let me step out for a bit")
    do("a", "request.answer", part=part_named("Door slammer"), answer="lets_talk", note="how long?")
    do("b", "part.remove", id=part_named("Door slammer"))
    final: dict[str, Any] = {viewer: views.snapshot_for(room, viewer) for viewer in viewers}
    return first, events, final


def test_the_browser_mirror_applies_events_like_the_core() -> None:
    node = shutil.which("node")
    assert node, "node is installed by scripts/setup.sh"
    first, events, final = play()
    # Every viewer got every sequence number, some as placeholders.
    assert any(event.get("hidden") for event in events["b"])
    script = RUNNER % json.dumps(VIEW_JS.as_uri())
    result = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps({"views": first, "events": events}),
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["gap"] == "GapError"
    expected = json.loads(json.dumps(final))
    for viewer in ("therapist", "a", "b"):
        assert answer["out"][viewer] == expected[viewer], viewer


@pytest.mark.parametrize("viewer", ["a", "b"])
def test_a_partner_mirror_never_holds_the_other_partners_drafts(viewer: str) -> None:
    first, events, _ = play()
    other = "b" if viewer == "a" else "a"
    text = json.dumps([first[viewer], events[viewer]])
    drafts = {"a": ["Small one in the attic"], "b": []}[other]
    for name in drafts:
        assert name not in text
