"""Flows built into the room page that the whole-session test does not walk through.

The therapist replaces a partner's link; edits and removes agreements and private notes; a
partner renames a part and changes its kind, removes an arrow and a need; a ninth window for
one person is told plainly that too many are open. Each test checks what every page then
says, and, where something private is involved, that it reached no one it should not.

One server for the module (each test makes its own room).
"""

from __future__ import annotations

import re
from pathlib import Path

from browser_helpers import axe_scan, confirm, create_room, join_three, move_to_stage
from playwright.sync_api import Page, expect

SERIOUS = {"serious", "critical"}
LINK = r"http://127\.0\.0\.1:\d+/r/[A-Za-z0-9_-]{16,}#[A-Za-z0-9_-]{32,}"


def screens(artifacts: Path) -> Path:
    folder = artifacts / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serious_violations(page: Page) -> list[str]:
    [found] = axe_scan(page)
    return [f"{v['id']} ({v['impact']})" for v in found if v.get("impact") in SERIOUS]


# ---------------------------------------------------------------- a replaced link


def test_the_therapist_replaces_a_partners_link(module_server, open_person,  # type: ignore[no-untyped-def]
                                                artifacts: Path) -> None:
    links = create_room(module_server.base_url, a="Robin", b="Kai")
    therapist, robin, kai = join_three(open_person, links, a="Robin", b="Kai")
    t = therapist.page
    t.fill("#agreement-text", "We slow down when either of us asks")
    t.click("#agreement-add button[type=submit]")
    move_to_stage(therapist, [robin, kai], 2)
    robin.add_part("The Lookout", "manager")
    robin.add_part("The Peacemaker", "manager")
    robin.share("The Peacemaker")
    expect(kai.card("The Peacemaker")).to_have_count(1)
    private = ["The Lookout", "The Peacemaker", "We slow down when either of us asks"]

    # The therapist makes a new link for Robin, from the folded session settings, after
    # confirming.
    expect(t.locator("#relink-a")).to_be_hidden()
    t.get_by_text("Session settings").click()
    t.click("#relink-a")
    said = confirm(therapist, "Make a new link")
    assert "Make a new link for Robin?" in said
    assert "Robin's current link stops working at once" in said
    expect(t.locator("#relink-result")).to_be_visible()
    expect(t.locator("#relink-label")).to_have_text("New link for Robin")
    expect(t.locator("#relink-help")).to_have_text(
        "Send it to Robin the way you sent the first one. The old link no longer works.")
    expect(t.get_by_label("New link for Robin")).to_be_focused()
    new_link = t.input_value("#relink-url")
    assert re.fullmatch(LINK, new_link) and new_link != links.a
    assert new_link.split("#")[0] == links.a.split("#")[0]  # the same room, a new secret

    # Robin's open page says plainly that its link no longer works, and keeps nothing.
    page = robin.page
    expect(page.locator("#terminal-title")).to_have_text("This link no longer works")
    expect(page.locator("#terminal-text")).to_contain_text(
        "Your therapist may have given you a new link")
    expect(page.locator("#terminal-text")).to_contain_text(
        "nothing from the session was kept in it")
    expect(robin.status).to_have_text("This link no longer works")
    expect(page.locator("#room")).to_have_count(0)
    expect(page.locator("#pause-raise")).to_have_count(0)
    robin.assert_not_on_page([*private, "Kai"])
    assert page.evaluate("() => sessionStorage.length") == 0
    assert serious_violations(page) == []
    page.screenshot(path=screens(artifacts) / "link-replaced-desktop.png")
    t.locator("#relink-result").scroll_into_view_if_needed()
    t.screenshot(path=screens(artifacts) / "therapist-new-link-desktop.png")

    # The old link, opened again, is not valid; the new one opens the room.
    stale = open_person("robin, old link")
    stale.goto(links.a)
    expect(stale.page.locator("#terminal-title")).to_have_text("This link is not valid")
    stale.assert_not_on_page(private)
    again = open_person("robin, new link")
    again.join(new_link)
    expect(again.card("The Lookout")).to_contain_text("Only you and your therapist can see this")
    expect(again.card("The Peacemaker")).to_have_count(1)
    expect(again.page.locator("#presence")).to_contain_text("Robin (you)")
    expect(again.page.locator("#agreements-list")).to_contain_text(
        "We slow down when either of us asks")
    # Kai was never disturbed, sees Robin here again, and never saw the private part.
    expect(kai.status).to_have_text("Connected")
    expect(kai.page.locator("#presence .person.here")).to_have_count(3)
    kai.assert_never_seen(["The Lookout"])
    # The new link works for Robin's actions.
    again.share("The Lookout")
    expect(kai.card("The Lookout")).to_have_count(1)


