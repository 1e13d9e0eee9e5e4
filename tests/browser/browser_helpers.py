"""Helpers for driving Partsboard pages in Chromium: people, rooms, frames, waits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    WebSocket,
    expect,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
THERAPIST_KEY = "test-key"  # tests/conftest.py starts servers with this key
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
WAIT_MS = 15_000

expect.set_options(timeout=WAIT_MS)

_decoder = msgspec.msgpack.Decoder()


@dataclass
class RoomLinks:
    room: str
    therapist: str
    a: str
    b: str


def create_room(base_url: str, *, a: str = "Alex", b: str = "Sam",
                therapist_sees_drafts: bool = True) -> RoomLinks:
    response = httpx.post(
        f"{base_url}/api/rooms",
        json={"partners": {"a": {"name": a, "color": "#1f6fb2"},
                           "b": {"name": b, "color": "#b3541e"}},
              "therapist_sees_drafts": therapist_sees_drafts},
        headers={"Authorization": f"Bearer {THERAPIST_KEY}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    data = response.json()
    return RoomLinks(data["room"], data["links"]["therapist"], data["links"]["a"],
                     data["links"]["b"])


@dataclass
class Person:
    """One browser context (one person's device) with one page."""

    label: str
    context: BrowserContext
    page: Page
    frames: list[bytes] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    sockets: list[WebSocket] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, label: str, *, phone: bool = False,
             reduced_motion: bool = False) -> Person:
        context = browser.new_context(
            viewport=PHONE if phone else DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            accept_downloads=True,
            reduced_motion="reduce" if reduced_motion else "no-preference",
        )
        page = context.new_page()
        person = cls(label, context, page)
        page.on("websocket", person._on_socket)
        page.on("pageerror", lambda error: person.page_errors.append(str(error)))
        page.on("dialog", person._on_dialog)
        return person

    def _on_socket(self, socket: WebSocket) -> None:
        self.sockets.append(socket)
        socket.on("framereceived", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        self.frames.append(payload if isinstance(payload, bytes) else payload.encode())

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self) -> None:
        self.context.close()

    # ---------------------------------------------------------------- navigation

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def join(self, url: str) -> None:
        self.page.goto(url)
        expect(self.page.locator("#room")).to_be_visible()
        expect(self.status).to_have_text("Connected")

    @property
    def status(self) -> Locator:
        return self.page.locator("#conn-status")

    def decoded_frames(self) -> list[dict[str, Any]]:
        return [_decoder.decode(frame) for frame in self.frames]

    def saved(self) -> None:
        """Wait until every command this page sent is acknowledged."""
        expect(self.status).to_have_text("Connected")

    # ---------------------------------------------------------------- the board

    def card(self, name: str) -> Locator:
        return self.page.locator("li.part").filter(
            has=self.page.locator(".part-name", has_text=re.compile(f"^{re.escape(name)}$")))

    def part_id(self, name: str) -> str:
        value = self.card(name).get_attribute("data-part")
        assert value
        return value

    def add_part(self, name: str, kind: str = "unsure") -> None:
        self.page.fill("#part-name", name)
        self.page.select_option("#part-kind", kind)
        self.page.click("#add-part button[type=submit]")
        expect(self.card(name)).to_have_count(1)
        self.saved()

    def share(self, name: str) -> None:
        exile = "kind-exile" in (self.card(name).get_attribute("class") or "")
        self.card(name).get_by_role("button", name=f"Share {name}", exact=True).click()
        if exile:  # sharing an exile asks gently first
            confirm(self, "Share it")
        expect(self.card(name)).not_to_have_class(re.compile(r"\bprivate\b"))

    def take_back(self, name: str) -> None:
        self.card(name).get_by_role("button", name=f"Take back {name}", exact=True).click()
        expect(self.card(name)).to_have_class(re.compile(r"\bprivate\b"))

    def select(self, name: str) -> None:
        self.card(name).locator(".part-handle").click()
        expect(self.page.locator("#part-panel-title")).to_have_text(name)

    def shown_position(self, name: str) -> tuple[str, str]:
        """Where the card is drawn now (x, y as the page has them), saved or not."""
        card = self.card(name)
        return card.get_attribute("data-x") or "", card.get_attribute("data-y") or ""

    def position(self, name: str) -> tuple[str, str]:
        """Where the card rests once this page's own moves of it are saved."""
        expect(self.card(name)).not_to_have_class(re.compile(r"\bunsaved\b"))
        return self.shown_position(name)

    def expect_position(self, name: str, position: tuple[str, str]) -> None:
        card = self.card(name)
        expect(card).to_have_attribute("data-x", position[0])
        expect(card).to_have_attribute("data-y", position[1])

    def drag_by(self, name: str, dx: float, dy: float, *, release: bool = True) -> None:
        handle = self.card(name).locator(".part-handle")
        handle.evaluate("el => el.scrollIntoView({block: 'center'})")
        box = handle.bounding_box()
        assert box
        x, y = box["x"] + box["width"] / 2, box["y"] + 12
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        self.page.mouse.move(x + dx, y + dy, steps=12)
        if release:
            self.page.mouse.up()

    def add_agreements(self, texts: list[str]) -> None:
        """The therapist writes these agreements, one after the other."""
        for text in texts:
            count = self.page.locator("#agreements-list > li").count()
            self.page.fill("#agreement-text", text)
            self.page.click("#agreement-add button[type=submit]")
            expect(self.page.locator("#agreements-list > li")).to_have_count(count + 1)

    # ---------------------------------------------------------------- privacy

    def everything_on_the_page(self) -> str:
        """The page's HTML, its text and every form value."""
        values = self.page.evaluate(
            "() => Array.from(document.querySelectorAll('input, textarea, select'))"
            ".map(el => el.value).join('\\n')")
        return "\n".join([self.page.content(), self.page.inner_text("body"), values])

    def assert_not_on_page(self, secrets: list[str]) -> None:
        text = self.everything_on_the_page()
        for secret in secrets:
            assert secret not in text, f"{self.label}'s page holds a private text"

    def assert_never_seen(self, secrets: list[str], frames_upto: int | None = None) -> None:
        """Not on the page now, and in no frame received (up to frames_upto)."""
        self.assert_not_on_page(secrets)
        for frame in self.frames[:frames_upto]:
            for secret in secrets:
                assert secret.encode() not in frame, (
                    f"{self.label} received a private text in {_decoder.decode(frame)!r}")

    # ---------------------------------------------------------------- screenshots

    def assert_fits_width(self) -> None:
        """Nothing sticks out sideways: the page is usable without scrolling sideways."""
        wide = self.page.evaluate(WIDER_THAN_VIEWPORT)
        assert not wide, f"{self.label}: wider than the screen: {wide[:8]}"

    def assert_cards_fit(self) -> None:
        """Every card's text (kind, name, privacy line, scribe mark) fits above its buttons."""
        clipped = self.page.evaluate(CLIPPED_CARDS)
        assert not clipped, f"{self.label}: cards whose text does not fit: {clipped}"

    def shoot(self, folder: Path, name: str) -> None:
        """A whole-page screenshot at desktop size and at phone size."""
        folder.mkdir(parents=True, exist_ok=True)
        size = self.page.viewport_size or DESKTOP
        scrolled = self.page.evaluate("() => [window.scrollX, window.scrollY]")
        self._whole_page(folder / f"{name}-desktop.png", DESKTOP)
        self.assert_cards_fit()
        self.page.set_viewport_size(PHONE)
        self.assert_fits_width()
        self.assert_cards_fit()
        self._whole_page(folder / f"{name}-phone.png", PHONE)
        self.page.set_viewport_size(size)
        self.page.evaluate("([x, y]) => window.scrollTo(x, y)", scrolled)

    def _whole_page(self, path: Path, size: ViewportSize) -> None:
        """The whole page in one window as tall as the page: the sticky header at the top
        and the phone's fixed bottom bar at the bottom, where they sit at either end of the
        page (a full_page capture would paint them where the first screenful has them)."""
        self.page.set_viewport_size(size)
        self.page.evaluate("() => window.scrollTo(0, 0)")
        height = int(self.page.evaluate("() => document.documentElement.scrollHeight"))
        self.page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        self.page.screenshot(path=path)


