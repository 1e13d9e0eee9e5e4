"""Export downloads (server.export_render): JSON, Markdown and HTML for each role."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from itertools import count
from typing import Any

import pytest

from rooms import actions, machine, views
from rooms.errors import BadRequest
from rooms.export import export_for, room_from_export
from rooms.model import SELF_QUALITIES, PartnerInfo, Role, Room
from server.export_render import TITLE, render_export

EXPORTED_AT = 1_795_780_800.0  # 2026-11-27 10:00 UTC
ROLES: tuple[Role, ...] = ("therapist", "a", "b")
FORMATS = ("json", "md", "html")
INJECTION = "<img src=x onerror=alert(1)>"
FILENAME = re.compile(r"^partsboard-export-\d{4}-\d{2}-\d{2}-(therapist|partner-a|partner-b)"
                      r"\.(json|md|html)$")


class Demo:
    """Alex and Sam's board (DOMAIN.md), plus a part whose name is an injection attempt."""

    def __init__(self, drafts: bool = True) -> None:
        ids = count(1)
        self.now = 1_795_776_000.0
        self.new_id = lambda: f"id{next(ids):04d}"
        self.room: Room = machine.new_room(
            room_id="demo", epoch="e1",
            partners={"a": PartnerInfo("Alex", "#1f6fb2"), "b": PartnerInfo("Sam", "#b3541e")},
            therapist_sees_drafts=drafts, now=self.now,
        )
        self.ids: dict[str, str] = {}
        agreement = self.add("therapist", "agreement.add", "agreements",
                             text="Either of us can take a pause at any time.")
        self.do("a", "agreement.ack", id=agreement)
        self.do("b", "agreement.ack", id=agreement)
        self.add("therapist", "agreement.add", "agreements",
                 text="We speak for our parts, not from them.")
        self.do("therapist", "stage.set", stage=5)
        demo_parts: list[tuple[str, Role, str, str]] = [
            ("planner", "a", "The Planner", "manager"),
            ("alarm", "a", "The Alarm", "firefighter"),
            ("left", "a", "The one who gets left", "exile"),
            ("quiet", "b", "The Quiet One", "firefighter"),
            ("good", "b", "The Good Kid", "manager"),
            ("never", "b", "The one who is never enough", "exile"),
        ]
        for key, owner, name, kind in demo_parts:
            self.ids[key] = self.add(owner, "part.add", "parts", name=name, kind=kind)
            self.do(owner, "part.reveal", id=self.ids[key], confirm=True)
        self.ids["evil"] = self.add("a", "part.add", "parts", name=INJECTION, kind="unsure")
        self.do("a", "part.reveal", id=self.ids["evil"], confirm=True)
        self.ids["a_draft"] = self.add("a", "part.add", "parts", name="Alex's unshared draft")
        self.ids["b_draft"] = self.add("b", "part.add", "parts", name="Sam's unshared draft")
        self.do("a", "part.blend", id=self.ids["alarm"], level=7)
        self.link("a", "reacts_to", "alarm", "quiet")
        self.link("b", "reacts_to", "quiet", "alarm")
        self.link("a", "protects", "planner", "left")
        self.link("a", "protects", "a_draft", "left")
        self.link("b", "protects", "b_draft", "never")
        self.do("a", "need.set", part=self.ids["left"], text="To know Sam is coming back")
        self.do("a", "need.reveal", part=self.ids["left"])
        self.do("a", "need.self", part=self.ids["left"], text="I can hold it for a while")
        self.do("a", "request.make", part=self.ids["left"],
                text="When you need space, tell me when you'll be back")
        self.do("b", "request.answer", part=self.ids["left"], answer="yes",
                note="I can do that")
        scores = {quality: 6 for quality in SELF_QUALITIES}
        self.do("a", "checkin.set", scores=scores, note="Alex's check-in note, not shared")
        self.do("b", "checkin.set", scores=scores, note="Sam's check-in note, shared")
        self.do("b", "checkin.reveal")
        self.add("therapist", "note.add", "notes", text="Therapist's own note\nsecond line")

    def do(self, actor: Role, op: str, **args: Any) -> views.Event:
        self.now += 1
        self.room, event = machine.apply(self.room, actor, actions.command(op, **args),
                                         machine.Context(self.now, self.new_id))
        return event

    def add(self, actor: Role, op: str, coll: str, **args: Any) -> str:
        before = set(getattr(self.room, coll))  # a new card may move others out of its way
        (key,) = [c.id for c in self.do(actor, op, **args).changes
                  if c.coll == coll and c.id not in before]
        return key

    def link(self, owner: Role, kind: str, source: str, target: str) -> None:
        self.do(owner, "link.add", kind=kind, source=self.ids[source], target=self.ids[target])


@pytest.fixture(scope="module")
def demo() -> Demo:
    return Demo()


def rendered(demo: Demo, role: Role, fmt: str) -> tuple[str, str, str]:
    body, content_type, filename = render_export(export_for(demo.room, role, EXPORTED_AT), fmt)
    assert isinstance(body, bytes)
    return body.decode("utf-8"), content_type, filename


