// The board: part cards placed by their owners, dragged with a pointer
// (mouse, pen, touch) or moved with the arrow keys, and the links between
// parts drawn as arrows.

import { $, clear, h, svg } from "./dom.js";
import { LINK_LOOKS, scribeMark, sharePart, visibilityText } from "./ifs.js";
import { BOARD, KIND_LABELS, LINK_KIND_LABELS } from "./rules.js";

const ICONS = {
  manager: "M8 1 L14 3 V8 C14 11.5 11.5 14 8 15 C4.5 14 2 11.5 2 8 V3 Z",
  firefighter: "M8 1 C9 4 13 6 13 10 A5 5 0 0 1 3 10 C3 7 5 6 6 4 C6.5 6 7.5 7 8 7 C8 5 7.5 3 8 1 Z",
  exile: "M8 14 C3 10 1 7.5 1 5 A3.5 3.5 0 0 1 8 3.5 A3.5 3.5 0 0 1 15 5 C15 7.5 13 10 8 14 Z",
  unsure: "M8 1.5 A6.5 6.5 0 1 1 7.99 1.5 Z",
};
const KEY_STEPS = {
  ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
};
// The board in its own units, the same on every screen: 1000 wide.
export const UNITS_W = 1000;
export const UNITS_H = UNITS_W / BOARD.aspect;
const CARD_W = BOARD.card_w * UNITS_W;
const CARD_H = BOARD.card_h * UNITS_H;
// One arrow press moves a card by one place of the grid cards rest on.
const KEY_STEP_X = (BOARD.card_w + BOARD.gap) / (1 - BOARD.card_w);
const KEY_STEP_Y = (BOARD.card_h + BOARD.gap * BOARD.aspect) / (1 - BOARD.card_h);
// Under this width (in CSS pixels) card texts are too small to read: phones start zoomed in.
const READABLE_PX = 800;
const ZOOMS = [1, 1.5, 2, 3];
// An arrowhead, turned any way, must fit in the GAP (20 units) between its target and the
// next card: clear + hypot(length, half) = 19.2.
const ARROW = { length: 15, half: 6, clear: 3 };
// Down the gap beside a column: the curve's far point half way across the gap, the arrowhead
// (nearly upright there, half 6 wide) clear of the target card's side and of the next column.
const GAP_MIDDLE = 10;
const ARROW_SIDE_CLEAR = 7;
// A label fits in the GAP between two cards (20 units).
const LABEL = { size: 13, pad: 1.5, charW: 0.62 };
const LABEL_SHIFTS = [[0, -22], [0, 22], [-40, 0], [40, 0], [-80, 0], [80, 0], [0, -44], [0, 44],
  [-40, -22], [40, -22], [-40, 22], [40, 22], [-120, 0], [120, 0], [-80, -22], [80, -22],
  [-80, 22], [80, 22]];
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
    this.surface = $("surface");
    this.cardsEl = $("cards");
    this.lines = $("link-lines");
    this.heads = $("link-heads");
    for (const layer of [$("link-layer"), $("link-marks")]) {
      layer.setAttribute("viewBox", `0 0 ${UNITS_W} ${UNITS_H.toFixed(2)}`);
    }
    this.surface.style.setProperty("--aspect", String(BOARD.aspect));
    this.surface.style.setProperty("--card-w", `${BOARD.card_w * 100}%`);
    this.surface.style.setProperty("--card-h", `${BOARD.card_h * 100}%`);
    this.zoom = null; // a factor of the board's width; null: the default for this screen
    $("zoom-in").addEventListener("click", () => this.setZoom(1));
    $("zoom-out").addEventListener("click", () => this.setZoom(-1));
    this.cards = new Map(); // part id -> {li, handle, body, actions, sig}
    this.local = new Map(); // part id -> {x, y, seq}: this page's own moves not yet in the view
    this.remote = new Map(); // part id -> {x, y, timer}: another person's live drag
    this.keyTimers = new Map();
    this.drag = null;
    this.suppressClick = false;
    this.linkFrame = 0;
    this.placedZoomed = false; // zoomed in, and put on this person's side
    this.frameWidth = 0;
    const resized = () => {
      if (!this.board.isConnected || this.board.clientWidth === this.frameWidth) return;
      this.frameWidth = this.board.clientWidth;
      this.applyZoom();
    };
    window.addEventListener("resize", resized);
    if (typeof ResizeObserver === "function") new ResizeObserver(resized).observe(this.board);
    this.applyZoom();
  }

  // ---------------------------------------------------------------- zoom and pan

  // The zoom levels of this screen: the whole board fits at 1; on a narrow screen the first
  // level is the one where cards are readable.
  zooms() {
    const width = this.board.clientWidth || READABLE_PX;
    const readable = Math.max(1, READABLE_PX / width);
    return readable > 1 ? [1, ...ZOOMS.map((z) => z * readable).filter((z) => z <= 4)] : ZOOMS;
  }

  applyZoom() {
    const levels = this.zooms();
    // By default: readable (a phone) or the whole board (wider screens).
    const narrow = (this.board.clientWidth || READABLE_PX) < READABLE_PX;
    const wanted = this.zoom === null ? levels[narrow ? 1 : 0] : this.zoom;
    const chosen = levels.reduce((best, z) => (Math.abs(z - wanted) < Math.abs(best - wanted) ? z : best));
    this.current = chosen;
    this.surface.style.width = `${(chosen * 100).toFixed(2)}%`;
    // Zoomed in from the start: a partner starts on their own side next to the middle, where
    // their first cards rest (rooms/geometry.py), the therapist on the middle.
    const role = this.app.role;
    // So too each time the board goes from whole to zoomed in by itself (a window made narrow).
    if (chosen > 1 && role && !this.placedZoomed && this.board.clientWidth) {
      this.placedZoomed = true;
      const middle = this.board.scrollWidth / 2;
      const view = this.board.clientWidth;
      this.board.scrollLeft = role === "a" ? middle - view : role === "b" ? middle : middle - view / 2;
    }
    if (chosen <= 1.001) this.placedZoomed = false;
    this.board.classList.toggle("zoomed", chosen > 1.001);
    $("zoom-out").disabled = chosen <= levels[0] + 1e-6;
    $("zoom-in").disabled = chosen >= levels[levels.length - 1] - 1e-6;
    this.scheduleLinks();
  }

  setZoom(direction) {
    const levels = this.zooms();
    const at = levels.findIndex((z) => z >= this.current - 1e-6);
    const next = Math.min(levels.length - 1, Math.max(0, (at < 0 ? 0 : at) + direction));
    const frame = this.board;
    // Keep the middle of what is shown in the middle.
    const midX = (frame.scrollLeft + frame.clientWidth / 2) / frame.scrollWidth;
    const midY = (frame.scrollTop + frame.clientHeight / 2) / frame.scrollHeight;
    this.zoom = levels[next];
    this.applyZoom();
    frame.scrollLeft = midX * frame.scrollWidth - frame.clientWidth / 2;
    frame.scrollTop = midY * frame.scrollHeight - frame.clientHeight / 2;
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
    clear(this.heads);
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
    if (!this.placedZoomed) this.applyZoom();
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
    const blended = part.blend !== null && part.blend !== undefined;
    const top = h("span", { class: "part-kind" }, kindIcon(part.kind), h("span", { text: KIND_LABELS[part.kind] || part.kind }));
    if (blended) top.append(h("span", { class: "part-blend", text: `Blended ${part.blend} of 10` }));
    const bits = [top, h("span", { class: "part-name", text: part.name })];
    if (privacy) bits.push(h("span", { class: "part-privacy", text: privacy }));
    const scribe = scribeMark(app, part);
    if (scribe) bits.push(h("span", { class: "part-scribe", text: scribe }));
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

  // x and y (0..1) put the card's top-left corner at that fraction of the board's free room
  // (rooms/geometry.py): the card never sticks out.
  place(card, pos) {
    card.li.dataset.x = String(pos.x);
    card.li.dataset.y = String(pos.y);
    card.li.classList.toggle("unsaved", this.local.has(card.part.id));
    card.li.style.left = `${(pos.x * (1 - BOARD.card_w) * 100).toFixed(3)}%`;
    card.li.style.top = `${(pos.y * (1 - BOARD.card_h) * 100).toFixed(3)}%`;
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
    const freeW = area.width * (1 - BOARD.card_w);
    const freeH = area.height * (1 - BOARD.card_h);
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
    const times = event.shiftKey ? 2 : 1;
    const pos = this.position(card.part);
    const entry = this.setLocal(card, pos.x + step[0] * KEY_STEP_X * times,
      pos.y + step[1] * KEY_STEP_Y * times);
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

  // A card's box in board units, where this page shows it.
  boxOf(card) {
    const pos = this.position(card.part);
    const left = pos.x * (UNITS_W - CARD_W);
    const top = pos.y * (UNITS_H - CARD_H);
    return { left, top, right: left + CARD_W, bottom: top + CARD_H };
  }

  // Links in board units, so every screen draws the same picture: the line under the cards,
  // the arrowhead and the label above them, each outside every card (cards rest GAP apart
  // and an arrowhead stays within GAP of the card it points at).
  drawLinks() {
    clear(this.lines);
    clear(this.heads);
    const view = this.app.view;
    if (!view) return;
    const boxes = Array.from(this.cards.values(), (card) => this.boxOf(card));
    const taken = [];
    const links = Object.values(view.colls.links).sort(inOrder);
    for (const link of links) {
      const source = this.cards.get(link.source);
      const target = this.cards.get(link.target);
      if (!source || !target) continue;
      const { start, control, end } = route(this.boxOf(source), this.boxOf(target), boxes);
      const look = LINK_LOOKS[link.kind] || LINK_LOOKS.protects;
      const kind = look.cls.replace("link-", "");
      const d = `M${f(start.x)},${f(start.y)} Q${f(control.x)},${f(control.y)} ${f(end.x)},${f(end.y)}`;
      this.lines.append(svg("path", { d, class: `link ${look.cls}`, "data-link": link.id }));
      const name = [LINK_KIND_LABELS[link.kind] || link.kind, link.label].filter(Boolean).join(": ").slice(0, 40);
      const group = svg("g", { class: `link-mark link-mark-${kind}`, "data-link": link.id });
      group.append(svg("title", {}, `${partName(this, link.source)} ${name} ${partName(this, link.target)}`));
      if (look.marker) {
        // The arrowhead points along the curve's last stretch, its tip just off the target.
        const tx = end.x - control.x;
        const ty = end.y - control.y;
        const tl = Math.hypot(tx, ty) || 1;
        const ux = tx / tl;
        const uy = ty / tl;
        const baseX = end.x - ux * ARROW.length;
        const baseY = end.y - uy * ARROW.length;
        const head = [[end.x, end.y], [baseX - uy * ARROW.half, baseY + ux * ARROW.half],
          [baseX + uy * ARROW.half, baseY - ux * ARROW.half]];
        group.append(svg("polygon", { class: `arrowhead arrow-${kind}`,
          points: head.map(([x, y]) => `${f(x)},${f(y)}`).join(" "), "data-link": link.id }));
      }
      const label = placeLabel(name, start, control, end, boxes, taken);
      taken.push(label.box);
      group.append(svg("text", { class: `link-label label-${kind}`, x: f(label.x), y: f(label.y),
        "text-anchor": "middle", "dominant-baseline": "central", "data-link": link.id }, name));
      this.heads.append(group);
    }
  }
}

const f = (value) => value.toFixed(1);
const inOrder = (p, q) => (p.order ?? 0) - (q.order ?? 0) || (p.id < q.id ? -1 : p.id > q.id ? 1 : 0);
const centre = (box) => ({ x: (box.left + box.right) / 2, y: (box.top + box.bottom) / 2 });

function partName(board, id) {
  const card = board.cards.get(id);
  return card ? card.part.name : "";
}

function overlaps(p, q) {
  return p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom;
}

// A place for a link's label on its curve (or beside it) that lies on no card and no other
// label, inside the board.
function placeLabel(text, start, control, end, boxes, taken) {
  const width = text.length * LABEL.size * LABEL.charW + 2 * LABEL.pad;
  const height = LABEL.size + 2 * LABEL.pad;
  const at = (t) => ({
    x: (1 - t) * (1 - t) * start.x + 2 * (1 - t) * t * control.x + t * t * end.x,
    y: (1 - t) * (1 - t) * start.y + 2 * (1 - t) * t * control.y + t * t * end.y,
  });
  // On the curve first, then ever further beside it (along a row's gap, then a row away).
  const along = [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.15, 0.85].map(at);
  const tries = [...along];
  for (const [ox, oy] of LABEL_SHIFTS) {
    for (const p of along.slice(0, 5)) tries.push({ x: p.x + ox, y: p.y + oy });
  }
  let best = null;
  for (const p of tries) {
    const x = Math.min(UNITS_W - width / 2, Math.max(width / 2, p.x));
    const y = Math.min(UNITS_H - height / 2, Math.max(height / 2, p.y));
    const box = { left: x - width / 2, right: x + width / 2, top: y - height / 2, bottom: y + height / 2 };
    const hits = boxes.filter((b) => overlaps(box, b)).length * 10 + taken.filter((b) => overlaps(box, b)).length;
    if (!best || hits < best.hits) best = { x, y, box, hits };
    if (hits === 0) break;
  }
  return best;
}

// A link's curve: from just outside its source to just outside its target, bent to its own
// left so two arrows between the same parts both show. Between two cards of one column with
// a card between them, it runs down the gap beside the column (on the side facing the middle
// of the board) instead of under that card.
function route(a, b, boxes) {
  const ca = centre(a);
  const cb = centre(b);
  const inWay = (box) => box.left === a.left && Math.min(a.top, b.top) < box.top && box.top < Math.max(a.top, b.top);
  if (a.left === b.left && boxes.some(inWay)) {
    const inward = a.left + CARD_W / 2 < UNITS_W / 2 ? 1 : -1;
    const side = inward > 0 ? a.right : a.left;
    return {
      start: { x: side + inward * 2, y: ca.y },
      control: { x: side + inward * GAP_MIDDLE * 2, y: (ca.y + cb.y) / 2 },
      end: { x: side + inward * ARROW_SIDE_CLEAR, y: cb.y },
    };
  }
  const start = edgePoint(cb, ca, a, 2);
  const end = edgePoint(ca, cb, b, ARROW.clear);
  const dx = end.x - start.x;
  const dy = end.y - start.y;
  const length = Math.hypot(dx, dy) || 1;
  const bend = Math.min(60, length / 4);
  const control = { x: (start.x + end.x) / 2 + (dy / length) * bend, y: (start.y + end.y) / 2 - (dx / length) * bend };
  return { start, control, end };
}

// The point `gap` outside the box (around the centre `to`) where the line from `from` leaves it.
function edgePoint(from, to, box, gap) {
  const hw = (box.right - box.left) / 2 + gap;
  const hh = (box.bottom - box.top) / 2 + gap;
  const dx = from.x - to.x;
  const dy = from.y - to.y;
  if (dx === 0 && dy === 0) return { x: to.x, y: to.y };
  const scale = Math.min(dx ? hw / Math.abs(dx) : Infinity, dy ? hh / Math.abs(dy) : Infinity, 1);
  return { x: to.x + dx * scale, y: to.y + dy * scale };
}
