"""What users type is shown as text, the page runs under a strict CSP, and a link
to a room that is not there gets one plain answer."""

from __future__ import annotations

import re

from browser_helpers import THERAPIST_KEY, create_room
from playwright.sync_api import expect

INJECTIONS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "\"><svg onload=alert(3)>",
    "{{7*7}} ${alert(4)} javascript:alert(5)",
]


def test_injection_strings_show_as_text(server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(server.base_url, a="<b>Al</b>", b="Sam\"><img src=y onerror=alert(6)>")
    therapist = open_person("therapist")
    response = therapist.page.goto(links.therapist)
    assert response is not None
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers.get("referrer-policy") == "no-referrer"
    expect(therapist.status).to_have_text("Connected")
    alex = open_person("alex")
    alex.join(links.a)
    therapist.page.fill("#agreement-text", INJECTIONS[1])
    therapist.page.click("#agreement-add button[type=submit]")
    therapist.page.fill("#note-text", INJECTIONS[2])
    therapist.page.click("#note-add button[type=submit]")
    therapist.page.click("#stage-next")
    expect(alex.page.locator("#add-part")).to_be_visible()
    for text in (INJECTIONS[0], INJECTIONS[2], INJECTIONS[3]):
        alex.add_part(text, "exile")
        alex.share(text)
    for person in (alex, therapist):
        page = person.page
        for text in (INJECTIONS[0], INJECTIONS[2], INJECTIONS[3]):
            expect(person.card(text).locator(".part-name")).to_have_text(text)
        expect(page.locator("#agreements-list")).to_contain_text(INJECTIONS[1])
        expect(page.locator("#presence")).to_contain_text("<b>Al</b>")
        # Nothing typed became an element.
        assert page.locator("#room img, #room script, #room svg[onload], #room b").count() == 0
        expect(page).to_have_title(re.compile(r"^Partsboard( — session)?$"))
    expect(therapist.page.locator("#notes-list")).to_contain_text(INJECTIONS[2])
    alex.select(INJECTIONS[0])
    expect(alex.page.locator("#part-panel-title")).to_have_text(INJECTIONS[0])
    assert therapist.dialogs == [] and alex.dialogs == []


def test_start_page_headers_and_a_wrong_key(server, open_person) -> None:  # type: ignore[no-untyped-def]
    therapist = open_person("therapist")
    response = therapist.page.goto(f"{server.base_url}/")
    assert response is not None
    assert "default-src 'self'" in response.headers.get("content-security-policy", "")
    expect(therapist.page).to_have_title("Partsboard")
    therapist.page.fill("#practice-key", "not-the-key")
    therapist.page.fill("#name-a", "Alex")
    therapist.page.fill("#name-b", "Sam")
    therapist.page.click("#create-button")
    expect(therapist.page.locator("#create-error")).to_have_text(
        "The practice key was not accepted. Check it and try again.")
    expect(therapist.page.locator("#links")).to_be_hidden()
    therapist.page.fill("#practice-key", THERAPIST_KEY)
    therapist.page.click("#create-button")
    expect(therapist.page.locator("#links")).to_be_visible()
    link = therapist.page.input_value("#link-a")
    assert link.startswith(f"{server.base_url}/r/")


def test_links_to_missing_rooms_get_one_plain_answer(server, open_person) -> None:  # type: ignore[no-untyped-def]
    links = create_room(server.base_url)
    visitor = open_person("visitor")
    never = visitor.page.goto(f"{server.base_url}/r/AAAAAAAAAAAAAAAAAAAAAA#secret")
    assert never is not None and never.status == 404
    never_text = visitor.page.inner_text("main")
    assert "This session does not exist or has ended. Nothing from it was kept." in never_text
    # A wrong secret for a real room: the page opens, the socket says no, the page says so.
    visitor.page.goto(links.a.split("#")[0] + "#" + "x" * 43)
    expect(visitor.page.locator("#terminal-title")).to_have_text("This link is not valid")
    expect(visitor.page.locator("#terminal-text")).to_contain_text("Nothing from it was kept")
    # No secret at all.
    visitor.page.goto(links.a.split("#")[0])
    expect(visitor.page.locator("#terminal-title")).to_have_text("This link is incomplete")
    # An ended room answers exactly like one that never existed.
    ended = create_room(server.base_url)
    import httpx

    secret = ended.therapist.split("#", 1)[1]
    reply = httpx.post(f"{server.base_url}/api/rooms/{ended.room}/end", json={"confirm": True},
                       headers={"Authorization": f"Bearer {secret}"})
    assert reply.status_code == 204
    gone = visitor.page.goto(ended.a)
    assert gone is not None and gone.status == 404
    assert visitor.page.inner_text("main") == never_text
