"""Care signals and the end of a session, as people see them.

- The therapist's badges (pauses, overwhelm, ready) stay in view at every scroll position, on a
  desktop (the sticky header) and on a phone (the bar fixed to the bottom), and are announced.
- Both partners' pauses are kept and shown; the overwhelm signal says "seen" to its partner only
  once the therapist has acknowledged it, and clearing it is said, not silent.
- Ending: the partners get a moment to save their own copy; the therapist ends it, keeps the
  session going, or it closes by itself after its time-out (the therapist's page keeps time).
"""

from __future__ import annotations

import re
from pathlib import Path

from browser_helpers import Person, confirm, join_three, move_to_stage
from playwright.sync_api import expect

# Whether the element is on screen and is what a tap at its centre reaches.
REACHABLE = """el => {
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height || r.top < 0 || r.left < 0) return false;
  if (r.bottom > innerHeight || r.right > innerWidth) return false;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return !!hit && (hit === el || el.contains(hit));
}"""


def to_the_bottom(person: Person) -> None:
    person.page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    person.page.wait_for_function(
        "() => Math.ceil(scrollY + innerHeight) >= document.documentElement.scrollHeight - 1")
    assert person.page.evaluate("() => scrollY") > 0, f"{person.label}: the page does not scroll"


def badge(person: Person, text: str):  # type: ignore[no-untyped-def]
    return person.page.locator("#care-badges .badge-button", has_text=text)


def reachable(person: Person, locator) -> bool:  # type: ignore[no-untyped-def]
    return bool(locator.evaluate(REACHABLE))


def test_care_signals_stay_in_reach_and_both_pauses_are_kept(room, open_person,  # type: ignore[no-untyped-def]
                                                             artifacts: Path) -> None:
    shots = artifacts / "care"
    shots.mkdir(parents=True, exist_ok=True)
    therapist, alex, sam = join_three(open_person, room, phones=("a",))
    on_phone = open_person("therapist on a phone", phone=True)
    on_phone.join(room.therapist)
    t = therapist.page
    therapist.add_agreements(["We can stop at any time", "We speak for our parts"])
    move_to_stage(therapist, [alex, sam, on_phone], 5)
    watchers = (therapist, on_phone)
    for person in watchers:
        expect(person.page.locator("#care")).to_be_hidden()
        to_the_bottom(person)

    # A pause, the quiet signal and a ready mark: badges in reach, wherever the page is.
    sam.page.click("#pause-raise")
    expect(alex.page.locator("#pause-raise")).to_have_text("I need a pause too")
    alex.page.click("#overwhelm-toggle")
    alex.page.click("#ready-toggle")
    for person in watchers:
        for text in ("Sam: pause", "Alex: overwhelmed", "Alex: ready"):
            expect(badge(person, text)).to_be_visible()
        to_the_bottom(person)
        for text in ("Sam: pause", "Alex: overwhelmed", "Alex: ready"):
            assert reachable(person, badge(person, text)), f"{person.label}: {text} is out of reach"
        person.page.screenshot(path=shots / f"{person.label.replace(' ', '-')}-scrolled-down.png")
        live = person.page.locator("#care-live")
        expect(live).to_contain_text("Sam asked for a pause")
        expect(live).to_contain_text("Alex is getting overwhelmed")
    # The quiet signal is the therapist's and Alex's alone; Alex is not told it was seen yet.
    expect(alex.page.locator("#overwhelm-toggle")).to_have_text("Sent to your therapist")
    sam.saved()
    assert "overwhelmed" not in sam.page.inner_text("body").replace("I'm getting overwhelmed", "")
    # On Alex's phone, the line saying who sees it is there, in reach, with the button.
    help_line = alex.page.locator("#overwhelm-help")
    expect(help_line).to_have_text("Only your therapist sees this.")
    to_the_bottom(alex)
    assert reachable(alex, help_line)
    alex.page.screenshot(path=shots / "alex-phone-signal-sent.png")

    # The second pause is kept beside the first, for everyone.
    alex.page.click("#pause-raise")
    for person in watchers:
        expect(person.page.locator("#pause-text")).to_contain_text(
            "Sam and Alex asked for a pause.")
    expect(sam.page.locator("#pause-text")).to_contain_text("You and Alex asked for a pause.")
    expect(alex.page.locator("#pause-text")).to_contain_text("You and Sam asked for a pause.")
    for person in (alex, sam):
        expect(person.page.locator("#pause-raise")).to_have_text("Your pause is on")
    for person in watchers:
        expect(badge(person, "Alex: pause")).to_be_visible()
        expect(badge(person, "Sam: pause")).to_be_visible()
        expect(person.page.locator("#care-live")).to_contain_text("Alex asked for a pause")

    # The therapist goes from the badge to the acknowledgement; only then is Alex told.
    to_the_bottom(therapist)
    badge(therapist, "Alex: overwhelmed").click()
    seen = t.get_by_role("button", name="I've seen that Alex is overwhelmed")
    expect(seen).to_be_focused()
    assert reachable(therapist, seen)
    t.screenshot(path=shots / "therapist-at-the-acknowledgement.png")
    expect(alex.page.locator("#overwhelm-toggle")).to_have_text("Sent to your therapist")
    therapist.page.keyboard.press("Enter")
    expect(alex.page.locator("#overwhelm-toggle")).to_have_text("Your therapist has seen this")
    expect(alex.page.locator("#live")).to_contain_text(
        "Your therapist has seen that you are getting overwhelmed.")
    for person in watchers:
        expect(badge(person, "Alex: overwhelmed (seen)")).to_be_visible()
    # Clearing it is said to Alex, and the button is ready to be used again.
    t.get_by_role("button", name="Clear Alex's overwhelm signal").click()
    expect(alex.page.locator("#overwhelm-toggle")).to_have_text("I'm getting overwhelmed")
    expect(help_line).to_contain_text("Your therapist saw it and cleared it.")
    expect(alex.page.locator("#live")).to_contain_text(
        "Your therapist has cleared your overwhelm signal.")
    for person in watchers:
        expect(badge(person, "overwhelmed")).to_have_count(0)

    # Both pauses end together.
    expect(t.locator("#pause-clear")).to_have_text("Clear both pauses and continue")
    t.click("#pause-clear")
    for person in (therapist, on_phone, alex, sam):
        expect(person.page.locator("#pause-banner")).to_be_hidden()
    for person in watchers:
        expect(badge(person, "pause")).to_have_count(0)
        expect(badge(person, "Alex: ready")).to_be_visible()