CLIPPED_CARDS = """() => Array.from(document.querySelectorAll('#cards li.part'))
  .filter((li) => { const h = li.querySelector('.part-handle');
                    return h.scrollHeight > h.clientHeight + 1; })
  .map((li) => li.querySelector('.part-name').textContent)"""

# The board's surface is left out: zoomed in on a phone, it pans inside its frame (#board).
WIDER_THAN_VIEWPORT = """() => {
  const width = document.documentElement.clientWidth;
  return Array.from(document.querySelectorAll('body *'))
    .filter(el => el.getClientRects().length && el.getBoundingClientRect().right > width + 1
                  && !el.closest('.visually-hidden') && !el.closest('svg')
                  && !el.closest('#surface'))
    .map(el => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
}"""


_AXE_SCRIPT = Axe().axe_script


def axe_scan(*pages: Page) -> list[list[dict[str, Any]]]:
    """axe-core's violations on each page. Axe is injected once per document, and the
    pages (each its own renderer) are scanned at the same time."""
    for page in pages:
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(_AXE_SCRIPT)
        page.evaluate("() => { window.__axeScan = axe.run(document, "
                      "{resultTypes: ['violations']}); }")
    return [page.evaluate("() => window.__axeScan.then(r => r.violations)") for page in pages]


