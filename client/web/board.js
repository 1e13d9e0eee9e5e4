// The board: part cards placed by their owners, dragged with a pointer
// (mouse, pen, touch) or moved with the arrow keys, and the links between
// parts drawn as arrows.

import { $, clear, h, svg } from "./dom.js";
import { LINK_LOOKS, scribeMark, sharePart, visibilityText } from "./ifs.js";
import { KIND_LABELS, LINK_KIND_LABELS } from "./rules.js";

const ICONS = {
  manager: "M8 1 L14 3 V8 C14 11.5 11.5 14 8 15 C4.5 14 2 11.5 2 8 V3 Z",
  firefighter: "M8 1 C9 4 13 6 13 10 A5 5 0 0 1 3 10 C3 7 5 6 6 4 C6.5 6 7.5 7 8 7 C8 5 7.5 3 8 1 Z",
  exile: "M8 14 C3 10 1 7.5 1 5 A3.5 3.5 0 0 1 8 3.5 A3.5 3.5 0 0 1 15 5 C15 7.5 13 10 8 14 Z",
  unsure: "M8 1.5 A6.5 6.5 0 1 1 7.99 1.5 Z",
};
const KEY_STEPS = {
  ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
};
const KEY_COMMIT_MS = 350;
const REMOTE_DRAG_TTL_MS = 2000;

const clamp = (value) => Math.min(1, Math.max(0, value));
const round = (value) => Math.round(value * 10000) / 10000;

export function kindIcon(kind) {
  return svg("svg", { class: "kind-icon", viewBox: "0 0 16 16", "aria-hidden": "true", focusable: "false" },
    svg("path", { d: ICONS[kind] || ICONS.unsure }));
}

