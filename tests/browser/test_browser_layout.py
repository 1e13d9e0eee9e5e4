"""The room page's layout: the pause always in reach and never in the way, the sides'
headings whole, and no motion for those who ask for none.

- Phone in portrait (and any short screen): the bar with "I need a pause" is fixed to the
  bottom of the screen; the page is padded by its height, so the end of the page scrolls
  clear of it, and keyboard focus never lands under it.
- Wide screens: the bar is a row of the header, which stays at the top; focus, moving back
  up the page, never lands under it.

Viewport screenshots (what a person sees, not the whole page) go to tests/artifacts/layout/.
"""

from __future__ import annotations

import re
from pathlib import Path

from browser_helpers import DESKTOP, PHONE, Person, create_room, move_to_stage
from playwright.sync_api import expect

# What covers the focused element, if anything: the fixed bottom bar (phone) or the sticky
# header (wide screens). Elements inside the bar or header themselves are not covered by it.
COVERED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el.classList.contains('skip-link')) return null;
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height) return null;
  const name = (el.id ? '#' + el.id : el.tagName) + ' ' +
    (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 40);
  const problems = [];
  if (r.top < -0.5 || r.bottom > innerHeight + 0.5) problems.push('outside the window');
  const bar = document.getElementById('room-bar');
  if (bar && !bar.hidden && getComputedStyle(bar).position === 'fixed' && !bar.contains(el)
      && r.bottom > bar.getBoundingClientRect().top + 0.5) problems.push('under the bottom bar');
  const header = document.querySelector('.site-header');
  if (getComputedStyle(header).position === 'sticky' && !header.contains(el)
      && r.top < header.getBoundingClientRect().bottom - 0.5) problems.push('under the header');
  return problems.length ? name + ': ' + problems.join(', ') : null;
}"""

ACTIVE = """() => {
  const el = document.activeElement;
  return el ? el.id || el.dataset.focus || el.outerHTML.slice(0, 80) : null;
}"""


def walk_focus(person: Person, key: str, steps: int = 200) -> tuple[int, list[str]]:
    """Press ``key`` (Tab or Shift+Tab) through the page; what was covered when focused."""
    page = person.page
    problems: list[str] = []
    seen: set[str] = set()
    visited = 0
    for _ in range(steps):
        page.keyboard.press(key)
        current = str(page.evaluate(ACTIVE))
        if current in seen and visited > 5:
            break
        seen.add(current)
        visited += 1
        problem = page.evaluate(COVERED)
        if problem:
            problems.append(problem)
    return visited, problems


def rect(person: Person, selector: str) -> dict[str, float]:
    box = person.page.locator(selector).first.evaluate(
        "el => { const r = el.getBoundingClientRect(); "
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height}; }")
    return {key: float(value) for key, value in box.items()}


def label_is_whole(person: Person, selector: str) -> None:
    """The side heading is not clipped, sits inside the board (its surface, which a zoomed-in
    phone pans) and above the cards' area."""
    label = rect(person, selector)
    board = rect(person, "#surface")
    cards = rect(person, "#cards")
    clipped = person.page.locator(selector).evaluate(
        "el => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1")
    assert not clipped, f"{person.label}: {selector} is cut off"
    assert board["top"] <= label["top"] and label["bottom"] <= board["bottom"]
    assert board["left"] - 0.5 <= label["left"] and label["right"] <= board["right"] + 0.5
    assert label["bottom"] <= cards["top"] + 0.5, f"{person.label}: cards can cover {selector}"