def tab_to(page: Page, selector: str, *, backwards: bool = False, limit: int = 120) -> None:
    """Press Tab (or Shift+Tab) until the element matching selector has the focus."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        if page.evaluate("s => { const el = document.querySelector(s); "
                         "return !!el && el === document.activeElement; }", selector):
            return
        page.keyboard.press(key)
    raise AssertionError(f"Tab never reached {selector}")


def focused_matches(page: Page, selector: str) -> bool:
    return bool(page.evaluate("s => document.activeElement && document.activeElement.matches(s)",
                              selector))


# ---------------------------------------------------------------- rooms with people in them

def join_three(open_person, links: RoomLinks, *, a: str = "Alex",  # type: ignore[no-untyped-def]
               b: str = "Sam", phones: tuple[str, ...] = ()) -> tuple[Person, Person, Person]:
    """The therapist and both partners in the room; ``phones`` names the roles on a phone."""
    people = []
    for role, label in (("therapist", "therapist"), ("a", a.lower()), ("b", b.lower())):
        on_phone = role in phones
        person = open_person(f"{label} on a phone" if on_phone else label, phone=on_phone)
        person.join(getattr(links, role))
        people.append(person)
    for person in people:
        expect(person.page.locator("#presence .person.here")).to_have_count(3)
    therapist, first, second = people
    return therapist, first, second


def move_to_stage(therapist: Person, others: list[Person], number: int) -> None:
    """The therapist presses "Next stage" until everyone is at stage ``number``."""
    title = therapist.page.locator("#stage-title")
    for _ in range(5):
        if f"Stage {number} of 5" in (title.text_content() or ""):
            break
        current = int(re.search(r"Stage (\d)", title.text_content() or "").group(1))  # type: ignore[union-attr]
        therapist.page.click("#stage-next")
        expect(title).to_contain_text(f"Stage {current + 1} of 5")
    for person in (therapist, *others):
        expect(person.page.locator("#stage-title")).to_contain_text(f"Stage {number} of 5")


def draw(person: Person, source: str, kind: str, target: str) -> None:
    """``source`` protects / reacts to ``target`` (named as the part menu shows it), drawn
    from the part panel; waits for the new arrow."""
    person.select(source)
    label = "This part protects…" if kind == "protects" else "This part reacts to…"
    form = person.page.locator("#part-panel form.link-form").filter(has_text=label)
    form.get_by_label(label).select_option(label=target)
    count = person.page.locator("#link-heads .link-mark").count()
    form.get_by_role("button", name="Draw the arrow").click()
    expect(person.page.locator("#link-heads .link-mark")).to_have_count(count + 1)


def confirm(person: Person, button: str) -> str:
    """Answer the page's confirm dialog with ``button``; returns what the dialog said."""
    dialog = person.page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    said = dialog.inner_text()
    dialog.get_by_role("button", name=button, exact=True).click()
    expect(dialog).to_be_hidden()
    return said