export class Board {
  constructor(app) {
    this.app = app;
    this.board = $("board");
    this.cardsEl = $("cards");
    this.lines = $("link-lines");
    this.cards = new Map(); // part id -> {li, handle, body, actions, sig}
    this.local = new Map(); // part id -> {x, y, seq}: this page's own moves not yet in the view
    this.remote = new Map(); // part id -> {x, y, timer}: another person's live drag
    this.keyTimers = new Map();
    this.drag = null;
    this.suppressClick = false;
    this.linkFrame = 0;
    window.addEventListener("resize", () => this.drawLinks());
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => this.drawLinks()).observe(this.board);
    }
  }

  reset() {
    for (const timer of this.keyTimers.values()) clearTimeout(timer);
    this.keyTimers.clear();
    this.local.clear();
    for (const entry of this.remote.values()) clearTimeout(entry.timer);
    this.remote.clear();
    this.cards.clear();
    clear(this.cardsEl);
    clear(this.lines);
    this.drag = null;
  }

  canMove(part) {
    return part.owner === this.app.role && this.app.can("part.move");
  }

  position(part) {
    return this.local.get(part.id) || this.remote.get(part.id) || part;
  }

  onEvent(event) {
    for (const [coll, key] of event.changes || []) {
      if (coll !== "parts") continue;
      const remote = this.remote.get(key);
      if (remote) {
        clearTimeout(remote.timer);
        this.remote.delete(key);
      }
    }
  }

  render() {
    const app = this.app;
    const view = app.view;
    for (const [id, entry] of this.local) {
      if (entry.seq !== null && view.seq >= entry.seq) this.local.delete(id);
    }
    const parts = Object.values(view.colls.parts).sort((p, q) =>
      p.owner === q.owner ? (p.id < q.id ? -1 : p.id > q.id ? 1 : 0) : p.owner < q.owner ? -1 : 1);
    const seen = new Set();
    let previous = null;
    for (const part of parts) {
      seen.add(part.id);
      let card = this.cards.get(part.id);
      if (!card) {
        card = this.createCard(part);
        this.cards.set(part.id, card);
      }
      this.updateCard(card, part);
      const expected = previous ? previous.nextSibling : this.cardsEl.firstChild;
      if (card.li !== expected) {
        // Moving a node would drop its focus: move the others around it instead.
        if (card.li.contains(document.activeElement) && expected) {
          this.cardsEl.insertBefore(expected, card.li.nextSibling);
        } else {
          this.cardsEl.insertBefore(card.li, expected);
        }
      }
      previous = card.li;
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.li.remove();
        this.cards.delete(id);
        this.local.delete(id);
      }
    }
    this.drawLinks();
  }

  createCard(part) {
    const handle = h("button", { type: "button", class: "part-handle", dataset: { focus: `card-${part.id}` } });
    const actions = h("div", { class: "part-actions" });
    const li = h("li", { class: "part", dataset: { part: part.id } }, handle, actions);
    const card = { li, handle, actions, sig: "", part };
    handle.addEventListener("click", () => {
      if (this.suppressClick) {
        this.suppressClick = false;
        return;
      }
      this.app.selectPart(card.part.id);
    });
    handle.addEventListener("keydown", (event) => this.onKey(event, card));
    handle.addEventListener("pointerdown", (event) => this.onPointerDown(event, card));
    handle.addEventListener("pointermove", (event) => this.onPointerMove(event, card));
    handle.addEventListener("pointerup", (event) => this.onPointerUp(event, card));
    handle.addEventListener("pointercancel", (event) => this.onPointerCancel(event, card));
    return card;
  }

  updateCard(card, part) {
    const app = this.app;
    card.part = part;
    const board = app.view.colls.room.board;
    const mine = part.owner === app.role;
    const movable = this.canMove(part);
    const spotlit = board.spotlight === part.id;
    const sig = JSON.stringify([part.name, part.kind, part.owner, part.shared, part.with_therapist,
      part.by_therapist, part.blend, app.role,
      app.stage, board.frozen, spotlit, app.ui.selected === part.id, app.partnerName(part.owner),
      app.settings.therapist_sees_drafts, movable]);
    const pos = this.position(part);
    this.place(card, pos);
    const color = app.partnerColor(part.owner);
    if (color) card.li.style.setProperty("--owner", color);
    if (card.sig === sig) return;
    card.sig = sig;
    const li = card.li;
    li.className = `part kind-${part.kind} owner-${part.owner}`;
    li.classList.toggle("private", !part.shared);
    li.classList.toggle("mine", mine);
    li.classList.toggle("movable", movable);
    li.classList.toggle("spotlit", spotlit);
    li.classList.toggle("selected", app.ui.selected === part.id);
    li.classList.toggle("dragging", Boolean(this.drag && this.drag.card === card && this.drag.moved));
    li.classList.toggle("remote-moving", this.remote.has(part.id));

    const owner = mine ? "Your part" : `${app.partnerName(part.owner)}'s part`;
    const privacy = part.shared ? null : visibilityText(app, part);
    const bits = [
      h("span", { class: "part-kind" }, kindIcon(part.kind), h("span", { text: KIND_LABELS[part.kind] || part.kind })),
      h("span", { class: "part-name", text: part.name }),
      h("span", { class: "part-owner", text: owner }),
    ];
    if (privacy) bits.push(h("span", { class: "part-privacy", text: privacy }));
    const scribe = scribeMark(app, part);
    if (scribe) bits.push(h("span", { class: "part-scribe", text: scribe }));
    if (part.blend !== null && part.blend !== undefined) {
      bits.push(h("span", { class: "part-blend", text: `Blended ${part.blend} of 10` }));
    }
    if (spotlit) bits.push(h("span", { class: "part-spot", text: "In the spotlight" }));
    const focused = card.handle === document.activeElement;
    clear(card.handle);
    card.handle.append(...bits);
    const label = [part.name, KIND_LABELS[part.kind], owner, privacy || "shared", scribe,
      part.blend !== null && part.blend !== undefined ? `blended ${part.blend} of 10` : null,
      spotlit ? "in the spotlight" : null].filter(Boolean).join(", ");
    card.handle.setAttribute("aria-label", label);
    if (movable) {
      card.handle.setAttribute("aria-describedby", "move-help");
    } else {
      card.handle.removeAttribute("aria-describedby");
    }
    card.handle.setAttribute("aria-pressed", app.ui.selected === part.id ? "true" : "false");
    if (focused && document.activeElement !== card.handle) card.handle.focus({ preventScroll: true });

    const actionKey = card.actions.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
    clear(card.actions);
    if (mine && !part.shared && app.can("part.reveal")) {
      card.actions.append(h("button", {
        type: "button", class: "small primary", text: "Share",
        "aria-label": `Share ${part.name}`, dataset: { focus: `share-${part.id}` },
        onclick: () => sharePart(app, part),
      }));
    } else if (mine && part.shared && app.can("part.withdraw")) {
      card.actions.append(h("button", {
        type: "button", class: "small", text: "Take back",
        "aria-label": `Take back ${part.name}`, dataset: { focus: `share-${part.id}` },
        onclick: () => app.send("part.withdraw", { id: part.id }),
      }));
    } else if (app.role === "therapist" && part.shared) {
      card.actions.append(h("button", {
        type: "button", class: "small", text: spotlit ? "Leave the spotlight" : "Spotlight",
        "aria-label": spotlit ? `Take ${part.name} out of the spotlight` : `Put ${part.name} in the spotlight`,
        dataset: { focus: `spot-${part.id}` },
        onclick: () => app.send("spotlight.set", { part: spotlit ? null : part.id }),
      }));
    }
    card.actions.hidden = card.actions.childElementCount === 0;
    if (actionKey) {
      const again = card.actions.querySelector(`[data-focus="${CSS.escape(actionKey)}"]`);
      if (again) again.focus({ preventScroll: true });
      else card.handle.focus({ preventScroll: true });
    }
  }

  // x and y (0..1) place the card anywhere inside the board, edge to edge: the card's own
  // point at the same fraction of its size sits at that fraction of the board.
  place(card, pos) {
    card.li.style.left = `${pos.x * 100}%`;
    card.li.style.top = `${pos.y * 100}%`;
    card.li.style.transform = `translate(${-pos.x * 100}%, ${-pos.y * 100}%)`;
  }

  // A place on this partner's side where a new card covers no other card, if there is one.
  freeSpot(partner) {
    const area = this.cardsEl.getBoundingClientRect();
    // The biggest card sets the spacing (a private card, with its note, is taller).
    const shown = Array.from(this.cardsEl.querySelectorAll("li.part"));
    const cardW = shown.length ? Math.max(...shown.map((li) => li.offsetWidth)) : 150;
    const cardH = shown.length ? Math.max(...shown.map((li) => li.offsetHeight)) : 110;
    const freeW = Math.max(1, area.width - cardW);
    const freeH = Math.max(1, area.height - cardH);
    const taken = Array.from(this.cards.values(), (card) => this.position(card.part));
    const step = Math.min(0.5, (cardW + 8) / freeW);
    const columns = [0, step, 2 * step].filter((x) => x <= 0.45).map((x) => (partner === "a" ? x : 1 - x));
    const rowStep = Math.min(1, (cardH + 8) / freeH);
    const rows = [];
    for (let y = 0; y <= 1.0001; y += rowStep) rows.push(Math.min(1, y));
    for (const x of columns) {
      for (const y of rows) {
        const free = taken.every((t) =>
          Math.abs(t.x - x) * freeW > cardW + 4 || Math.abs(t.y - y) * freeH > cardH + 4);
        if (free) return { x: round(x), y: round(y) };
      }
    }
    const count = taken.length;
    return { x: partner === "a" ? 0.1 : 0.9, y: round((count * 0.13) % 1) };
  }

  // ---------------------------------------------------------------- moving

  setLocal(card, x, y) {
    const entry = { x: round(clamp(x)), y: round(clamp(y)), seq: null };
    this.local.set(card.part.id, entry);
    this.place(card, entry);
    this.scheduleLinks();
    return entry;
  }

  commitMove(card, entry) {
    const id = card.part.id;
    this.app.client.endDrag(id);
    this.app.send("part.move", { id, x: entry.x, y: entry.y }).then(
      (ack) => {
        if (this.local.get(id) === entry) {
          entry.seq = ack.seq;
          this.app.scheduleRender();
        }
      },
      () => {
        if (this.local.get(id) === entry) {
          this.local.delete(id);
          this.app.scheduleRender();
        }
      },
    );
  }

  // The position that puts the card's top-left corner at (left, top) in page pixels.
  cardPositionAt(card, left, top) {
    const area = this.cardsEl.getBoundingClientRect();
    const freeW = area.width - card.li.offsetWidth;
    const freeH = area.height - card.li.offsetHeight;
    return {
      x: freeW > 0 ? (left - area.left) / freeW : 0.5,
      y: freeH > 0 ? (top - area.top) / freeH : 0.5,
    };
  }

  onPointerDown(event, card) {
    if (!this.canMove(card.part) || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    card.handle.focus({ preventScroll: true });
    try {
      card.handle.setPointerCapture(event.pointerId);
    } catch {
      /* the pointer is already gone */
    }
    const rect = card.li.getBoundingClientRect();
    this.drag = {
      card, pointerId: event.pointerId, startX: event.clientX, startY: event.clientY,
      grabX: event.clientX - rect.left, grabY: event.clientY - rect.top, moved: false, entry: null,
    };
    this.suppressClick = false;
  }

  onPointerMove(event, card) {
    const drag = this.drag;
    if (!drag || drag.card !== card || drag.pointerId !== event.pointerId) return;
    if (!drag.moved && Math.hypot(event.clientX - drag.startX, event.clientY - drag.startY) < 4) return;
    drag.moved = true;
    card.li.classList.add("dragging");
    const pos = this.cardPositionAt(card, event.clientX - drag.grabX, event.clientY - drag.grabY);
    drag.entry = this.setLocal(card, pos.x, pos.y);
    this.app.client.drag(card.part.id, drag.entry.x, drag.entry.y);
  }

  onPointerUp(event, card) {
    const drag = this.drag;
    if (!drag || drag.card !== card || drag.pointerId !== event.pointerId) return;
    this.drag = null;
    card.li.classList.remove("dragging");
    if (drag.moved && drag.entry) {
      this.suppressClick = true;
      setTimeout(() => { this.suppressClick = false; }, 0);
      this.commitMove(card, drag.entry);
    } else if (event.pointerType !== "mouse") {
      // A tap: the click that follows selects the card.
    }
  }

  onPointerCancel(event, card) {
    const drag = this.drag;
    if (!drag || drag.card !== card) return;
    this.drag = null;
    card.li.classList.remove("dragging");
    this.app.client.endDrag(card.part.id);
    if (drag.entry && this.local.get(card.part.id) === drag.entry) this.local.delete(card.part.id);
    this.app.scheduleRender();
  }

  onKey(event, card) {
    const step = KEY_STEPS[event.key];
    if (!step || event.altKey || event.ctrlKey || event.metaKey) return;
    if (!this.canMove(card.part)) return;
    event.preventDefault();
    const size = event.shiftKey ? 0.1 : 0.025;
    const pos = this.position(card.part);
    const entry = this.setLocal(card, pos.x + step[0] * size, pos.y + step[1] * size);
    const id = card.part.id;
    this.app.client.drag(id, entry.x, entry.y);
    clearTimeout(this.keyTimers.get(id));
    this.keyTimers.set(id, setTimeout(() => {
      this.keyTimers.delete(id);
      if (this.local.get(id) === entry) this.commitMove(card, entry);
    }, KEY_COMMIT_MS));
  }

  remoteDrag(frame) {
    const card = this.cards.get(frame.part);
    if (!card || (this.drag && this.drag.card === card) || this.local.has(frame.part)) return;
    const x = clamp(Number(frame.x));
    const y = clamp(Number(frame.y));
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    const old = this.remote.get(frame.part);
    if (old) clearTimeout(old.timer);
    const entry = { x, y, timer: null };
    entry.timer = setTimeout(() => {
      if (this.remote.get(frame.part) === entry) {
        this.remote.delete(frame.part);
        card.li.classList.remove("remote-moving");
        this.app.scheduleRender();
      }
    }, REMOTE_DRAG_TTL_MS);
    this.remote.set(frame.part, entry);
    card.li.classList.add("remote-moving");
    this.place(card, entry);
    this.scheduleLinks();
  }

  // ---------------------------------------------------------------- links

  scheduleLinks() {
    if (this.linkFrame) return;
    this.linkFrame = requestAnimationFrame(() => {
      this.linkFrame = 0;
      this.drawLinks();
    });
  }

  drawLinks() {
    clear(this.lines);
    const view = this.app.view;
    if (!view) return;
    const origin = this.board.getBoundingClientRect();
    const links = Object.values(view.colls.links).sort((p, q) => (p.id < q.id ? -1 : 1));
    for (const link of links) {
      const source = this.cards.get(link.source);
      const target = this.cards.get(link.target);
      if (!source || !target) continue;
      const a = source.li.getBoundingClientRect();
      const b = target.li.getBoundingClientRect();
      const ca = { x: a.left + a.width / 2 - origin.left, y: a.top + a.height / 2 - origin.top };
      const cb = { x: b.left + b.width / 2 - origin.left, y: b.top + b.height / 2 - origin.top };
      const start = edgePoint(cb, ca, a.width / 2 + 3, a.height / 2 + 3);
      const end = edgePoint(ca, cb, b.width / 2 + 6, b.height / 2 + 6);
      const dx = end.x - start.x;
      const dy = end.y - start.y;
      const length = Math.hypot(dx, dy) || 1;
      // Bend each arrow to its own left, so two arrows between the same parts both show.
      const bend = Math.min(40, length / 4);
      const control = {
        x: (start.x + end.x) / 2 + (dy / length) * bend,
        y: (start.y + end.y) / 2 - (dx / length) * bend,
      };
      const look = LINK_LOOKS[link.kind] || LINK_LOOKS.protects;
      this.lines.append(svg("path", {
        d: `M${start.x.toFixed(1)},${start.y.toFixed(1)} Q${control.x.toFixed(1)},${control.y.toFixed(1)} ${end.x.toFixed(1)},${end.y.toFixed(1)}`,
        class: `link ${look.cls}`, "marker-end": look.marker, "data-link": link.id,
      }));
      // The kind in words at the curve's middle (its label too), readable without colour.
      const words = link.kind === "polarized_with" || link.kind === "allied_with" || link.label
        ? [LINK_KIND_LABELS[link.kind], link.label].filter(Boolean).join(": ") : "";
      if (words) {
        this.lines.append(svg("text", { x: ((start.x + end.x) / 2 + control.x) / 2, y: ((start.y + end.y) / 2 + control.y) / 2,
          class: "link-label", "text-anchor": "middle" }, words.slice(0, 40)));
      }
    }
  }
}

// The point where the line from `from` to the centre `to` enters a box of half-size (hw, hh).
function edgePoint(from, to, hw, hh) {
  const dx = from.x - to.x;
  const dy = from.y - to.y;
  if (dx === 0 && dy === 0) return { x: to.x, y: to.y };
  const scale = Math.min(dx ? hw / Math.abs(dx) : Infinity, dy ? hh / Math.abs(dy) : Infinity, 1);
  return { x: to.x + dx * scale, y: to.y + dy * scale };
}