class Tags(HTMLParser):
    """Every start tag and the text of <title>, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.title = ""
        self._in_title = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)


def parsed(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    tags.close()
    return tags


def readable(body: str, fmt: str) -> str:
    """The words a reader sees: HTML's text, or Markdown without its escapes."""
    text = "".join(parsed(body).text) if fmt == "html" else re.sub(r"\\(.)", r"\1", body)
    return re.sub(r"\s+", " ", text)


NAMES = ("Alex", "Sam", "Planner", "Alarm", "Quiet", "draft", "img")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("role", ROLES)
def test_every_format_for_every_role(demo: Demo, role: Role, fmt: str) -> None:
    body, content_type, filename = rendered(demo, role, fmt)
    word = {"therapist": "therapist", "a": "partner-a", "b": "partner-b"}[role]
    assert filename == f"partsboard-export-2026-11-27-{word}.{fmt}"
    assert FILENAME.match(filename)
    assert not any(name.lower() in filename.lower() for name in NAMES)
    assert content_type == {"json": "application/json; charset=utf-8",
                            "md": "text/markdown; charset=utf-8",
                            "html": "text/html; charset=utf-8"}[fmt]
    if fmt == "json":
        assert json.loads(body) == export_for(demo.room, role, EXPORTED_AT)
    else:
        for words in ("The Alarm", "The Quiet One", "Either of us can take a pause"):
            assert words in body


def test_json_download_seeds_a_new_room(demo: Demo) -> None:
    body, _, _ = rendered(demo, "therapist", "json")
    room = room_from_export(json.loads(body), room_id="next-week", epoch="e2", now=1.0)
    assert {part.name for part in room.parts.values()} >= {"The Alarm", "The Quiet One"}


@pytest.mark.parametrize("role", ROLES)
def test_html_is_a_print_friendly_page_with_a_nameless_title(demo: Demo, role: Role) -> None:
    html, _, _ = rendered(demo, role, "html")
    page = parsed(html)
    assert page.title == TITLE == "Partsboard session export"
    assert html.count("<title>") == 1
    assert html.startswith("<!doctype html>")
    assert '<html lang="en">' in html
    assert "<style>" in html and "@media print" in html
    assert "script" not in page.tags
    assert "default-src 'none'" in html  # the downloaded page may load and run nothing


@pytest.mark.parametrize("role", ROLES)
def test_a_name_that_is_markup_stays_text(demo: Demo, role: Role) -> None:
    html, _, _ = rendered(demo, role, "html")
    assert INJECTION not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    page = parsed(html)
    assert "img" not in page.tags
    assert INJECTION in "".join(page.text)  # shown to the reader as the words it is
    markdown, _, _ = rendered(demo, role, "md")
    assert INJECTION not in markdown
    assert not re.search(r"(?<!\\)[<>]", markdown)  # every angle bracket is escaped
    assert r"\<img src=x onerror=alert(1)\>" in markdown


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_therapist_copy_has_notes_and_no_drafts(demo: Demo, fmt: str) -> None:
    body = readable(rendered(demo, "therapist", fmt)[0], fmt)
    assert "Therapist's own note" in body and "Your notes" in body
    for private in ("Alex's unshared draft", "Sam's unshared draft", "Alex's check-in note",
                    "not shared"):
        assert private not in body
    assert "Sam's check-in note, shared" in body


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("partner", ["a", "b"])
def test_a_partner_copy_marks_their_private_items_and_has_no_notes(
    demo: Demo, partner: Role, fmt: str,
) -> None:
    raw, _, _ = rendered(demo, partner, fmt)
    body = readable(raw, fmt)
    own, other = ("Alex", "Sam") if partner == "a" else ("Sam", "Alex")
    assert f"{own}'s unshared draft" in body
    assert f"{other}'s unshared draft" not in body
    assert "own note" not in body and "Your notes" not in body
    assert "not shared" in body
    # Each line naming the draft (the part itself, its link) carries the mark.
    draft = f"{own}&#39;s unshared draft" if fmt == "html" else f"{own}'s unshared draft"
    marked = [line for line in raw.splitlines() if draft in line]
    assert len(marked) == 2 and all("not shared" in line for line in marked)
    assert ("Alex's check-in note" in body) is (partner == "a")


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_wording_of_the_board(demo: Demo, fmt: str) -> None:
    text = readable(rendered(demo, "therapist", fmt)[0], fmt)
    assert re.search(r"The Alarm \(Alex\) reacts to The Quiet One \(Sam\)", text)
    assert re.search(r"The Quiet One \(Sam\) reacts to The Alarm \(Alex\)", text)
    assert "The Planner protects The one who gets left" in text
    assert "blended 7 of 10" in text
    assert "Acknowledged by Alex and Sam." in text
    assert "Not acknowledged yet." in text
    assert "Request to Sam: When you need space, tell me when you'll be back" in text
    # The answer and its note each stand alone: no punctuation is added to the note's own.
    assert re.search(r"Sam's answer: Yes -? ?Sam's note: I can do that", text)
    assert "Managers" in text and "Firefighters" in text and "Exiles" in text
    assert "stage 5 of 5" in text and "Working with Parts in the Relationship" in text
    assert "Calm" in text and "Connectedness" in text


