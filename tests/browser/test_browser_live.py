"""Live behaviour in the browser: a drop made offline lands once after reconnecting,
the keyboard alone carries a partner through the core path, and the pages pass an
accessibility scan."""

from __future__ import annotations

import re

from browser_helpers import DESKTOP, PHONE, Person, axe_scan, tab_to
from playwright.sync_api import expect


def at_stage_two(open_person, links) -> tuple[Person, Person, Person]:  # type: ignore[no-untyped-def]
    therapist = open_person("therapist")
    therapist.join(links.therapist)
    alex = open_person("alex")
    alex.join(links.a)
    sam = open_person("sam")
    sam.join(links.b)
    therapist.page.click("#stage-next")
    for person in (therapist, alex, sam):
        expect(person.page.locator("#stage-title")).to_contain_text("Stage 2 of 5")
    return therapist, alex, sam


def moves_of(person: Person, part_id: str) -> list[int]:
    """Sequence numbers of the committed moves of one part this person received."""
    return [
        frame["seq"] for frame in person.decoded_frames()
        if frame.get("t") == "ev" and frame.get("op") == "part.move"
        and any(change[1] == part_id for change in frame.get("changes", ()))
    ]


def test_a_drop_made_offline_lands_once_after_reconnecting(room, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist, alex, sam = at_stage_two(open_person, room)
    alex.add_part("The Worrier", "manager")
    alex.share("The Worrier")
    expect(sam.card("The Worrier")).to_have_count(1)
    part_id = alex.part_id("The Worrier")
    start = sam.position("The Worrier")

    # Mid-drag, the network goes away; the drop happens offline.
    alex.drag_by("The Worrier", 120, 40, release=False)
    # Sam sees the live drag before the drop is stored.
    expect(sam.card("The Worrier")).to_have_class(re.compile(r"\bremote-moving\b"))
    alex.context.set_offline(True)
    expect(alex.status).to_contain_text("Reconnecting…")
    # Dropped low on Alex's side, far from its place at the top.
    area = alex.page.locator("#cards-area").bounding_box()
    assert area
    alex.page.mouse.move(area["x"] + 60, area["y"] + area["height"] * 0.8, steps=8)
    alex.page.mouse.up()
    dropped = alex.shown_position("The Worrier")
    assert dropped != start
    expect(alex.status).to_have_text(
        "Reconnecting… 1 change will be sent when the connection is back")
    assert moves_of(sam, part_id) == []

    alex.context.set_offline(False)
    expect(alex.status).to_have_text("Connected")
    # The drop rests on the nearest free place (the server's), the same for everyone.
    settled = alex.position("The Worrier")
    assert settled != start
    for person in (sam, therapist):
        person.expect_position("The Worrier", settled)
    # Landed once: one stored move, seen once by everyone.
    assert len(moves_of(sam, part_id)) == 1
    assert len(moves_of(therapist, part_id)) == 1
    assert moves_of(alex, part_id) == moves_of(sam, part_id)
    # A reload (a fresh snapshot) shows the same place.
    sam.page.reload()
    expect(sam.status).to_have_text("Connected")
    assert sam.position("The Worrier") == settled


def test_keyboard_alone_carries_a_partner(room, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist, alex, sam = at_stage_two(open_person, room)
    page = sam.page
    kb = page.keyboard
    # Add a part.
    page.locator("body").focus()
    tab_to(page, "#part-name")
    kb.type("The Quiet One")
    kb.press("Tab")
    assert page.evaluate("document.activeElement.id") == "part-kind"
    kb.type("Fire")  # typing picks the option, as on any select
    kb.press("Tab")
    kb.press("Enter")
    expect(sam.card("The Quiet One")).to_have_count(1)
    expect(sam.card("The Quiet One")).to_contain_text("Firefighter")
    expect(alex.card("The Quiet One")).to_have_count(0)
    sam.saved()
    part_id = sam.part_id("The Quiet One")
    # Share it.
    tab_to(page, f"button[data-focus='share-{part_id}']", backwards=True)
    kb.press("Enter")
    expect(alex.card("The Quiet One")).to_have_count(1)
    # Move it with the arrow keys.
    before = sam.position("The Quiet One")
    tab_to(page, f"button[data-focus='card-{part_id}']", backwards=True)
    for key in ("ArrowLeft", "ArrowLeft", "Shift+ArrowLeft", "ArrowDown", "ArrowDown"):
        kb.press(key)
    sam.saved()
    after = sam.position("The Quiet One")
    assert after != before
    alex.expect_position("The Quiet One", after)
    # Open its details with Enter; the panel takes the focus.
    kb.press("Enter")
    expect(page.locator("#part-panel-title")).to_have_text("The Quiet One")
    expect(page.locator("#part-panel-title")).to_be_focused()
    # Ask for a pause.
    tab_to(page, "#pause-raise", backwards=True)
    kb.press("Enter")
    for person in (therapist, alex, sam):
        expect(person.page.locator("#pause-banner")).to_contain_text("asked for a pause")
    expect(therapist.page.locator("#care-live")).to_contain_text("Sam asked for a pause")
    # Agree to an agreement with the keyboard.
    therapist.page.fill("#agreement-text", "We speak for our parts")
    therapist.page.click("#agreement-add button[type=submit]")
    expect(page.get_by_role("button", name="I agree")).to_be_visible()
    tab_to(page, "#agreements-list button")
    kb.press("Space")
    expect(therapist.page.locator("#agreements-list")).to_contain_text("Sam: agreed")


# Every impact counts: the pages are axe clean, not only free of serious findings.
IMPACTS = {"critical", "serious", "moderate", "minor"}


SIZES = [(360, 740), (390, 844), (768, 1024), (1280, 800), (1920, 1080)]


def axe_violations(*people: Person) -> list[str]:
    """Every finding on these people's pages, each named with its page."""
    return [
        f"{person.label}: {v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
        for person, found in zip(people, axe_scan(*(p.page for p in people)), strict=True)
        for v in found if v.get("impact") in IMPACTS
    ]


def test_accessibility_scan_of_the_start_and_room_pages(server, room, open_person) -> None:  # type: ignore[no-untyped-def]
    found: dict[str, list[str]] = {}
    visitor = open_person("start")
    visitor.goto(f"{server.base_url}/")
    found["start"] = axe_violations(visitor)
    visitor.page.set_viewport_size(PHONE)
    found["start, phone"] = axe_violations(visitor)
    visitor.page.set_viewport_size(DESKTOP)
    visitor.page.fill("#name-a", "Alex")
    visitor.page.fill("#name-b", "Sam")
    visitor.page.fill("#practice-key", "test-key")
    visitor.page.click("#create-button")
    expect(visitor.page.locator("#links")).to_be_visible()
    found["start, links"] = axe_violations(visitor)

    therapist, alex, sam = at_stage_two(open_person, room)
    therapist.page.fill("#agreement-text", "Either of us can pause")
    therapist.page.click("#agreement-add button[type=submit]")
    alex.add_part("The Planner", "manager")
    alex.add_part("The Alarm", "firefighter")
    alex.share("The Alarm")
    sam.add_part("The Quiet One", "firefighter")
    sam.share("The Quiet One")
    alex.select("The Alarm")
    found["room stage 2"] = axe_violations(therapist, alex, sam)
    for number in (3, 4, 5):
        therapist.page.click("#stage-next")
        expect(alex.page.locator("#stage-title")).to_contain_text(f"Stage {number} of 5")
    alex.select("The Alarm")
    sam.page.fill("#checkin-note", "Curious")
    sam.page.click("#checkin-form button[type=submit]")
    sam.saved()
    therapist.page.click("[data-focus='stage-2']")
    expect(therapist.page.locator("#preview")).to_be_visible()
    found["room stage 5"] = axe_violations(therapist, alex, sam)
    # Every size from a small phone to a wide screen, with the care signals up (two pauses,
    # the quiet signal, a ready mark) and the ending moment on.
    sam.page.click("#pause-raise")
    alex.page.click("#pause-raise")
    alex.page.click("#overwhelm-toggle")
    sam.page.click("#ready-toggle")
    expect(therapist.page.locator("#care-badges li")).to_have_count(4)
    therapist.page.click("#end-session")
    therapist.page.locator("#confirm-dialog").get_by_role("button", name="End the session").click()
    expect(sam.page.locator("#ending-panel")).to_be_visible()
    for width, height in SIZES:
        for person in (therapist, alex, sam):
            person.page.set_viewport_size({"width": width, "height": height})
        found[f"room stage 5, ending, {width}x{height}"] = axe_violations(therapist, alex, sam)
    phone = open_person("alex on a phone", phone=True)
    phone.join(room.a)
    found["room stage 5, phone"] = axe_violations(phone)
    bad = {page: violations for page, violations in found.items() if violations}
    assert not bad, bad


def test_the_therapist_moves_back_only_after_confirming_and_previews(room, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist, alex, sam = at_stage_two(open_person, room)
    t = therapist.page
    t.click("#stage-back")
    dialog = t.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Go back to stage 1, Creating a Safe Space?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    therapist.saved()
    expect(alex.page.locator("#stage-title")).to_contain_text("Stage 2 of 5")
    t.click("#stage-back")
    dialog.get_by_role("button", name="Go back to stage 1").click()
    for person in (therapist, alex, sam):
        expect(person.page.locator("#stage-title")).to_contain_text("Stage 1 of 5")
    expect(alex.page.locator("#add-part")).to_be_hidden()
    expect(alex.page.locator("#live")).to_contain_text("Now at stage 1: Creating a Safe Space.")
    # A preview shows another stage's guidance to the therapist alone.
    t.get_by_role("button", name=re.compile(r"^Preview stage 4\.")).click()
    expect(t.locator("#preview")).to_be_visible()
    expect(t.locator("#preview-title")).to_have_text("Preview of stage 4: Accessing the Self")
    expect(t.locator("#preview-guidance")).to_contain_text("check in with your Self")
    expect(t.locator("#stage-title")).to_contain_text("Stage 1 of 5")
    expect(sam.page.locator("#preview")).to_be_hidden()
    t.click("#preview-go")
    for person in (therapist, alex, sam):
        expect(person.page.locator("#stage-title")).to_contain_text("Stage 4 of 5")
    expect(t.locator("#preview")).to_be_hidden()
    # The therapist changes a partner's display name (in the folded session settings);
    # everyone sees it.
    t.get_by_text("Session settings").click()
    form = t.locator("#partners-edit form").nth(1)
    form.get_by_role("textbox", name="The second partner's name").fill("Sam R.")
    form.get_by_role("button", name="Save the second partner's name and colour").click()
    expect(alex.page.locator("#presence")).to_contain_text("Sam R.")
    expect(sam.page.locator("#presence")).to_contain_text("Sam R. (you)")


def test_drafts_only_their_owner_sees(server, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist = open_person("therapist")
    therapist.goto(f"{server.base_url}/")
    t = therapist.page
    t.fill("#practice-key", "test-key")
    t.fill("#name-a", "Robin")
    t.fill("#name-b", "Kai")
    t.check("#drafts-owner")
    t.click("#create-button")
    expect(t.locator("#links")).to_be_visible()
    expect(t.locator("#link-a-label")).to_have_text("Link for Robin")
    link_a = t.input_value("#link-a")
    t.click("#open-room")
    expect(therapist.status).to_have_text("Connected")
    robin = open_person("robin")
    robin.join(link_a)
    t.click("#stage-next")
    expect(robin.page.locator("#add-part")).to_be_visible()
    robin.add_part("The Scorekeeper", "manager")
    expect(robin.card("The Scorekeeper")).to_contain_text("Only you can see this")
    expect(robin.page.locator("#add-part-privacy")).to_have_text(
        "Only you can see this until you share it.")
    expect(t.locator("#therapist-status")).to_contain_text("Robin has 1 part not yet shared.")
    therapist.assert_never_seen(["The Scorekeeper"])
    robin.share("The Scorekeeper")
    expect(therapist.card("The Scorekeeper")).to_have_count(1)
    # A need is private first too, said the same way, and its count is all the therapist gets.
    t.get_by_text("Session settings").click()
    expect(t.locator("#drafts-setting")).to_contain_text("you see only what is shared")
    for number in (3, 4, 5):
        t.click("#stage-next")
        for person in (therapist, robin):
            expect(person.page.locator("#stage-title")).to_contain_text(f"Stage {number} of 5")
    need = "to be thanked when it keeps the count"
    item = robin.page.locator("#needs-list li.need").filter(has_text="The Scorekeeper")
    expect(item.get_by_label("What does The Scorekeeper need?")).to_have_accessible_description(
        "Only you can see this until you share it.")
    item.get_by_label("What does The Scorekeeper need?").fill(need)
    item.get_by_role("button", name="Save the need").click()
    expect(item.locator(".privacy-line")).to_have_text("Only you can see this")
    expect(t.locator("#needs-help")).to_contain_text("Robin has 1 need not yet shared.")
    robin.saved()
    therapist.assert_never_seen([need])
    item.get_by_role("button", name="Share what The Scorekeeper needs").click()
    expect(t.locator("#needs-list")).to_contain_text(need)
    expect(t.locator("#needs-help")).not_to_contain_text("not yet shared")
