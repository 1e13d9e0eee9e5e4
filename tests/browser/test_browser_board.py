"""The board on every screen: one geometry, so a full board (both partners' parts, shared
and private, protects and reacts-to links) has no two cards overlapping, every card and
control takes its own taps, every arrowhead and label is inside the board and on no card,
and the layout is the same for the three roles at any size. Phones: a touch drag moves a
card without selecting text. Screenshots go to tests/artifacts/board/."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from browser_helpers import ARTIFACTS, Person, create_room, draw, join_three, move_to_stage
from playwright.sync_api import expect

SIZES = [(360, 740), (390, 844), (768, 1024), (1280, 800), (1920, 1080)]
SHOTS = ARTIFACTS / "board"
IMPACTS = {"critical", "serious", "moderate", "minor"}

JORDAN = [("The Scorekeeper", "manager"), ("The Storm", "firefighter"),
          ("The Small One", "exile"), ("The Drifter", "unsure")]
RILEY = [("The Wall", "firefighter"), ("The Helper", "manager"),
         ("The Unseen", "exile"), ("The Secret Keeper", "manager")]
PRIVATE = {"The Drifter", "The Secret Keeper"}

# Everything the test checks, measured in the page: cards, their controls, link marks.
MEASURE = """() => {
  const r = (el) => { const b = el.getBoundingClientRect();
    return {left: b.left, top: b.top, right: b.right, bottom: b.bottom}; };
  const area = r(document.getElementById('cards-area'));
  const cards = Array.from(document.querySelectorAll('#cards li.part')).map((li) => {
    const b = r(li);
    return {name: li.querySelector('.part-name').textContent, box: b,
            rel: [(b.left - area.left) / (area.right - area.left),
                  (b.top - area.top) / (area.bottom - area.top),
                  (b.right - b.left) / (area.right - area.left)]};
  });
  const marks = [];
  for (const g of document.querySelectorAll('#link-heads .link-mark')) {
    for (const el of g.querySelectorAll('polygon, text')) {
      marks.push({link: g.dataset.link, what: el.tagName, box: r(el)});
    }
  }
  return {area, cards, marks};
}"""

# What a tap at the middle of each card, each card's control and each link mark reaches.
HITS = """() => {
  const missed = [];
  const centre = (el) => {
    if (el.tagName === 'polygon') {
      const pts = el.points, m = el.getScreenCTM();
      let x = 0, y = 0;
      for (let i = 0; i < pts.length; i++) { x += pts[i].x; y += pts[i].y; }
      const p = new DOMPoint(x / pts.length, y / pts.length).matrixTransform(m);
      return [p.x, p.y];
    }
    const b = el.getBoundingClientRect();
    return [(b.left + b.right) / 2, (b.top + b.bottom) / 2];
  };
  const targets = [...document.querySelectorAll('#cards .part-handle, #cards .part-actions button'),
                   ...document.querySelectorAll('#link-heads polygon, #link-heads text')];
  for (const el of targets) {
    if (!el.getClientRects().length) continue;
    el.scrollIntoView({block: 'center', inline: 'center'});
    const [x, y] = centre(el);
    const hit = document.elementFromPoint(x, y);
    const mark = el.closest('.link-mark');
    const hitMark = hit && hit.closest('.link-mark');
    const ok = mark ? hitMark && hitMark.dataset.link === mark.dataset.link
                    : hit && (hit === el || el.contains(hit));
    if (!ok) missed.push((el.getAttribute('aria-label') || el.textContent).slice(0, 40) + ' -> ' +
                         (hit ? hit.tagName + '.' + hit.className : 'nothing'));
  }
  return missed;
}"""


# Whether the board is zoomed in and the named card lies within the board's visible frame.
IN_VIEW = """(name) => {
  const frame = document.getElementById('board');
  const card = Array.from(document.querySelectorAll('#cards li.part'))
    .find((li) => li.querySelector('.part-name').textContent === name);
  const f = frame.getBoundingClientRect(), c = card.getBoundingClientRect();
  return {zoomed: frame.scrollWidth > frame.clientWidth + 1,
          inside: c.left >= f.left - 0.5 && c.right <= f.right + 0.5};
}"""


# For each link form of the part panel: its select and button side by side on one row,
# both full tap targets.
LINK_FORM_ROWS = """() => Array.from(
    document.querySelectorAll('#part-panel form.link-form'), (form) => {
  const s = form.querySelector('select').getBoundingClientRect();
  const b = form.querySelector('button').getBoundingClientRect();
  return s.right <= b.left && s.top < b.bottom && b.top < s.bottom
    && b.height >= 44 && s.height >= 44;
})"""


# The links between two cards of one column (their ends less than 10 board units apart
# across) whose line runs under a card.
LINES_UNDER_CARDS = """() => {
  const cards = Array.from(document.querySelectorAll('#cards li.part'),
                           (li) => li.getBoundingClientRect());
  const under = [];
  for (const path of document.querySelectorAll('#link-lines path')) {
    const total = path.getTotalLength(), m = path.getScreenCTM();
    if (Math.abs(path.getPointAtLength(0).x - path.getPointAtLength(total).x) >= 10) continue;
    for (let i = 0; i <= 40; i++) {
      const u = path.getPointAtLength(total * i / 40);
      const p = new DOMPoint(u.x, u.y).matrixTransform(m);
      if (cards.some((c) => p.x > c.left + 1 && p.x < c.right - 1 && p.y > c.top + 1
                            && p.y < c.bottom - 1)) {
        under.push(path.dataset.link);
        break;
      }
    }
  }
  return under;
}"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5
            and a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5)


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (inner["left"] >= outer["left"] - 0.5 and inner["right"] <= outer["right"] + 0.5
            and inner["top"] >= outer["top"] - 0.5 and inner["bottom"] <= outer["bottom"] + 0.5)


