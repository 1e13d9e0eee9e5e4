""""Show the cycle": the couple's protective cycle as a picture, drawn by the server from the
viewer's own view (the HTML export's SVG). Each role sees exactly the parts it may see, in
the page and in the fetched markup; a bad link is refused; the open view is axe clean; it
follows new links while open. Screenshots go to tests/artifacts/board/cycle-<role>-<size>.png."""

from __future__ import annotations

import httpx
from browser_helpers import (
    ARTIFACTS,
    Person,
    axe_scan,
    create_room,
    draw,
    join_three,
    move_to_stage,
)
from playwright.sync_api import expect

SHOTS = ARTIFACTS / "board"
SHARED = {"The Storm", "The Small One", "The Wall", "The Unseen"}
PRIVATE = "The Drifter"  # Jordan's own, never shared: Riley never sees it


# Whether the named part's box in the cycle picture lies within the picture's visible frame.
OWN_NODE_SHOWN = """async (name) => {
  await new Promise(requestAnimationFrame);  // after the resize has been handled
  const frame = document.getElementById('cycle-picture').getBoundingClientRect();
  const node = Array.from(document.querySelectorAll('#cycle-picture g.node'))
    .find((g) => g.querySelector('text').textContent === name);
  const box = node.querySelector('rect').getBoundingClientRect();
  return box.left >= frame.left - 0.5 && box.right <= frame.right + 0.5;
}"""


def open_cycle(person: Person) -> None:
    person.page.click("#cycle-toggle")
    expect(person.page.locator("#cycle-toggle")).to_have_attribute("aria-pressed", "true")
    expect(person.page.locator("#cycle-view")).to_be_visible()


def shown(person: Person, count: int) -> set[str]:
    nodes = person.page.locator("#cycle-picture svg.cycle g.node text")
    expect(nodes).to_have_count(count)
    return set(nodes.all_text_contents())


def fetch(base_url: str, room: str, secret: str) -> httpx.Response:
    return httpx.post(f"{base_url}/api/rooms/{room}/cycle",
                      headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def test_the_cycle_shows_each_role_only_what_it_may_see(server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(server.base_url, a="Jordan", b="Riley")
    therapist, jordan, riley = join_three(open_person, links, a="Jordan", b="Riley")
    expect(jordan.page.locator("#cycle-toggle")).to_be_hidden()
    move_to_stage(therapist, [jordan, riley], 3)

    # Open before any link: an empty-state line, then the picture follows the new links.
    open_cycle(jordan)
    expect(jordan.page.locator("#cycle-help")).to_contain_text("No cycle to show yet")
    expect(jordan.page.locator("#cycle-picture svg")).to_have_count(0)

    for name, kind in (("The Storm", "firefighter"), ("The Small One", "exile"),
                       (PRIVATE, "manager")):
        jordan.add_part(name, kind)
        if name != PRIVATE:
            jordan.share(name)
    for name, kind in (("The Wall", "firefighter"), ("The Unseen", "exile")):
        riley.add_part(name, kind)
        riley.share(name)
    draw(jordan, "The Storm", "protects", "The Small One")
    draw(jordan, PRIVATE, "protects", "The Storm")
    draw(jordan, "The Storm", "reacts_to", "The Wall (Riley)")
    draw(riley, "The Wall", "protects", "The Unseen")
    draw(riley, "The Wall", "reacts_to", "The Storm (Jordan)")

    open_cycle(therapist)
    open_cycle(riley)
    everything = SHARED | {PRIVATE}
    assert shown(jordan, 5) == everything
    assert shown(therapist, 5) == everything  # this room lets the therapist see drafts
    assert shown(riley, 4) == SHARED
    for person in (therapist, jordan, riley):
        picture = person.page.locator("#cycle-picture svg.cycle")
        expect(picture).to_have_attribute("role", "img")
        expect(picture).to_have_attribute("aria-label", "The protective cycle: each partner's "
                                          "protectors above the parts they protect, and the "
                                          "arrows between them.")
        expect(person.page.locator("#cycle-picture g.edge.reacts_to")).to_have_count(2)
        title = person.page.title()
        assert not any(name in title for name in everything), title
    assert riley.page.locator("#cycle-picture").inner_html().count("Drifter") == 0

    # The fetched markup itself: the route draws from the viewer's own view only.
    secrets = {role: getattr(links, role).split("#", 1)[1] for role in ("therapist", "a", "b")}
    for role, sees_private in (("therapist", True), ("a", True), ("b", False)):
        response = fetch(server.base_url, links.room, secrets[role])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["cache-control"] == "no-store"
        assert all(name in response.text for name in SHARED)
        assert (PRIVATE in response.text) is sees_private, role
    refused = fetch(server.base_url, links.room, "not-a-real-link-secret")
    assert refused.status_code == 404
    assert refused.json()["code"] == "room_ended"
    assert fetch(server.base_url, "nosuchroom", secrets["a"]).status_code == 404

    problems = {person.label: [f"{v['id']} ({v['impact']})" for v in found]
                for person, found in zip((therapist, jordan, riley),
                                         axe_scan(therapist.page, jordan.page, riley.page),
                                         strict=True) if found}
    assert not problems, problems

    SHOTS.mkdir(parents=True, exist_ok=True)
    own_parts = {"jordan": "The Storm", "riley": "The Wall"}
    for person in (therapist, jordan, riley):
        for width, height in ((390, 844), (1280, 800)):
            person.page.set_viewport_size({"width": width, "height": height})
            view = person.page.locator("#cycle-view")
            view.scroll_into_view_if_needed()
            if width < 400 and person.label in own_parts:
                # On a phone the picture pans, and a partner starts on their own side.
                own = own_parts[person.label]
                assert person.page.evaluate(OWN_NODE_SHOWN, own), \
                    f"{person.label}: {own} is not in view in the cycle on a phone"
            # What the screen shows (an element's screenshot lays the page out anew and can
            # lose the picture's own scroll).
            person.page.screenshot(path=SHOTS / f"cycle-{person.label}-{width}x{height}.png")

    # Closing the view empties it (nothing stale left in the page).
    riley.page.click("#cycle-toggle")
    expect(riley.page.locator("#cycle-view")).to_be_hidden()
    expect(riley.page.locator("#cycle-picture svg")).to_have_count(0)
