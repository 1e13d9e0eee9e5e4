"""The room page by stage, and its keyboard paths.

- For each role the current stage's task comes first: in reading order, on phones before the
  board (or just after it where the work is on the board), on wide screens beside the board,
  with the other panels under the board. Stage 1's "I agree" is on a phone's first screen.
- The therapist's set-up (names, colours, the drafts setting, new links) is folded away.
- Esc closes a part's panel and gives the focus back to its card; after "I agree" the focus
  moves to the next agreement still waiting, then to the agreements' heading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser_helpers import Person, join_three, move_to_stage
from playwright.sync_api import expect

PLACES = """() => {
  const visible = (el) => !el.hidden && el.getClientRects().length > 0;
  const shown = (id) =>
    Array.from(document.getElementById(id).children).filter(visible).map(el => el.id);
  const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
                        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  return {
    layout: Array.from(document.getElementById('layout').children).map(el => el.id),
    task: shown('task-area'),
    more: shown('more-area'),
    board: box('board-section'), taskBox: box('task-area'), moreBox: box('more-area'),
  };
}"""

# The element's box is inside the window and clear of the phone's fixed bottom bar, with the
# page scrolled to the top: seen without scrolling.
ON_FIRST_SCREEN = """el => {
  window.scrollTo(0, 0);
  const r = el.getBoundingClientRect();
  const bar = document.getElementById('room-bar');
  const fixed = getComputedStyle(bar).position === 'fixed';
  const limit = fixed ? bar.getBoundingClientRect().top : innerHeight;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return r.top >= 0 && r.bottom <= limit && !!hit && el.contains(hit);
}"""

# What each stage asks first of a partner, and whether the board comes before it (phones).
PARTNER_FIRST = {1: ("agreements", False), 2: ("add-part-panel", False), 3: ("my-parts", True),
                 4: ("checkin-panel", False), 5: ("requests-panel", False)}
THERAPIST_FIRST = {1: "agreements", 2: "couple-panel", 3: "couple-panel", 4: "checkin-panel",
                   5: "needs-panel"}


def places(person: Person) -> dict[str, Any]:
    result: dict[str, Any] = person.page.evaluate(PLACES)
    return result


def first_screen(person: Person, path: Path) -> None:
    """What the person sees first: the top of the page, in their window."""
    person.page.evaluate("() => window.scrollTo(0, 0)")
    person.page.screenshot(path=path)


def test_each_stage_puts_its_task_first(room, open_person,  # type: ignore[no-untyped-def]
                                        artifacts: Path) -> None:
    shots = artifacts / "page"
    shots.mkdir(parents=True, exist_ok=True)
    therapist, alex, sam = join_three(open_person, room, phones=("a", "b"))
    therapist.page.set_viewport_size({"width": 1280, "height": 800})
    sam.page.set_viewport_size({"width": 360, "height": 740})
    t = therapist.page
    therapist.add_agreements(["Either of us can pause at any time"])

    # The therapist's set-up is folded into "Session settings".
    expect(t.locator("#settings-details")).not_to_have_attribute("open", "")
    for hidden in ("#partners-edit", "#relink-a", "#drafts-setting"):
        expect(t.locator(hidden)).to_be_hidden()
    expect(t.locator("#settings-title")).to_have_text("Session settings")

    for stage in range(1, 6):
        if stage > 1:
            move_to_stage(therapist, [alex, sam], stage)
        if stage == 2:
            alex.add_part("The Lookout", "manager")
        first, board_first = PARTNER_FIRST[stage]
        for person in (alex, sam):
            where = places(person)
            assert where["task"][0] == first, (person.label, stage, where["task"])
            board, task = where["layout"].index("board-section"), where["layout"].index("task-area")
            assert (board < task) == board_first, (person.label, stage, where["layout"])
            # One column on a phone: what comes first in the page is also higher on the screen.
            upper, lower = ("board", "taskBox") if board_first else ("taskBox", "board")
            assert where[upper]["bottom"] <= where[lower]["top"] + 1, (person.label, stage)
        for person in (therapist, alex, sam):
            name = person.label.replace(" ", "-")
            first_screen(person, shots / f"stage{stage}-{name}-first-screen.png")
        where = places(therapist)
        assert where["task"][0] == THERAPIST_FIRST[stage], (stage, where["task"])
        # A wide screen: the task beside the board, the other panels under the board.
        assert where["taskBox"]["left"] >= where["board"]["right"], stage
        assert where["taskBox"]["top"] <= where["board"]["top"] + 1, stage
        assert where["moreBox"]["top"] >= where["board"]["bottom"], stage
        assert where["moreBox"]["right"] <= where["taskBox"]["left"], stage
        if stage == 1:
            # "I agree" is on a phone's first screen, not below a screen of empty board.
            for person in (alex, sam):
                agree = person.page.get_by_role("button", name="I agree")
                assert agree.evaluate(ON_FIRST_SCREEN), f"{person.label}: I agree is below the fold"
            alex.page.get_by_role("button", name="I agree").click()
            expect(alex.page.get_by_role("button", name="I agree")).to_have_count(0)
    # A tablet: one column, the stage's task still first.
    alex.page.set_viewport_size({"width": 768, "height": 1024})
    assert places(alex)["task"][0] == "requests-panel"
    first_screen(alex, shots / "stage5-alex-tablet-first-screen.png")


def test_keyboard_esc_closes_a_part_and_i_agree_moves_on(room, open_person,  # type: ignore[no-untyped-def]
                                                         artifacts: Path) -> None:
    therapist, alex, _ = join_three(open_person, room)
    a = alex.page
    therapist.add_agreements(["We take turns to speak", "Either of us can pause",
                              "We speak for our parts"])

    # "I agree" on the second: the focus goes on to the third, then round to the first,
    # then, with nothing left to agree to, to the agreements' heading.
    buttons = a.locator("#agreements-list").get_by_role("button", name="I agree")
    expect(buttons).to_have_count(3)
    item = a.locator("#agreements-list > li")
    buttons.nth(1).focus()
    a.keyboard.press("Enter")
    expect(item.nth(1)).to_contain_text("Alex: agreed")
    expect(item.nth(2).get_by_role("button", name="I agree")).to_be_focused()
    (artifacts / "page").mkdir(parents=True, exist_ok=True)
    a.screenshot(path=artifacts / "page" / "focus-after-i-agree.png")
    a.keyboard.press("Enter")
    expect(item.nth(2)).to_contain_text("Alex: agreed")
    expect(item.nth(0).get_by_role("button", name="I agree")).to_be_focused()
    a.keyboard.press("Enter")
    expect(item.nth(0)).to_contain_text("Alex: agreed")
    expect(a.locator("#agreements-title")).to_be_focused()

    # Esc closes a part's panel, from inside the panel or from its card, and the focus goes
    # back to the card; so does the panel's Close button.
    move_to_stage(therapist, [alex], 2)
    alex.add_part("The Lookout", "manager")
    alex.add_part("The Peacemaker", "unsure")
    handle = alex.card("The Lookout").locator(".part-handle")
    panel = a.locator("#part-panel")
    alex.select("The Lookout")
    expect(a.locator("#part-panel-title")).to_be_focused()
    a.keyboard.press("Tab")
    a.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(handle).to_be_focused()
    a.keyboard.press("Enter")
    expect(panel).to_be_visible()
    handle.focus()
    a.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(handle).to_be_focused()
    alex.select("The Peacemaker")
    panel.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()
    expect(alex.card("The Peacemaker").locator(".part-handle")).to_be_focused()
    # After adding a part, the kind menu is back on "Not sure yet".
    alex.add_part("The Critic", "manager")
    expect(a.locator("#part-kind")).to_have_value("unsure")



def test_agreements_links_and_notes_keep_the_order_they_were_made(room, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist, alex, sam = join_three(open_person, room, phones=("a",))
    t = therapist.page
    # Neither alphabetical nor any other order than the one they were made in.
    agreements = ["We slow down when either of us asks", "Anyone can pause", "No blaming today",
                  "Kind words, even when it is hard", "Each of us speaks for our parts"]
    therapist.add_agreements(agreements)
    notes = ["Zoe's calm returned", "Both leaned in", "Middle of the hour: tears"]
    for number, text in enumerate(notes):
        t.fill("#note-text", text)
        t.click("#note-add button[type=submit]")
        expect(t.locator("#notes-list > li")).to_have_count(number + 1)
    for person in (therapist, alex, sam):
        expect(person.page.locator("#agreements-list .agreement-text")).to_have_text(agreements)
    expect(t.locator("#notes-list > li > p")).to_have_text(notes)

    move_to_stage(therapist, [alex, sam], 3)
    for name in ("The Watcher", "The Small One", "The Boss"):
        alex.add_part(name, "unsure")
        alex.share(name)
    sam.add_part("The Fixer", "manager")
    sam.share("The Fixer")
    drawn = [("The Watcher", "protects", "The Small One"), ("The Boss", "reacts_to", "The Fixer"),
             ("The Boss", "protects", "The Watcher"), ("The Watcher", "reacts_to", "The Fixer")]
    panel = alex.page.locator("#part-panel")
    for number, (source, kind, target) in enumerate(drawn):
        alex.select(source)
        form = panel.locator("form.link-form").nth(0 if kind == "protects" else 1)
        label = target if kind == "protects" else f"{target} (Sam)"
        form.get_by_role("combobox").select_option(label=label)
        form.get_by_role("button", name="Draw the arrow").click()
        expect(alex.page.locator("#links-list > li")).to_have_count(number + 1)
    words = [f"{source} {kind.replace('_', ' ')} {target}" for source, kind, target in drawn]
    for person in (therapist, alex, sam):
        expect(person.page.locator("#links-list > li")).to_have_count(len(drawn))
        listed = person.page.locator("#links-list > li > span").all_inner_texts()
        plain = [text.replace(" (Alex)", "").replace(" (Sam)", "") for text in listed]
        assert plain == words, (person.label, plain)
