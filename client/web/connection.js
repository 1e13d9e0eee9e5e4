// The browser's websocket client: hello and resume, a local mirror of the
// view, commands kept until acknowledged (and resent with the same ids after
// a reconnect), gap detection, and a connection state that tells the truth.
// It follows the one client behaviour of docs/protocol.md ("What a client does"), as the
// Python client does; what to do after each close code and the reconnect schedule come
// from the served protocol document.

import { decode, encode } from "/static/vendor/msgpack/index.mjs";
import { closeRule, PROTOCOL } from "./rules.js";
import { applyEvent, GapError } from "./view.js";

export const SUBPROTOCOL = PROTOCOL.subprotocol;

const DRAG_INTERVAL_MS = 50; // about 20 drag frames a second
const MAX_RETRY_AFTER = 30; // seconds: a longer pause asked for is taken as the default

function randomId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class RoomClient extends EventTarget {
  constructor({ room, secret, url = socketUrl() }) {
    super();
    this.url = url;
    this.room = room;
    this.secret = secret;
    this.ws = null;
    this.view = null;
    this.role = null;
    this.epoch = null;
    this.presence = { therapist: 0, a: 0, b: 0 };
    this.pending = new Map(); // command id -> frame, in the order sent
    this.waiters = new Map(); // command id -> {resolve, reject}
    this.clientId = randomId();
    this.counter = 0;
    this.welcomed = false;
    this.everWelcomed = false;
    this.attempt = 0;
    this.timer = null;
    this.terminal = null; // "ended" | "lost" | "invalid"
    this.busy = false; // too many connections for this role
    this.status = "connecting";
    this.shownPending = 0;
    this.dragState = new Map(); // part id -> {x, y, timer, last}
  }

  start() {
    window.addEventListener("offline", () => this.dropConnection());
    window.addEventListener("online", () => {
      if (!this.ws && !this.terminal) {
        this.attempt = 0;
        this.connect();
      }
    });
    // A laptop lid reopened: the socket may be dead without anyone having said so.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.ws && !this.terminal) {
        this.attempt = 0;
        this.connect();
      }
    });
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.terminal) return;
    let ws;
    try {
      ws = new WebSocket(this.url, SUBPROTOCOL);
    } catch {
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.welcomed = false;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      const hello = { t: "hello", room: this.room, secret: this.secret };
      if (this.view && this.epoch) hello.resume = { epoch: this.epoch, seq: this.view.seq };
      ws.send(encode(hello));
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = decode(new Uint8Array(event.data));
      } catch {
        return;
      }
      if (frame && typeof frame === "object") this.handle(frame);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.welcomed = false;
      this.closed(event.code);
    });
    this.updateStatus();
  }

  // Forget the current socket at once (the network went away) and reconnect.
  dropConnection() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.welcomed = false;
    try {
      ws.close(1000);
    } catch {
      /* already closing */
    }
    this.closed(1006);
  }

  closed(code) {
    const rule = closeRule(code);
    if (rule.then === "stop") {
      this.finish(this.refused(rule.name));
      return;
    }
    this.busy = rule.name === "too_many";
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.terminal || this.timer) return;
    const { initial, factor, cap } = PROTOCOL.backoff; // seconds, full jitter
    let delay = Math.random() * Math.min(cap, initial * factor ** this.attempt) * 1000;
    // Offline: the "online" event reconnects at once; until then only try now and then.
    if (navigator.onLine === false) delay = Math.max(delay, cap * 1000);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
    this.updateStatus();
  }

  // The page's word for a stop. An invalid link is "This link is not valid" for a page that
  // never got in; for one that was in the session, the session ended or its link was
  // replaced meanwhile ("closed").
  refused(terminal) {
    if (terminal !== "invalid_link") return terminal;
    return this.everWelcomed ? "closed" : "invalid";
  }

  finish(terminal) {
    if (this.terminal) return;
    this.terminal = terminal;
    clearTimeout(this.timer);
    this.dropSocket();
    // Commands still waiting fail with the reason, as one sent from now on would.
    for (const waiter of this.waiters.values()) waiter.reject({ code: terminal, message: "" });
    // Nothing of the session stays in this page's memory.
    this.view = null;
    this.pending.clear();
    this.waiters.clear();
    this.updateStatus();
    this.emit("terminal", { terminal });
  }

  dropSocket() {
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
  }

  // Reconnect now, resuming from the last sequence number this page has.
  resync() {
    this.dropSocket();
    this.attempt = 0;
    this.connect();
  }

  handle(frame) {
    switch (frame.t) {
      case "welcome":
        this.onWelcome(frame);
        break;
      case "ev":
        this.onEvent(frame);
        break;
      case "ack":
        this.settle(frame.id, true, frame);
        break;
      case "error":
        this.onError(frame);
        break;
      case "presence":
        this.presence = frame.presence || this.presence;
        this.emit("presence", { presence: this.presence });
        break;
      case "drag":
        if (this.welcomed) this.emit("drag", { drag: frame });
        break;
      case "ended":
        this.finish("ended");
        break;
      default:
        break;
    }
  }

  onWelcome(frame) {
    if (this.epoch && frame.epoch !== this.epoch) {
      // A different life of the room: never mix it with what this page holds.
      this.finish("lost");
      return;
    }
    this.role = frame.role;
    this.epoch = frame.epoch;
    if (frame.presence) this.presence = frame.presence;
    let reset = false;
    if (frame.view) {
      this.view = frame.view;
      reset = true;
    } else if (this.view && Array.isArray(frame.replay)) {
      try {
        for (const event of frame.replay) {
          if (event.seq <= this.view.seq) continue;
          applyEvent(this.view, event);
          this.emit("event", { event, replay: true });
        }
      } catch (error) {
        if (error instanceof GapError) {
          // Start afresh: forget the view so the server sends a whole one.
          this.view = null;
          this.resync();
          return;
        }
        throw error;
      }
    } else {
      // Neither a view nor a replay we can use: ask again at once, without a resume.
      this.view = null;
      this.resync();
      return;
    }
    this.welcomed = true;
    this.everWelcomed = true;
    this.attempt = 0;
    this.busy = false;
    this.emit("welcome", { reset });
    this.emit("presence", { presence: this.presence });
    for (const command of this.pending.values()) this.ws.send(encode(command));
    this.updateStatus();
  }

  onEvent(event) {
    if (!this.welcomed || !this.view) return;
    if (event.seq <= this.view.seq) return; // already have it
    try {
      applyEvent(this.view, event);
    } catch (error) {
      if (error instanceof GapError) {
        this.resync();
        return;
      }
      throw error;
    }
    this.emit("event", { event, replay: false });
  }

  onError(frame) {
    if (frame.id && this.pending.has(frame.id)) {
      if (frame.code === "busy") {
        this.sendAgainLater(frame.id, frame.retry_after);
        return;
      }
      this.settle(frame.id, false, frame);
      return;
    }
    // A refused hello, or an error that ends the session (room_ended, room_lost), is
    // followed by its close, and the close alone decides what happens next.
    const known = PROTOCOL.errors[frame.code];
    if (!this.welcomed || (known && known.command_close)) return;
    this.emit("servererror", { error: frame });
  }

  // "Busy, try again": the same command, same id, after the pause the server asked for (a
  // reconnect meanwhile resends it with the others after the welcome).
  sendAgainLater(id, retryAfter) {
    const seconds =
      typeof retryAfter === "number" && retryAfter >= 0 && retryAfter <= MAX_RETRY_AFTER
        ? retryAfter
        : PROTOCOL.errors.busy.retry_after;
    const ws = this.ws;
    setTimeout(() => {
      const command = this.pending.get(id);
      if (command && ws === this.ws && this.welcomed && ws.readyState === WebSocket.OPEN) {
        ws.send(encode(command));
      }
    }, seconds * 1000);
  }

  settle(id, ok, frame) {
    const had = this.pending.delete(id);
    const waiter = this.waiters.get(id);
    this.waiters.delete(id);
    if (waiter) {
      if (ok) waiter.resolve(frame);
      else waiter.reject(frame);
    }
    if (had) {
      this.emit(ok ? "ack" : "cmderror", { id, frame });
      this.updateStatus();
    }
  }

  // Send a command; resolves with its ack, rejects with its error frame.
  send(op, args = {}) {
    if (this.terminal) return Promise.reject({ code: this.terminal, message: "" });
    this.counter += 1;
    const id = `${this.clientId}-${this.counter}`;
    const frame = { t: "cmd", id, op, args };
    this.pending.set(id, frame);
    const promise = new Promise((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    if (this.welcomed && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encode(frame));
    }
    this.updateStatus();
    return promise;
  }

  // A live drag: at most one frame per DRAG_INTERVAL_MS per part, the latest position wins.
  drag(part, x, y) {
    let state = this.dragState.get(part);
    if (!state) {
      state = { x, y, timer: null, last: 0 };
      this.dragState.set(part, state);
    }
    state.x = x;
    state.y = y;
    const now = performance.now();
    const wait = DRAG_INTERVAL_MS - (now - state.last);
    if (wait <= 0) {
      this.sendDrag(part, state, now);
    } else if (!state.timer) {
      state.timer = setTimeout(() => {
        state.timer = null;
        this.sendDrag(part, state, performance.now());
      }, wait);
    }
  }

  // Stop sending drags for a part (it was dropped).
  endDrag(part) {
    const state = this.dragState.get(part);
    if (state && state.timer) clearTimeout(state.timer);
    this.dragState.delete(part);
  }

  sendDrag(part, state, now) {
    state.last = now;
    if (!this.welcomed || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(encode({ t: "drag", part, x: state.x, y: state.y }));
  }

  computeStatus() {
    if (this.terminal) return this.terminal;
    if (!this.welcomed) {
      if (this.busy) return "busy";
      return this.everWelcomed || this.attempt > 0 ? "reconnecting" : "connecting";
    }
    return this.pending.size > 0 ? "saving" : "connected";
  }

  updateStatus() {
    const status = this.computeStatus();
    const pending = this.pending.size;
    if (status !== this.status || pending !== this.shownPending) {
      const previous = this.status;
      this.status = status;
      this.shownPending = pending;
      this.emit("status", { status, previous, pending });
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
