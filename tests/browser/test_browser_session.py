"""A whole session through the five stages, in three browser contexts.

The therapist creates the room on the start page and leads; Alex and Sam join
from their own links. Along the way: Sam's page and every websocket frame it
received never hold the text of Alex's unshared parts; screenshots of every
role at every stage, at desktop and phone sizes, go to tests/artifacts/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser_helpers import THERAPIST_KEY, Person
from playwright.sync_api import expect

AGREEMENT = "Either of us can take a pause at any time"
NOTE = "Alex's Alarm eased once Sam named the Quiet One"
NEED = "to know Sam is coming back"
REQUEST = "when you need space, tell me when you'll be back"
ANSWER_NOTE = "I'll say a time, even a rough one"
# Alex's parts that are never shared: Sam must never receive them.
NEVER_SHARED = "The one who keeps score of every slight"


def start_room(therapist: Person, base_url: str) -> dict[str, str]:
    page = therapist.page
    therapist.goto(f"{base_url}/")
    expect(page).to_have_title("Partsboard")
    page.fill("#practice-key", THERAPIST_KEY)
    page.fill("#name-a", "Alex")
    page.fill("#name-b", "Sam")
    page.click("#create-button")
    expect(page.locator("#links")).to_be_visible()
    links = {role: page.input_value(f"#link-{role}") for role in ("a", "b", "therapist")}
    for link in links.values():
        pattern = rf"{re.escape(base_url)}/r/[A-Za-z0-9_-]{{16,}}#[A-Za-z0-9_-]{{32,}}"
        assert re.fullmatch(pattern, link)
    assert "Alex" not in json.dumps(links) and "Sam" not in json.dumps(links)
    page.click("#open-room")
    expect(page.locator("#room")).to_be_visible()
    expect(therapist.status).to_have_text("Connected")
    # The secret left the address bar; reloading still works from this tab's storage.
    assert "#" not in page.url
    return links


def stage_is(person: Person, number: int) -> None:
    expect(person.page.locator("#stage-title")).to_contain_text(f"Stage {number} of 5")


def next_stage(therapist: Person, others: list[Person], number: int) -> None:
    therapist.page.click("#stage-next")
    for person in (therapist, *others):
        stage_is(person, number)


def screens(folder: Path, stage: int, everyone: dict[str, Person]) -> None:
    for role, person in everyone.items():
        person.shoot(folder, f"stage{stage}-{role}")


@pytest.mark.timeout(240)
def test_a_whole_session_in_three_browsers(server, open_person, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    shots = artifacts / "session"
    therapist = open_person("therapist")
    links = start_room(therapist, server.base_url)
    alex = open_person("alex")
    sam = open_person("sam")
    alex.join(links["a"])
    sam.join(links["b"])
    everyone = {"therapist": therapist, "alex": alex, "sam": sam}
    t, a, b = therapist.page, alex.page, sam.page
    for person in everyone.values():
        expect(person.page).to_have_title(re.compile(r"^Partsboard( — session)?$"))
        # Presence: all three people are here.
        expect(person.page.locator("#presence .person.here")).to_have_count(3)

    # ------------------------------------------------------------ 1. a safe space
    stage_is(sam, 1)
    t.fill("#agreement-text", AGREEMENT)
    t.click("#agreement-add button[type=submit]")
    for page in (a, b):
        expect(page.locator("#agreements-list")).to_contain_text(AGREEMENT)
    a.get_by_role("button", name="I agree").click()
    b.get_by_role("button", name="I agree").click()
    for page in (t, a, b):
        expect(page.locator("#agreements-list")).to_contain_text("Alex: agreed")
        expect(page.locator("#agreements-list")).to_contain_text("Sam: agreed")

    # A pause, raised by Sam, shown to everyone until the therapist clears it.
    b.click("#pause-raise")
    for page in (t, a, b):
        expect(page.locator("#pause-banner")).to_be_visible()
        expect(page.locator("#pause-banner")).to_contain_text("asked for a pause")
    expect(a.locator("#pause-banner")).to_contain_text("Sam asked for a pause")
    expect(a.locator("#pause-clear")).to_be_hidden()
    t.click("#pause-clear")
    for page in (t, a, b):
        expect(page.locator("#pause-banner")).to_be_hidden()

    # The quiet signal reaches the therapist only; Alex is told it was seen only once the
    # therapist says so; "I'm ready" shows to the therapist.
    a.click("#overwhelm-toggle")
    expect(t.locator("#therapist-status")).to_contain_text("Alex is getting overwhelmed.")
    expect(a.locator("#overwhelm-toggle")).to_have_attribute("aria-pressed", "true")
    expect(a.locator("#overwhelm-toggle")).to_have_text("Sent to your therapist")
    sam.saved()
    assert "overwhelmed" not in b.inner_text("body").replace("I'm getting overwhelmed", "")
    t.get_by_role("button", name="I've seen that Alex is overwhelmed").click()
    expect(a.locator("#overwhelm-toggle")).to_have_text("Your therapist has seen this")
    t.get_by_role("button", name="Clear Alex's overwhelm signal").click()
    expect(t.locator("#therapist-status")).not_to_contain_text("getting overwhelmed")
    expect(a.locator("#overwhelm-toggle")).to_have_text("I'm getting overwhelmed")
    expect(a.locator("#overwhelm-help")).to_contain_text("Your therapist saw it and cleared it.")
    b.click("#ready-toggle")
    expect(t.locator("#therapist-status")).to_contain_text("Sam is ready for the next step.")
    expect(t.locator("#live")).to_contain_text("Sam is ready for the next step.")
    screens(shots, 1, everyone)
    next_stage(therapist, [alex, sam], 2)
    # Ready marks reset when the stage changes.
    expect(t.locator("#therapist-status")).to_contain_text("Sam has not said they are ready yet.")

    # ------------------------------------------------------------ 2. identifying parts
    alex.add_part("The Planner", "manager")
    alex.add_part("The Alarm", "firefighter")
    alex.add_part("The one who gets left", "exile")
    alex.add_part(NEVER_SHARED, "manager")
    sam.add_part("The Quiet One", "firefighter")
    sam.add_part("The Good Kid", "manager")
    drafts = ["The Planner", "The Alarm", "The one who gets left", NEVER_SHARED]
    expect(alex.card("The Alarm")).to_contain_text("Only you and your therapist can see this")
    # The therapist sees drafts in this room, marked as not yet shared.
    expect(therapist.card("The Alarm")).to_contain_text("Not yet shared")
    expect(b.locator("#board")).to_contain_text("Alex has 4 parts not yet shared")
    expect(t.locator("#therapist-status")).to_contain_text("Alex has 4 parts not yet shared.")
    sam.assert_never_seen(drafts)

    alex.share("The Alarm")
    expect(sam.card("The Alarm")).to_have_count(1)
    expect(b.locator("#live")).to_contain_text("Alex shared a part.")
    sam.page.click("#reveal-all")
    expect(alex.card("The Quiet One")).to_have_count(1)
    expect(alex.card("The Good Kid")).to_have_count(1)
    # Shared, then withdrawn: it leaves Sam's board.
    frames_before_planner = len(sam.frames)
    sam.assert_never_seen(["The Planner", "The one who gets left", NEVER_SHARED])
    alex.share("The Planner")
    expect(sam.card("The Planner")).to_have_count(1)
    alex.take_back("The Planner")
    expect(sam.card("The Planner")).to_have_count(0)
    expect(b.locator("#live")).to_contain_text("Alex took a part back.")
    assert frames_before_planner > 0
    expect(t.locator("#therapist-status")).to_contain_text("Alex has 3 parts not yet shared.")

    # Alex drags The Alarm toward the middle; the drop is stored and everyone matches.
    before = sam.position("The Alarm")
    alex.drag_by("The Alarm", 260, 120)
    alex.saved()
    after = alex.position("The Alarm")
    assert after != before
    for person in (sam, therapist):
        person.expect_position("The Alarm", after)
    # Sam cannot move Alex's card.
    expect(sam.card("The Alarm")).not_to_have_class(re.compile(r"\bmovable\b"))

    # Spotlight and freeze.
    therapist.card("The Alarm").get_by_role("button", name="Put The Alarm in the spotlight").click()
    banner = "In the spotlight: The Alarm"
    expect(b.locator("#spotlight-banner")).to_have_text(f"{banner} (Alex's part)")
    expect(a.locator("#spotlight-banner")).to_have_text(f"{banner} (your part)")
    t.click("#freeze-toggle")
    expect(b.locator("#frozen-banner")).to_be_visible()
    expect(b.locator("#add-part")).to_be_hidden()
    t.click("#freeze-toggle")
    expect(b.locator("#frozen-banner")).to_be_hidden()
    t.click("#spotlight-clear")
    expect(b.locator("#spotlight-banner")).to_be_hidden()
    screens(shots, 2, everyone)
    next_stage(therapist, [alex, sam], 3)

    # ------------------------------------------------------------ 3. unblending
    alex.select("The Alarm")
    a.locator("#part-panel input[type=range]").fill("7")
    expect(alex.card("The Alarm")).to_contain_text("Blended 7 of 10")
    expect(sam.card("The Alarm")).to_contain_text("Blended 7 of 10")
    # The couple's cycle: The Alarm reacts to The Quiet One, and back.
    panel = a.locator("#part-panel")
    panel.get_by_label("This part reacts to…").select_option(label="The Quiet One (Sam)")
    panel.locator("form.link-form").nth(1).get_by_role("button", name="Draw the arrow").click()
    # A private link: The Alarm protects a part that is not shared.
    panel.get_by_label("This part protects…").select_option(label="The one who gets left")
    panel.locator("form.link-form").nth(0).get_by_role("button", name="Draw the arrow").click()
    alex.saved()
    sam.select("The Quiet One")
    panel = b.locator("#part-panel")
    panel.get_by_label("This part reacts to…").select_option(label="The Alarm (Alex)")
    panel.locator("form.link-form").nth(1).get_by_role("button", name="Draw the arrow").click()
    sam.saved()
    expect(a.locator("#link-lines path")).to_have_count(3)
    expect(t.locator("#link-lines path")).to_have_count(3)
    expect(b.locator("#link-lines path")).to_have_count(2)
    expect(b.locator("#link-lines path.link-reacts")).to_have_count(2)
    expect(b.locator("#links-list")).to_contain_text("The Alarm (Alex) reacts to The Quiet One")
    expect(b.locator("#links-list")).to_contain_text("The Quiet One reacts to The Alarm (Alex)")
    expect(a.locator("#links-list")).to_contain_text("The Alarm protects The one who gets left")
    sam.assert_never_seen(["The one who gets left", NEVER_SHARED])
    sam.assert_not_on_page(["The Planner"])  # shared once, then taken back
    screens(shots, 3, everyone)
    next_stage(therapist, [alex, sam], 4)

    # ------------------------------------------------------------ 4. accessing the Self
    for person, calm, note in ((alex, "6", "Steadier than an hour ago"), (sam, "8", "Curious")):
        person.page.fill("#checkin-calm", calm)
        person.page.fill("#checkin-curiosity", "7")
        person.page.fill("#checkin-note", note)
        person.page.click("#checkin-form button[type=submit]")
        person.saved()
    expect(b.locator("#checkins-view")).to_contain_text("Alex has a check-in not yet shared.")
    sam.assert_never_seen(["Steadier than an hour ago"])
    a.click("#checkin-share")
    b.click("#checkin-share")
    expect(b.locator("#checkins-view")).to_contain_text("Alex's check-in")
    expect(b.locator("#checkins-view")).to_contain_text("Steadier than an hour ago")
    expect(a.locator("#checkins-view")).to_contain_text("Curious")
    expect(t.locator("#checkins-view")).to_contain_text("Steadier than an hour ago")
    expect(t.locator("#checkins-view")).to_contain_text("Curious")
    t.fill("#note-text", NOTE)
    t.click("#note-add button[type=submit]")
    expect(t.locator("#notes-list")).to_contain_text(NOTE)
    screens(shots, 4, everyone)
    next_stage(therapist, [alex, sam], 5)

    # ------------------------------------------------------------ 5. parts in the relationship
    alex.share("The one who gets left")
    expect(sam.card("The one who gets left")).to_have_count(1)
    # The private link became visible with its parts.
    expect(b.locator("#link-lines path")).to_have_count(3)
    needs = a.locator("#needs-list")
    item = needs.locator("li.need").filter(has_text="The one who gets left")
    item.get_by_label("What does The one who gets left need?").fill(NEED)
    item.get_by_role("button", name="Save the need").click()
    alex.saved()
    item = needs.locator("li.need").filter(has_text="The one who gets left")
    # A need is private first, said like a part's: Sam gets nothing of it until Alex shares
    # it, and only a shared need becomes a request.
    expect(item.locator(".privacy-line")).to_have_text("Only you and your therapist can see this")
    expect(t.locator("#needs-list .privacy-line")).to_have_text(
        "Not yet shared: only Alex and you can see this")
    expect(b.locator("#needs-help")).to_contain_text("Alex has 1 need not yet shared.")
    expect(item.get_by_label("What would you like to ask Sam?")).to_have_count(0)
    sam.saved()
    sam.assert_never_seen([NEED])
    item.get_by_role("button", name="Share what The one who gets left needs").click()
    expect(item.locator(".privacy-line")).to_have_text("Shared with everyone")
    expect(b.locator("#needs-list")).to_contain_text(NEED)
    expect(b.locator("#needs-help")).not_to_contain_text("not yet shared")
    # IFIO's order: what Alex's own Self can offer the part comes before the request.
    expect(item).to_contain_text("Before asking Sam, write what your own Self can offer")
    item.get_by_label("What can your own Self offer The one who gets left?").fill(
        "I can remind it that I am here")
    item.get_by_role("button", name="Save what your Self offers").click()
    alex.saved()
    item.get_by_label("What would you like to ask Sam?").fill(REQUEST)
    item.get_by_role("button", name="Ask Sam").click()
    alex.saved()
    theirs = b.locator("#requests-list li.need").filter(has_text="The one who gets left")
    expect(theirs).to_contain_text(NEED)
    expect(theirs).to_contain_text(REQUEST)
    expect(theirs).to_contain_text("Waiting for your answer.")
    expect(a.locator("#needs-list")).to_contain_text("Waiting for Sam's answer.")
    expect(b.locator("#requests-title")).to_have_text("Asked of you (1 waiting)")
    theirs.get_by_label("Yes").check()
    theirs.get_by_label("A note with your answer (optional)").fill(ANSWER_NOTE)
    theirs.get_by_role("button", name="Send my answer").click()
    sam.saved()
    for page in (t, a, b):
        expect(page.locator("#home-list")).to_contain_text(REQUEST)
        # The request is quoted as written: no punctuation is added around its own.
        expect(page.locator("#home-list q")).to_have_text(REQUEST)
    expect(t.locator("#home-list")).to_contain_text("Alex asked; Sam said yes.")
    expect(a.locator("#home-list")).to_contain_text("You asked; Sam said yes.")
    expect(b.locator("#home-list")).to_contain_text("Alex asked; you said yes.")
    expect(a.locator("#needs-list")).to_contain_text("Sam answered: Yes")
    expect(b.locator("#requests-list")).to_contain_text("You answered: Yes")
    screens(shots, 5, everyone)

    # ------------------------------------------------------------ exports
    with t.expect_download() as info:
        t.click("button.export[data-format=json]")
    download = info.value
    assert "Alex" not in download.suggested_filename and "Sam" not in download.suggested_filename
    therapist_doc = json.loads(Path(download.path()).read_text())
    assert therapist_doc["kind"] == "therapist"
    assert AGREEMENT in [ag["text"] for ag in therapist_doc["agreements"]]
    assert NOTE in [n["text"] for n in therapist_doc["notes"]]
    assert {p["name"] for p in therapist_doc["parts"]} >= {"The Alarm", "The Quiet One"}
    assert NEVER_SHARED not in json.dumps(therapist_doc)
    export_file = artifacts / "session" / "therapist-export.json"
    export_file.write_text(json.dumps(therapist_doc))
    with a.expect_download() as info:
        a.click("button.export[data-format=md]")
    alex_md = Path(info.value.path()).read_text()
    assert NEVER_SHARED in alex_md  # a partner's own copy holds their drafts
    assert NOTE not in alex_md
    with b.expect_download() as info:
        b.click("button.export[data-format=html]")
    sam_html = Path(info.value.path()).read_text()
    assert "The Alarm" in sam_html and NEVER_SHARED not in sam_html and NOTE not in sam_html

    # Sam never held Alex's never-shared part, nor Alex's drafts before they were shared.
    sam.assert_never_seen([NEVER_SHARED])
    early = b"".join(sam.frames[:frames_before_planner])
    assert b"The one who gets left" not in early and b"The Planner" not in early

    # ------------------------------------------------------------ the end, with care
    t.click("#end-session")
    dialog = t.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Download (JSON)")).to_be_visible()
    expect(dialog.get_by_role("button", name="End the session")).to_have_class("danger-strong")
    dialog.get_by_role("button", name="End the session").click()
    # The partners get their moment to save their own copy, first on their page.
    for person in (alex, sam):
        panel = person.page.locator("#ending-panel")
        expect(panel).to_be_visible()
        expect(panel).to_contain_text("The session is ending: save your copy")
        expect(person.page.locator("#ending-time")).to_contain_text("The session closes in")
        expect(person.page.locator("#ending-bar")).to_be_visible()
        first = person.page.locator("#task-area > :not([hidden])").first
        expect(first).to_have_id("ending-panel")
    expect(t.locator("#ending-time")).to_contain_text("It closes by itself in")
    screens(shots, 6, everyone)
    with b.expect_download() as info:
        b.get_by_role("button", name="Save my copy (printable page)").click()
    assert "The Alarm" in Path(info.value.path()).read_text()
    expect(b.locator("#ending-status")).to_contain_text("Downloaded")
    t.get_by_role("button", name="End the session now").first.click()
    for person in everyone.values():
        expect(person.page.locator("#terminal")).to_be_visible()
        expect(person.page.locator("#terminal-title")).to_have_text("This session has ended")
        expect(person.page.locator("#terminal-text")).to_contain_text("Nothing from it was kept")
        expect(person.status).to_have_text("The session has ended")
        assert AGREEMENT not in person.everything_on_the_page()
    # Each partner keeps what they agreed to take home, from what their page already held.
    for person in (alex, sam):
        expect(person.page.locator("#kept-list")).to_contain_text(REQUEST)
        expect(person.page.locator("#kept")).to_contain_text("until you close the tab")
        assert NEED not in person.everything_on_the_page()
    expect(t.locator("#kept")).to_be_hidden()
    assert REQUEST not in therapist.everything_on_the_page()
    # The links now lead to the same page as a room that never existed.
    late = open_person("late")
    response = late.page.goto(links["b"])
    assert response is not None and response.status == 404
    expect(late.page.locator("body")).to_contain_text(
        "This session does not exist or has ended. Nothing from it was kept.")

    # ------------------------------------------------------------ next week
    therapist.goto(f"{server.base_url}/")
    therapist.page.fill("#practice-key", THERAPIST_KEY)
    therapist.page.set_input_files("#continue-file", str(export_file))
    expect(therapist.page.locator("#continue-status")).to_contain_text("ready to continue")
    expect(therapist.page.locator("#name-a")).to_have_value("Alex")
    therapist.page.click("#create-button")
    expect(therapist.page.locator("#links")).to_be_visible()
    therapist.page.click("#open-room")
    expect(therapist.page.locator("#agreements-list")).to_contain_text(AGREEMENT)
    expect(therapist.card("The Alarm")).to_have_count(1)
    stage_is(therapist, 1)
    for person in everyone.values():
        assert person.dialogs == []