def add_parts(person: Person, parts: list[tuple[str, str]]) -> None:
    for name, kind in parts:
        person.add_part(name, kind)
        if name not in PRIVATE:
            person.share(name)


def check_geometry(person: Person, size: tuple[int, int]) -> list[list[float]]:
    where = f"{person.label} at {size[0]}x{size[1]}"
    found: dict[str, Any] = person.page.evaluate(MEASURE)
    cards = found["cards"]
    for one, two in ((p, q) for i, p in enumerate(cards) for q in cards[i + 1:]):
        assert not overlap(one["box"], two["box"]), f"{where}: {one['name']} on {two['name']}"
    assert found["marks"], f"{where}: no links drawn"
    for mark in found["marks"]:
        assert inside(mark["box"], found["area"]), f"{where}: a {mark['what']} outside the board"
        for card in cards:
            assert not overlap(mark["box"], card["box"]), \
                f"{where}: a link's {mark['what']} lies on {card['name']}"
    person.assert_cards_fit()
    labels = [m for m in found["marks"] if m["what"] == "text"]
    for one, two in ((p, q) for i, p in enumerate(labels) for q in labels[i + 1:]):
        assert not overlap(one["box"], two["box"]), f"{where}: two link labels overlap"
    assert not person.page.evaluate(LINES_UNDER_CARDS), f"{where}: a line under a card"
    missed = person.page.evaluate(HITS)
    assert not missed, f"{where}: taps that miss: {missed}"
    return {c["name"]: c["rel"] for c in cards}  # type: ignore[return-value]


def axe_violations(person: Person) -> list[str]:
    results = Axe().run(person.page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in results.response["violations"] if v.get("impact") in IMPACTS]


