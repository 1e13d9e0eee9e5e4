// "Show the cycle": the couple's protective cycle as a picture. The server draws it
// (rooms/cycle.py, the same SVG as the HTML export) from this viewer's own view, so the
// layout has one home and the picture never shows more than the board does.

import { $ } from "./dom.js";

// Many events can land together (a tidy, a replay): fetch once they settle.
const REFRESH_MS = 400;

export class CycleView {
  constructor(app) {
    this.app = app;
    this.open = false;
    this.timer = null;
    this.asked = 0;
    $("cycle-toggle").addEventListener("click", () => this.toggle());
    window.addEventListener("resize", () => this.placeOnOwnSide());
  }

  // Wider than a phone, the picture pans: like the board, a partner starts on their own side
  // (a on the left, b on the right), the therapist on the middle.
  placeOnOwnSide() {
    const picture = $("cycle-picture");
    const spare = picture.scrollWidth - picture.clientWidth;
    if (!this.open || spare <= 0) return;
    const role = this.app.role;
    picture.scrollLeft = role === "a" ? 0 : role === "b" ? spare : spare / 2;
  }

  render() {
    const button = $("cycle-toggle");
    const visible = this.app.stage >= 3 && !this.app.ending;
    button.hidden = !visible;
    if (!visible && this.open) this.toggle();
  }

  toggle() {
    this.open = !this.open;
    $("cycle-toggle").setAttribute("aria-pressed", String(this.open));
    $("cycle-toggle").textContent = this.open ? "Hide the cycle" : "Show the cycle";
    $("cycle-view").hidden = !this.open;
    if (this.open) {
      this.refresh();
      $("cycle-title").focus();
    } else {
      clearTimeout(this.timer);
      $("cycle-picture").replaceChildren();
    }
  }

  onEvent() {
    if (!this.open) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    const asked = ++this.asked;
    const help = $("cycle-help");
    let response;
    try {
      response = await this.app.api(`/api/rooms/${encodeURIComponent(document.body.dataset.room)}/cycle`);
    } catch {
      if (asked === this.asked) help.textContent = "The picture could not be drawn: the server could not be reached.";
      return;
    }
    const text = response.ok ? await response.text() : "";
    // A newer request, or the view was closed meanwhile: this answer is stale.
    if (asked !== this.asked || !this.open) return;
    const picture = $("cycle-picture");
    if (!response.ok) {
      help.textContent = "The picture could not be drawn. Please try again.";
      picture.replaceChildren();
    } else if (response.status === 204 || !text) {
      help.textContent = "No cycle to show yet: it appears once a part is linked as “reacts to” a part of the other partner.";
      picture.replaceChildren();
    } else {
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");
      const root = doc.documentElement;
      if (root.localName !== "svg") return;
      help.textContent = "Each partner's protectors sit above the parts they protect; the arrows show what reacts to what.";
      const first = !picture.firstElementChild;
      picture.replaceChildren(document.importNode(root, true));
      if (first) this.placeOnOwnSide();
    }
    picture.dataset.ready = String(asked);
  }
}