def test_markdown_keeps_multi_line_text_inside_its_item(demo: Demo) -> None:
    markdown, _, _ = rendered(demo, "therapist", "md")
    assert "Therapist's own note  \n  second line" in markdown
    assert markdown.startswith("# Partsboard session export\n")
    assert "\n\n\n" not in markdown


def test_a_colour_that_is_not_a_colour_never_reaches_the_page(demo: Demo) -> None:
    doc = export_for(demo.room, "therapist", EXPORTED_AT)
    doc["partners"]["a"]["color"] = "red;background:url(https://example.invalid/x)"
    html = render_export(doc, "html")[0].decode()
    assert "example.invalid" not in html
    assert "border-left-color: #b3541e" in html


def test_dates_and_roles_in_file_names(demo: Demo) -> None:
    doc = export_for(demo.room, "b", 0.0)
    assert render_export(doc, "md")[2] == "partsboard-export-1970-01-01-partner-b.md"


@pytest.mark.parametrize("fmt", ["pdf", "", "JSON", "../html", "html "])
def test_an_unknown_format_is_refused(demo: Demo, fmt: str) -> None:
    with pytest.raises(BadRequest) as info:
        render_export(export_for(demo.room, "therapist", EXPORTED_AT), fmt)
    assert info.value.field == "format"
    assert fmt.strip() == "" or fmt not in info.value.message


def test_empty_board_renders_in_every_format() -> None:
    room = machine.new_room(
        room_id="empty", epoch="e", now=EXPORTED_AT, therapist_sees_drafts=False,
        partners={"a": PartnerInfo("Jo", "#000000"), "b": PartnerInfo("Lee", "#ffffff")},
    )
    for role in ROLES:
        for fmt in FORMATS:
            body, _, filename = render_export(export_for(room, role, EXPORTED_AT), fmt)
            assert body and FILENAME.match(filename)
    html = render_export(export_for(room, "therapist", EXPORTED_AT), "html")[0].decode()
    assert "No agreements were written." in html and "No parts were shared." in html


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_moves_of_issue_11_are_in_every_copy(fmt: str) -> None:
    board = Demo(drafts=False)
    ids = board.ids
    board.do("a", "part.details", id=ids["left"], burden="I'll be left", job="")
    board.do("a", "part.details", id=ids["alarm"], job="Makes sure I am heard")
    polarity = board.add("a", "link.add", "links", kind="polarized_with",
                         source=ids["planner"], target=ids["alarm"], label="plan or shout")
    board.do("a", "part.feel", id=ids["alarm"], other="annoyed")
    board.do("a", "part.feel", id=ids["alarm"], qualities={"curiosity": True})
    board.do("b", "checkin.set", scores=dict.fromkeys(SELF_QUALITIES, 8), note="later")
    board.do("b", "request.answer", part=ids["left"], answer="lets_talk", note="how often?")
    board.do("therapist", "turn.start", speaker="a")
    board.do("a", "turn.speak", text="A part of me feels scared", part=ids["alarm"])
    board.do("b", "turn.reflect", text="What I heard is scared")
    board.do("a", "turn.confirm", heard=True)
    uturn = board.add("therapist", "uturn.ask", "uturns", partner="b")
    board.do("b", "uturn.answer", id=uturn, text="my wall went up")
    board.do("b", "uturn.share", id=uturn)
    scribed = board.add("therapist", "scribe.part_add", "parts", partner="b", name="Fixer")
    board.add("therapist", "scribe.link_add", "links", kind="reacts_to", source=scribed,
              target=ids["alarm"])
    board.do("b", "part.reveal", id=scribed)
    board.do("a", "part.reveal", id=ids["a_draft"], to="therapist")
    assert polarity in board.room.links
    for role in ("therapist", "a"):
        text = readable(rendered(board, role, fmt)[0], fmt)
        for words in ("What it carries", "I'll be left", "Its job", "Makes sure I am heard",
                      "The Planner is polarized with The Alarm", "plan or shout",
                      "annoyed (another part)", "curiosity (Self)", "Self energy",
                      "Earlier check-ins", "What Alex's own Self can offer: I can hold it",
                      "Let's talk", "Alex spoke for The Alarm, Sam listened",
                      "What I heard is scared", "Alex felt heard", "my wall went up",
                      "written by the therapist"):
            assert words in text, (role, words)
        assert re.search(r"Fixer \(Sam\) reacts to The Alarm \(Alex\)\W*written by the therapist",
                         text), role
    partner = readable(rendered(board, "a", fmt)[0], fmt)
    assert "shared with your therapist only" in partner  # Alex's draft, first step
    assert "shared with your therapist only" not in readable(
        rendered(board, "therapist", fmt)[0], fmt)