def test_the_pause_is_always_in_reach_and_hides_nothing(module_server, open_person,  # type: ignore[no-untyped-def]
                                                        artifacts: Path) -> None:
    shots = artifacts / "layout"
    shots.mkdir(parents=True, exist_ok=True)
    links = create_room(module_server.base_url)
    therapist = open_person("therapist")
    therapist.join(links.therapist)
    alex = open_person("alex")
    alex.join(links.a)
    sam = open_person("sam on a phone", phone=True, reduced_motion=True)
    sam.join(links.b)
    therapist.page.fill("#agreement-text", "Either of us can take a pause at any time")
    therapist.page.click("#agreement-add button[type=submit]")
    move_to_stage(therapist, [alex, sam], 2)
    for name, kind in (("The Planner", "manager"), ("The Alarm", "firefighter"),
                       ("The one who gets left", "exile"), ("The Scorekeeper", "manager")):
        alex.add_part(name, kind)
    alex.share("The Alarm")
    sam.add_part("The Quiet One", "firefighter")
    sam.add_part("The Good Kid", "manager")
    sam.share("The Good Kid")

    # ------------------------------------------------------------ phone, portrait
    s = sam.page
    bar = s.locator("#room-bar")
    pause = s.locator("#pause-raise")
    assert bar.evaluate("el => getComputedStyle(el).position") == "fixed"
    height = PHONE["height"]
    for where in ("0", "document.body.scrollHeight / 2", "document.body.scrollHeight"):
        s.evaluate(f"() => window.scrollTo(0, {where})")
        box = rect(sam, "#room-bar")
        assert abs(box["bottom"] - height) <= 1, box
        expect(pause).to_be_in_viewport(ratio=1)
        expect(s.locator("#overwhelm-toggle")).to_be_in_viewport(ratio=1)
    assert rect(sam, "#room-bar")["height"] < height * 0.2  # a bar, not a wall
    # At the end of the page the last panel is fully above the bar: the padding holds it.
    s.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    last = rect(sam, "#export-panel")
    assert last["bottom"] <= rect(sam, "#room-bar")["top"], "the bar hides the end of the page"
    s.screenshot(path=shots / "sam-phone-end-of-page.png")
    # Keyboard focus never lands under the bar, all the way down the page.
    s.evaluate("() => window.scrollTo(0, 0)")
    s.locator("body").focus()
    visited, problems = walk_focus(sam, "Tab")
    assert visited > 15 and not problems, problems
    # The side heading wraps instead of being cut off.
    expect(s.locator("#zone-a-label")).to_have_text(
        re.compile(r"^Alex's side\. Alex has 3 parts not yet shared$"))
    label_is_whole(sam, "#zone-a-label")
    label_is_whole(sam, "#zone-b-label")
    s.locator("#board-title").scroll_into_view_if_needed()
    s.screenshot(path=shots / "sam-phone-board.png")

    # A pause: the notice joins the bar, still within reach, still not a wall.
    alex.page.click("#pause-raise")
    expect(s.locator("#pause-banner")).to_be_visible()
    expect(s.locator("#pause-banner")).to_be_in_viewport(ratio=1)
    expect(pause).to_have_text("I need a pause too")
    assert rect(sam, "#room-bar")["height"] < height * 0.4
    s.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    assert rect(sam, "#export-panel")["bottom"] <= rect(sam, "#room-bar")["top"]
    s.screenshot(path=shots / "sam-phone-pause.png")
    # The therapist on a phone sees the pause (and can clear it) wherever they are.
    therapist.page.set_viewport_size(PHONE)
    therapist.page.evaluate("() => window.scrollTo(0, document.body.scrollHeight / 2)")
    expect(therapist.page.locator("#pause-clear")).to_be_in_viewport(ratio=1)
    therapist.page.screenshot(path=shots / "therapist-phone-pause.png")
    therapist.page.click("#pause-clear")
    expect(s.locator("#pause-banner")).to_be_hidden()
    expect(therapist.page.locator("#room-bar")).to_be_hidden()  # nothing for the therapist
    assert therapist.page.evaluate(
        "() => getComputedStyle(document.documentElement).getPropertyValue('--bar-h')") == "0px"
    therapist.page.set_viewport_size(DESKTOP)

    # A phone on its side: the bar stays at the bottom, one row.
    s.set_viewport_size({"width": PHONE["height"], "height": PHONE["width"]})
    assert bar.evaluate("el => getComputedStyle(el).position") == "fixed"
    assert rect(sam, "#room-bar")["height"] < PHONE["width"] * 0.25
    expect(pause).to_be_in_viewport(ratio=1)
    s.set_viewport_size(PHONE)

    # ------------------------------------------------------------ wide screen
    a = alex.page
    header = a.locator(".site-header")
    assert header.evaluate("el => getComputedStyle(el).position") == "sticky"
    assert a.locator("#room-bar").evaluate("el => getComputedStyle(el).position") != "fixed"
    a.evaluate("() => window.scrollTo(0, 0)")
    # At the top, nothing is under the header: it is in the page's flow.
    assert rect(alex, ".site-header")["bottom"] <= rect(alex, "#stage-section")["top"]
    label_is_whole(alex, "#zone-a-label")
    label_is_whole(alex, "#zone-b-label")
    for where in ("document.body.scrollHeight / 3", "document.body.scrollHeight"):
        a.evaluate(f"() => window.scrollTo(0, {where})")
        expect(a.locator("#pause-raise")).to_be_in_viewport(ratio=1)
    a.screenshot(path=shots / "alex-desktop-scrolled.png")
    # Walking back up the page with Shift+Tab, nothing focused hides under the header.
    a.locator("#export-panel button.export").last.focus()
    visited, problems = walk_focus(alex, "Shift+Tab")
    assert visited > 15 and not problems, problems
    # Headings and cards, scrolled to by the browser, come out from under the header.
    for selector in ("#board-title", "#my-parts-title", "#agreements-title"):
        a.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        a.locator(selector).evaluate("el => el.scrollIntoView()")
        assert rect(alex, selector)["top"] >= rect(alex, ".site-header")["bottom"], selector

    # ------------------------------------------------------------ reduced motion
    # Another person's live drag glides on Sam's board, but not for those who ask for no motion.
    therapist.page.set_viewport_size(DESKTOP)
    alex.drag_by("The Alarm", 90, 60, release=False)
    for person, motion in ((sam, "0s"), (therapist, "0.09s")):
        card = person.card("The Alarm")
        expect(card).to_have_class(re.compile(r"\bremote-moving\b"))
        duration = card.evaluate("el => getComputedStyle(el).transitionDuration")
        assert duration.split(",")[0].strip() == motion, (person.label, duration)
    alex.page.mouse.up()
    alex.saved()
