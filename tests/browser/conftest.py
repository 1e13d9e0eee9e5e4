"""Fixtures for the browser tests: Debian's Chromium driven by Playwright (sync API).

One Chromium serves every browser test of a pytest run. It is started by the
first test that asks for it and stopped after the last test of this folder,
before any other test runs: between its sync calls, Playwright leaves its own
asyncio loop marked as running in this thread, which the asyncio tests of the
other folders could not live with.

One server per test module (``module_server``; ``server`` is that server here), against the
session's test Redis, which is still checked for TTLs and flushed after every test; each test
makes its own rooms. Tests that need a server of their own (its own Redis) start it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Person, RoomLinks, create_room
from playwright.sync_api import Browser, Playwright, sync_playwright

from server.local_redis import LocalRedis
from tests.conftest import ServerFactory, ServerProcess

HERE = Path(__file__).resolve().parent


class _Shared:
    playwright: Playwright | None = None
    browser: Browser | None = None


def _stop_browser() -> None:
    if _Shared.browser is not None:
        _Shared.browser.close()
        _Shared.browser = None
    if _Shared.playwright is not None:
        _Shared.playwright.stop()
        _Shared.playwright = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        yield  # the test's fixtures (its contexts) are torn down first
    finally:
        if nextitem is None or HERE not in Path(str(nextitem.path)).resolve().parents:
            _stop_browser()


@pytest.fixture
def browser() -> Browser:
    if _Shared.browser is None:
        _Shared.playwright = sync_playwright().start()
        _Shared.browser = _Shared.playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
    return _Shared.browser


@pytest.fixture
def people(browser: Browser) -> Iterator[list[Person]]:
    """Every Person opened by a test; their contexts close (and their JS errors are
    checked) at teardown."""
    opened: list[Person] = []
    yield opened
    errors = [f"{p.label}: {e}" for p in opened for e in p.page_errors]
    for person in opened:
        person.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def open_person(browser: Browser, people: list[Person]):  # type: ignore[no-untyped-def]
    def _open(label: str, url: str | None = None, *, phone: bool = False,
              reduced_motion: bool = False) -> Person:
        person = Person.open(browser, label, phone=phone, reduced_motion=reduced_motion)
        people.append(person)
        if url is not None:
            person.goto(url)
        return person

    return _open


@pytest.fixture(scope="module")
def module_server(redis_server: LocalRedis,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for a whole test module, against the session's test Redis (each test
    makes its own rooms; the Redis is still checked and flushed after every test)."""
    factory = ServerFactory(redis_server.url, tmp_path_factory.mktemp("module-server"))
    try:
        yield factory()
    finally:
        factory.stop_all()


@pytest.fixture
def server(module_server: ServerProcess) -> ServerProcess:
    """In this folder, ``server`` is the module's server (starting one per test costs time)."""
    assert module_server.running, f"the module's server died:\n{module_server.log_tail()}"
    return module_server


@pytest.fixture
def room(server) -> RoomLinks:  # type: ignore[no-untyped-def]
    """A fresh room on the test server, created over the HTTP API (Alex and Sam)."""
    return create_room(server.base_url)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