# ---------------------------------------------------------------- agreements and notes


def test_agreements_and_private_notes_are_edited_and_removed(module_server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(module_server.base_url)
    therapist, alex, sam = join_three(open_person, links)
    t = therapist.page
    first = "We speak for our parts, not from them"
    second = "We speak for our parts and listen from Self"
    t.fill("#agreement-text", first)
    t.click("#agreement-add button[type=submit]")
    for person in (alex, sam):
        person.page.get_by_role("button", name="I agree").click()
    for person in (therapist, alex, sam):
        expect(person.page.locator("#agreements-list")).to_contain_text("Alex: agreed")
        expect(person.page.locator("#agreements-list")).to_contain_text("Sam: agreed")

    # A change of wording asks both partners to agree again.
    item = t.locator("#agreements-list li.agreement")
    item.get_by_role("button", name="Edit").click()
    area = item.get_by_label("Change the wording")
    expect(area).to_have_value(first)
    area.fill(second)
    item.get_by_role("button", name="Save").click()
    therapist.saved()
    for person in (therapist, alex, sam):
        agreements = person.page.locator("#agreements-list")
        expect(agreements).to_contain_text(second)
        expect(agreements).not_to_contain_text(first)
        expect(agreements).to_contain_text("Alex: not yet")
        expect(agreements).to_contain_text("Sam: not yet")
    expect(alex.page.locator("#live")).to_contain_text(
        "The therapist changed the wording of an agreement.")
    expect(t.locator("#agreements-list textarea")).to_have_count(0)
    sam.page.get_by_role("button", name="I agree").click()
    expect(t.locator("#agreements-list")).to_contain_text("Sam: agreed")

    # Removing it, after a confirm that quotes it, takes it off every board.
    t.locator("#agreements-list li.agreement").get_by_role("button", name="Remove").click()
    assert second in confirm(therapist, "Remove it")
    for person in (therapist, alex, sam):
        expect(person.page.locator("#agreements-list li")).to_have_count(0)
        expect(person.page.locator("#agreements-empty")).to_have_text("No agreements yet.")
        person.saved()
        person.assert_not_on_page([first, second])
    expect(sam.page.locator("#live")).to_contain_text("The therapist removed an agreement.")

    # Private notes: written, reworded, deleted; only ever on the therapist's page.
    note, reworded = "Sam softened when Alex slowed down", "Sam softened once Alex slowed down"
    t.fill("#note-text", note)
    t.click("#note-add button[type=submit]")
    expect(t.locator("#notes-list")).to_contain_text(note)
    notes = t.locator("#notes-list li.note")
    notes.get_by_role("button", name="Edit").click()
    notes.get_by_label("Edit the note").fill(reworded)
    notes.get_by_role("button", name="Save").click()
    expect(t.locator("#notes-list")).to_have_text(re.compile(re.escape(reworded)))
    therapist.saved()
    therapist.assert_not_on_page([note])
    t.locator("#notes-list li.note").get_by_role("button", name="Delete").click()
    assert "Delete this note?" in confirm(therapist, "Delete it")
    expect(t.locator("#notes-list li")).to_have_count(0)
    therapist.saved()
    therapist.assert_not_on_page([reworded])
    for person in (alex, sam):
        person.saved()
        person.assert_never_seen([note, reworded])
        # Nothing about a note, not even that one was written, reached a partner.
        assert not any(frame.get("op", "").startswith("note.")
                       for frame in person.decoded_frames())
        expect(person.page.locator("#live")).not_to_contain_text("note")


# ---------------------------------------------------------------- parts, arrows, needs


def test_a_partner_edits_parts_and_removes_an_arrow_and_a_need(module_server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(module_server.base_url)
    therapist, alex, sam = join_three(open_person, links)
    move_to_stage(therapist, [alex, sam], 2)
    a = alex.page

    # Renamed and re-kinded while private: Sam learns only that a part exists.
    alex.add_part("The Scout", "manager")
    alex.select("The Scout")
    panel = a.locator("#part-panel")
    panel.get_by_label("Name", exact=True).fill("The Watcher")
    panel.get_by_label("Kind", exact=True).select_option("exile")
    panel.get_by_role("button", name="Save changes").click()
    expect(alex.card("The Watcher")).to_contain_text("Exile")
    expect(alex.card("The Scout")).to_have_count(0)
    expect(a.locator("#part-panel-title")).to_have_text("The Watcher")
    expect(therapist.card("The Watcher")).to_contain_text("Exile")
    expect(sam.page.locator("#zone-a-label")).to_contain_text("Alex has 1 part not yet shared")
    alex.saved()
    sam.assert_never_seen(["The Scout", "The Watcher"])

    # Renamed and re-kinded once shared: Sam's board follows, the old name leaves it.
    alex.share("The Watcher")
    expect(sam.card("The Watcher")).to_contain_text("Exile")
    alex.select("The Watcher")
    panel.get_by_label("Name", exact=True).fill("The Night Watch")
    panel.get_by_label("Kind", exact=True).select_option("firefighter")
    panel.get_by_role("button", name="Save changes").click()
    for person in (sam, therapist, alex):
        expect(person.card("The Night Watch")).to_contain_text("Firefighter")
        expect(person.card("The Watcher")).to_have_count(0)
    expect(sam.page.locator("#live")).to_contain_text("Alex changed a part.")
    sam.assert_not_on_page(["The Watcher"])
    expect(sam.page.locator("#zone-a-label")).not_to_contain_text("not yet shared")

    # Arrows: one between shared parts, one to a part that stays private.
    alex.add_part("The Critic", "manager")
    alex.share("The Critic")
    alex.add_part("The Hidden One", "exile")
    move_to_stage(therapist, [alex, sam], 3)
    alex.select("The Night Watch")
    protects = panel.locator("form.link-form").nth(0)
    for target in ("The Critic", "The Hidden One"):
        protects.get_by_label("This part protects…").select_option(label=target)
        protects.get_by_role("button", name="Draw the arrow").click()
        alex.saved()
    expect(a.locator("#link-lines path")).to_have_count(2)
    expect(sam.page.locator("#link-lines path")).to_have_count(1)
    expect(sam.page.locator("#links-list")).to_have_text(
        re.compile(r"The Night Watch \(Alex\) protects The Critic \(Alex\)"))
    shared_arrow = "The Night Watch protects The Critic"
    a.get_by_role("button", name=f"Remove the arrow: {shared_arrow}").click()
    for person in (alex, therapist):
        expect(person.page.locator("#link-lines path")).to_have_count(1)
        expect(person.page.locator("#links-list")).not_to_contain_text("protects The Critic")
    expect(sam.page.locator("#link-lines path")).to_have_count(0)
    expect(sam.page.locator("#links-empty")).to_be_visible()
    expect(sam.page.locator("#live")).to_contain_text("Alex removed an arrow.")
    private_arrow = "The Night Watch protects The Hidden One"
    a.get_by_role("button", name=f"Remove the arrow: {private_arrow}").click()
    expect(a.locator("#link-lines path")).to_have_count(0)
    expect(a.locator("#links-empty")).to_have_text("No connections drawn yet.")
    expect(therapist.page.locator("#link-lines path")).to_have_count(0)
    # The private arrow was never Sam's to see: its removal reached Sam only as a sequence
    # number, like its drawing.
    sam.saved()
    removals = [frame for frame in sam.decoded_frames()
                if frame.get("t") == "ev" and frame.get("op") == "link.remove"]
    assert len(removals) == 1
    sam.assert_never_seen(["The Hidden One"])

    # A need, turned into a request and answered, then removed by its owner.
    move_to_stage(therapist, [alex, sam], 5)
    need, request = "to hear that good enough is enough", "tell me when something I did was enough"
    item = a.locator("#needs-list li.need").filter(has_text="The Critic")
    item.get_by_label("What does The Critic need?").fill(need)
    item.get_by_role("button", name="Save the need").click()
    alex.saved()
    item = a.locator("#needs-list li.need").filter(has_text="The Critic")
    item.get_by_role("button", name="Share what The Critic needs").click()
    # The share redraws the item: typing waits for it, as a person who watched it would.
    expect(item.locator(".privacy-line")).to_have_text("Shared with everyone")
    item.get_by_label("What can your own Self offer The Critic?").fill("my own patience")
    item.get_by_role("button", name="Save what your Self offers").click()
    alex.saved()
    item.get_by_label("What would you like to ask Sam?").fill(request)
    item.get_by_role("button", name="Ask Sam").click()
    theirs = sam.page.locator("#requests-list li.need").filter(has_text="The Critic")
    expect(theirs).to_contain_text(request)
    theirs.get_by_label("Yes").check()
    theirs.get_by_role("button", name="Send my answer").click()
    for person in (therapist, alex, sam):
        expect(person.page.locator("#home-list")).to_contain_text(request)
    # Only the owner is offered the removal.
    for person in (sam, therapist):
        offered = person.page.get_by_role("button", name=re.compile("^Remove this need"))
        expect(offered).to_have_count(0)
    item = a.locator("#needs-list li.need").filter(has_text="The Critic")
    item.get_by_role("button", name="Remove this need (The Critic)").click()
    said = confirm(alex, "Remove the need")
    assert "Remove what The Critic needs?" in said and "Sam's answer" in said
    for person in (therapist, alex, sam):
        expect(person.page.locator("#home-list li")).to_have_count(0)
        expect(person.page.locator("#home-empty")).to_be_visible()
        expect(person.page.locator("#needs-list")).not_to_contain_text(need)
    expect(sam.page.locator("#needs-list li.need")).to_have_count(0)
    expect(sam.page.locator("#requests-list li.need")).to_have_count(0)
    expect(sam.page.locator("#live")).to_contain_text("Alex removed a need.")
    item = a.locator("#needs-list li.need").filter(has_text="The Critic")
    # The focus stays with the part's need, ready for a new one.
    expect(item.get_by_role("button", name="Save the need")).to_be_focused()
    expect(item.get_by_label("What does The Critic need?")).to_have_value("")
    for person in (therapist, alex, sam):
        person.saved()
        person.assert_not_on_page([need, request])


# ---------------------------------------------------------------- too many windows


def test_a_ninth_window_for_one_person_is_told_plainly(module_server, open_person,  # type: ignore[no-untyped-def]
                                                       artifacts: Path) -> None:
    links = create_room(module_server.base_url)
    therapist = open_person("therapist")
    therapist.join(links.therapist)
    move_to_stage(therapist, [], 2)
    alex = open_person("alex")
    alex.join(links.a)
    alex.add_part("The Bookkeeper", "manager")
    # Eight windows of Sam's link, in one browser.
    sam = open_person("sam")
    windows = [sam.page]
    for _ in range(7):
        page = sam.context.new_page()
        page.on("pageerror", lambda error: sam.page_errors.append(str(error)))
        windows.append(page)
    for page in windows:
        page.goto(links.b)
        expect(page.locator("#conn-status")).to_have_text("Connected")
    # Presence shows Sam once, however many windows.
    expect(therapist.page.locator("#presence .person")).to_have_count(3)
    expect(therapist.page.locator("#presence .person.here")).to_have_count(3)

    ninth = sam.context.new_page()
    ninth.on("pageerror", lambda error: sam.page_errors.append(str(error)))
    ninth.goto(links.b)
    busy = ninth.locator("#busy")
    expect(busy).to_be_visible()
    expect(ninth.locator("#busy-title")).to_have_text("Too many windows are open with this link")
    expect(busy).to_contain_text("Close a window or tab you no longer need.")
    expect(ninth.locator("#conn-status")).to_have_text(
        "Too many windows are open with this link. Close one; trying again…")
    expect(ninth.locator("#room")).to_be_hidden()
    expect(ninth.locator("#terminal")).to_be_hidden()
    assert "The Bookkeeper" not in ninth.content()
    assert serious_violations(ninth) == []
    ninth.screenshot(path=screens(artifacts) / "too-many-windows-desktop.png")

    # One window closes: the ninth joins by itself, and the notice goes.
    windows.pop().close()
    expect(ninth.locator("#conn-status")).to_have_text("Connected")
    expect(busy).to_be_hidden()
    expect(ninth.locator("#room")).to_be_visible()
    expect(ninth.locator("#zone-a-label")).to_contain_text("Alex has 1 part not yet shared")
    assert "The Bookkeeper" not in ninth.content()