def test_a_full_board_is_the_same_and_untangled_on_every_screen(server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(server.base_url, a="Jordan", b="Riley")
    therapist, jordan, riley = join_three(open_person, links, a="Jordan", b="Riley")
    move_to_stage(therapist, [jordan, riley], 3)
    add_parts(jordan, JORDAN)
    add_parts(riley, RILEY)
    draw(jordan, "The Scorekeeper", "protects", "The Small One")
    draw(jordan, "The Storm", "protects", "The Small One")
    draw(jordan, "The Drifter", "protects", "The Scorekeeper")  # private: Riley never sees it
    draw(jordan, "The Drifter", "protects", "The Small One")  # past The Scorekeeper, once tidy
    draw(jordan, "The Storm", "reacts_to", "The Wall (Riley)")
    draw(riley, "The Wall", "protects", "The Unseen")
    draw(riley, "The Helper", "protects", "The Unseen")
    draw(riley, "The Wall", "reacts_to", "The Storm (Jordan)")
    for person in (jordan, riley):
        person.page.click("#tidy")
        person.saved()
    expect(riley.page.locator("#link-heads .link-mark")).to_have_count(6)
    expect(therapist.page.locator("#link-heads .link-mark")).to_have_count(8)
    expect(riley.card("The Drifter")).to_have_count(0)

    layouts: dict[str, dict[str, list[float]]] = {}
    problems: dict[str, list[str]] = {}
    for width, height in SIZES:
        for person in (therapist, jordan, riley):
            person.page.set_viewport_size({"width": width, "height": height})
            layouts[f"{person.label} {width}"] = check_geometry(person, (width, height))
            if violations := axe_violations(person):
                problems[f"{person.label} {width}"] = violations
    assert not problems, problems
    # The relative layout is the same for every role at every size.
    reference = layouts["therapist 1920"]
    for key, layout in layouts.items():
        for name, rel in layout.items():
            assert all(abs(a - b) < 0.003 for a, b in zip(rel, reference[name], strict=True)), \
                f"{key}: {name} is elsewhere than on the therapist's wide screen"

    # On a phone the part panel stays short: each link form is one row under its label.
    jordan.page.set_viewport_size({"width": 360, "height": 740})
    jordan.select("The Storm")
    rows = jordan.page.evaluate(LINK_FORM_ROWS)
    assert len(rows) == 4 and all(rows), rows
    # A target chosen in a link form outlives the panel being drawn anew by others' events.
    reacts = jordan.page.locator("#part-panel form.link-form").nth(1).locator("select")
    reacts.select_option(label="The Wall (Riley)")
    reacts.evaluate("(el) => { el.dataset.marker = 'before'; }")
    riley.add_part("The Late One", "unsure")
    riley.share("The Late One")  # a new target: the panel is drawn anew
    expect(jordan.page.locator("#part-panel select[data-marker]")).to_have_count(0)
    expect(reacts).to_have_value(riley.card("The Wall").get_attribute("data-part") or "?")
    SHOTS.mkdir(parents=True, exist_ok=True)
    jordan.page.locator("#part-panel").screenshot(path=SHOTS / "jordan-phone-part-panel.png")
    for person in (therapist, jordan, riley):
        role = person.label
        for label, (width, height) in (("phone", (390, 844)), ("desktop", (1280, 800))):
            person.page.set_viewport_size({"width": width, "height": height})
            # What the screen shows: an element's screenshot lays the page out anew and can
            # lose the board's own scroll position.
            person.page.locator("#board").scroll_into_view_if_needed()
            person.page.screenshot(path=SHOTS / f"{role}-{label}.png")


def touch_drag(person: Person, start: tuple[float, float], end: tuple[float, float],
               steps: int = 12) -> None:
    """A finger put down at `start` and slid to `end` in small steps, as a touch screen
    sends it (one CDP session: a touch must start and end on the same one)."""
    cdp = person.page.context.new_cdp_session(person.page)
    for i in range(steps + 1):
        x = start[0] + (end[0] - start[0]) * i / steps
        y = start[1] + (end[1] - start[1]) * i / steps
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart" if i == 0 else "touchMove",
                                              "touchPoints": [{"x": x, "y": y, "id": 1}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_a_touch_drag_on_a_phone_moves_the_card_and_selects_no_text(server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(server.base_url)
    therapist, alex, sam = join_three(open_person, links, phones=("a", "b"))
    move_to_stage(therapist, [alex, sam], 2)
    alex.add_part("The Watcher", "manager")
    alex.add_part("The Runner", "firefighter")
    sam.add_part("The Guard", "manager")
    # A phone opens zoomed in on its partner's own side (a on the left, b on the right), so
    # each sees their own new card without panning.
    for person, name in ((alex, "The Watcher"), (sam, "The Guard")):
        shown = person.page.evaluate(IN_VIEW, name)
        assert shown["zoomed"] and shown["inside"], f"{person.label}: {shown}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        person.page.locator("#board-section").screenshot(
            path=SHOTS / f"{person.label.split()[0]}-phone-start.png")
    # Made wide (the whole board) and narrow again, a page is put back on its own side.
    for size in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        sam.page.set_viewport_size(size)
    expect(sam.page.locator("#board.zoomed")).to_have_count(1)
    shown = sam.page.evaluate(IN_VIEW, "The Guard")
    assert shown["inside"], f"sam, narrowed again: {shown}"
    before = alex.position("The Watcher")
    handle = alex.card("The Watcher").locator(".part-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # The finger starts on the card's name (text a drag could select) and slides down and
    # across, as a real drag does.
    touch_drag(alex, (x, y), (x + 72, y + 144))
    alex.saved()
    after = alex.position("The Watcher")
    assert after != before, "the touch drag did not move the card"
    assert alex.page.evaluate("() => window.getSelection().toString()") == ""
    # The move is committed, so the therapist's board shows the card where Alex left it.
    expect(therapist.card("The Watcher")).to_have_attribute("data-x", after[0])
    expect(therapist.card("The Watcher")).to_have_attribute("data-y", after[1])
    found: dict[str, Any] = alex.page.evaluate(MEASURE)
    names = [c["name"] for c in found["cards"]]
    boxes = [c["box"] for c in found["cards"]]
    assert not any(overlap(p, q) for i, p in enumerate(boxes) for q in boxes[i + 1:]), names