def test_the_ending_moment_is_called_off_or_closes_by_itself(room, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist, alex, sam = join_three(open_person, room, phones=("a",))
    t = therapist.page
    # The therapist's page keeps the ending moment's time: its clock is the test's.
    t.clock.install()
    t.reload()
    expect(therapist.status).to_have_text("Connected")

    # Started, then called off: the session goes on as it was.
    t.click("#end-session")
    said = confirm(therapist, "End the session")
    assert "Alex and Sam first get 2 minutes to save their own copy" in said
    for person in (alex, sam):
        expect(person.page.locator("#ending-panel")).to_be_visible()
        expect(person.page.locator("#ending-panel")).to_contain_text("save your copy")
        expect(person.page.locator("#export-panel")).to_be_hidden()
    expect(alex.page.locator("#ending-bar")).to_be_visible()
    to_the_bottom(alex)
    assert reachable(alex, alex.page.locator("#ending-bar-go"))
    alex.page.click("#ending-bar-go")
    expect(alex.page.get_by_role("button", name="Save my copy (printable page)")).to_be_focused()
    expect(t.locator("#end-controls")).to_be_hidden()
    t.click("#ending-cancel")
    for person in (therapist, alex, sam):
        expect(person.page.locator("#ending-panel")).to_be_hidden()
    for person in (alex, sam):
        expect(person.page.locator("#export-panel")).to_be_visible()
        expect(person.page.locator("#live")).to_contain_text("The session goes on.")
    expect(t.locator("#end-controls")).to_be_visible()

    # Started again and left alone: the therapist's page closes it after two minutes.
    t.click("#end-session")
    confirm(therapist, "End the session")
    expect(t.locator("#ending-time")).to_contain_text("It closes by itself in 2:00")
    expect(sam.page.locator("#ending-time")).to_contain_text("The session closes in")
    expect(t.locator("#ending-panel")).to_be_visible()
    t.clock.fast_forward("01:00")
    # The page's clock also runs on its own: a slow machine may be a second further on.
    expect(t.locator("#ending-time")).to_contain_text(
        re.compile(r"It closes by itself in (1:00|0:5\d)"))
    expect(alex.page.locator("#terminal")).to_be_hidden()
    t.clock.fast_forward("01:01")
    for person in (therapist, alex, sam):
        expect(person.page.locator("#terminal-title")).to_have_text("This session has ended")
    # Nothing was agreed to take home here, so nothing is kept.
    for person in (alex, sam):
        expect(person.page.locator("#kept")).to_be_hidden()
