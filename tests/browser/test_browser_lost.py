"""A session that Redis lost: every page says so plainly, and that nothing was kept.

The server runs on its own throwaway Redis (not the session's shared one), which the test
restarts empty mid-session, as a crashed or replaced Redis would come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import create_room, move_to_stage
from playwright.sync_api import expect

from server.local_redis import LocalRedis
from tests.conftest import ServerFactory, ServerProcess


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    with LocalRedis() as redis_server:
        yield redis_server


@pytest.fixture
def lonely_server(own_redis: LocalRedis, tmp_path: Path) -> Iterator[ServerProcess]:
    factory = ServerFactory(own_redis.url, tmp_path)
    try:
        yield factory({"PARTSBOARD_SWEEP_INTERVAL": "0.5"})
    finally:
        factory.stop_all()


def test_every_page_says_a_lost_session_was_lost(own_redis: LocalRedis,  # type: ignore[no-untyped-def]
                                                 lonely_server: ServerProcess,
                                                 open_person, artifacts: Path) -> None:
    links = create_room(lonely_server.base_url, a="Noor", b="Eli")
    therapist = open_person("therapist")
    therapist.join(links.therapist)
    noor = open_person("noor")
    noor.join(links.a)
    eli = open_person("eli", phone=True)
    eli.join(links.b)
    t = therapist.page
    t.fill("#agreement-text", "Either of us may stop and breathe")
    t.click("#agreement-add button[type=submit]")
    t.fill("#note-text", "Noor's protector eased when Eli stayed")
    t.click("#note-add button[type=submit]")
    move_to_stage(therapist, [noor, eli], 2)
    noor.add_part("The Firekeeper", "firefighter")
    noor.share("The Firekeeper")
    eli.add_part("The Quiet Corner", "exile")
    everyone = (therapist, noor, eli)
    for person in everyone:
        expect(person.page.locator("li.part")).not_to_have_count(0)
    content = ["Either of us may stop and breathe", "Noor's protector eased when Eli stayed",
               "The Firekeeper", "The Quiet Corner", "Noor", "Eli"]

    own_redis.restart()  # empty: the room is gone from under the server

    for person in everyone:
        page = person.page
        expect(page.locator("#terminal-title")).to_have_text("This session was lost")
        expect(page.locator("#terminal-text")).to_have_text(
            "The server lost this session's board, so it cannot go on. Nothing from it was "
            "kept. Your therapist can start a new session.")
        expect(person.status).to_have_text("The session was lost")
        expect(page.locator("#room")).to_have_count(0)
        expect(page.locator("#room-bar")).to_have_count(0)
        expect(page.locator("#terminal-title")).to_be_focused()
        person.assert_not_on_page(content)
        assert page.evaluate("() => sessionStorage.length") == 0
        expect(page).to_have_title("Partsboard — session")
    folder = artifacts / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    eli.page.screenshot(path=folder / "session-lost-phone.png")
    # The link, opened again, leads to the plain page for a session that is not there.
    late = open_person("late")
    response = late.page.goto(links.a)
    assert response is not None and response.status == 404
    expect(late.page.locator("main")).to_contain_text(
        "This session does not exist or has ended. Nothing from it was kept.")
