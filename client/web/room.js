// The room page, one layout for the therapist and both partners.

import { RoomClient } from "./connection.js";
import { $, clear, drafts, h, reconcile, replaceChildren } from "./dom.js";
import { Board } from "./board.js";
import { CycleView } from "./cycle.js";
import { renderScribe, renderSelf, renderTurns } from "./ifs.js";
import { arrange } from "./layout.js";
import {
  renderAgreements, renderCheckins, renderCouple, renderLinks, renderMyParts, renderNeeds, renderNotes,
  renderPartPanel, renderSettings,
} from "./panels.js";
import { allowed, COLOR } from "./rules.js";

const ROOM = document.body.dataset.room;
// How long the partners have to save their copy before the session closes by itself,
// counted from when this page first saw the ending moment.
const ENDING_SECONDS = 120;
const SECRET_KEY = `partsboard:link:${ROOM}`;

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  saving: "Saving…",
  reconnecting: "Reconnecting…",
  busy: "Too many windows are open with this link. Close one; trying again…",
  ended: "The session has ended",
  lost: "The session was lost",
  invalid: "This link is not valid",
  closed: "This link no longer works",
};

const TERMINAL = {
  ended: ["This session has ended",
    "The board has been closed and deleted from the server. Nothing from it was kept, " +
    "except what someone downloaded to their own device."],
  lost: ["This session was lost",
    "The server lost this session's board, so it cannot go on. Nothing from it was kept. " +
    "Your therapist can start a new session."],
  invalid: ["This link is not valid",
    "This session does not exist or has ended. Nothing from it was kept. If you expected to " +
    "join a session, ask your therapist for a new link."],
  closed: ["This link no longer works",
    "Your therapist may have given you a new link, or the session has ended. This window has " +
    "been closed and nothing from the session was kept in it. If you expected to go on, ask " +
    "your therapist for the new link."],
  nosecret: ["This link is incomplete",
    "The link you opened is missing its key (the part after #). Open the whole link you were " +
    "given, or ask your therapist for a new one."],
};

function readSecret() {
  let secret = null;
  const hash = location.hash.slice(1);
  if (hash) {
    try {
      secret = decodeURIComponent(hash);
    } catch {
      secret = hash;
    }
    try {
      sessionStorage.setItem(SECRET_KEY, secret);
    } catch {
      /* storage may be off: the page still works until reloaded */
    }
    // Keep the secret out of the address bar (screens get shared); reload uses the stored one.
    history.replaceState(null, "", location.pathname + location.search);
  } else {
    try {
      secret = sessionStorage.getItem(SECRET_KEY);
    } catch {
      secret = null;
    }
  }
  return secret;
}

class App {
  constructor(client) {
    this.client = client;
    this.ui = { selected: null, preview: null, editingAgreement: null, editingNote: null };
    this.renderQueued = false;
    this.boardView = new Board(this);
    this.cycleView = new CycleView(this);
    this.wired = false;
    this.toastTimer = null;
    this.lastStatus = "connecting";
    this.careShown = new Set();
    this.overwhelmUp = false;
    this.overwhelmCleared = false;
    this.endingSince = null;
    this.endingTimer = null;
    this.finishing = false;
  }

  get view() { return this.client.view; }
  get role() { return this.client.role; }
  get isPartner() { return this.role === "a" || this.role === "b"; }
  get board() { return this.view ? this.view.colls.room.board : null; }
  get stage() { return this.board.stage; }
  get settings() { return this.view.colls.room.settings; }
  get stages() { return this.settings.stages; }
  get ending() { return Boolean(this.view && this.board.ending); }

  can(op) {
    return Boolean(this.view) && allowed(op, this.role, this.stage, this.board.frozen);
  }

  partnerName(role) {
    if (role === "therapist") return "The therapist";
    const info = this.view && this.view.colls.partners[role];
    return info ? info.name : role === "a" ? "The first partner" : "The second partner";
  }

  partnerColor(role) {
    const info = this.view && this.view.colls.partners[role];
    return info && COLOR.test(info.color) ? info.color : null;
  }

  other(role) { return role === "a" ? "b" : "a"; }

  // Who may see a not-yet-shared item of this partner's, in the viewer's words.
  privacyText(owner) {
    const sees = this.settings.therapist_sees_drafts;
    if (owner === this.role) {
      return sees ? "Only you and your therapist can see this" : "Only you can see this";
    }
    return `Not yet shared: only ${this.partnerName(owner)} and you can see this`;
  }

  send(op, args = {}) {
    const promise = this.client.send(op, args);
    promise.catch((error) => {
      if (error && error.message !== undefined && !this.client.terminal) this.toast(errorText(error));
    });
    return promise;
  }

  selectPart(id) {
    const previous = this.ui.selected;
    this.ui.selected = id;
    this.render();
    if (id) {
      $("part-panel-title").focus({ preventScroll: false });
    } else if (previous) {
      // Back to the card the panel was about (or to the board when the card is gone).
      const card = document.querySelector(`[data-focus="card-${CSS.escape(previous)}"]`);
      (card || $("board-title")).focus();
    }
  }

  scheduleRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  render() {
    if (!this.view || this.client.terminal) return;
    if (this.shownStage !== this.stage) {
      // A new stage is a new task: a part's panel left open from before closes, unless its
      // words are being typed right now.
      const typing = document.activeElement && document.activeElement.matches("#part-panel input[type=text]");
      if (this.shownStage !== undefined && this.ui.selected && !typing) {
        const card = document.querySelector(`[data-focus="card-${CSS.escape(this.ui.selected)}"]`);
        if ($("part-panel").contains(document.activeElement) && card) card.focus({ preventScroll: true });
        this.ui.selected = null;
      }
      this.overwhelmCleared = false;
      this.shownStage = this.stage;
    }
    document.body.dataset.role = this.role;
    document.body.dataset.stage = String(this.stage);
    if (!this.wired) this.wire();
    $("room").hidden = false;
    if (!this.barParts) this.watchBars();
    this.renderPresence();
    this.renderBanners();
    this.renderStages();
    this.renderPartnerActions();
    this.renderEnding();
    this.renderCare();
    this.renderRoomBar();
    this.renderBoardMeta();
    this.boardView.render();
    this.cycleView.render();
    renderPartPanel(this);
    renderMyParts(this);
    renderAgreements(this);
    renderLinks(this);
    renderCheckins(this);
    renderSelf(this);
    renderTurns(this);
    renderScribe(this);
    renderNeeds(this);
    renderCouple(this);
    renderNotes(this);
    renderSettings(this);
    this.renderExport();
    arrange(this);
  }

  // ---------------------------------------------------------------- header

  renderStatus(status) {
    const el = $("conn-status");
    let text = STATUS_TEXT[status] || status;
    const pending = this.client.pending.size;
    if (status === "reconnecting" && pending) {
      text = `Reconnecting… ${pending === 1 ? "1 change" : `${pending} changes`} will be sent when the connection is back`;
    }
    if (el.textContent !== text) el.textContent = text;
    el.dataset.state = status;
    // Too many windows for this link: say so plainly in the page, not only in the status.
    const busy = document.getElementById("busy");
    if (busy && busy.hidden !== (status !== "busy")) {
      busy.hidden = status !== "busy";
      if (!busy.hidden && !this.view) $("busy-title").focus();
    }
    const was = this.lastStatus;
    this.lastStatus = status;
    if (status === "reconnecting" && was !== "reconnecting") this.announce("Connection lost. Reconnecting…");
    if ((status === "connected" || status === "saving") && was === "reconnecting") this.announce("Connected again.");
  }

  renderPresence() {
    const presence = this.client.presence || {};
    const people = ["therapist", "a", "b"].map((role) => ({
      role, here: (presence[role] || 0) > 0,
      name: role === "therapist" ? "Therapist" : this.partnerName(role),
      me: role === this.role,
    }));
    reconcile($("presence"), people, (p) => p.role, (p) => JSON.stringify(p), (p) => {
      const li = h("li", { class: p.here ? "person here" : "person away" },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "person-name", text: p.me ? `${p.name} (you)` : p.name }),
        h("span", { class: "visually-hidden", text: p.here ? ": here" : ": not here" }));
      const color = p.role !== "therapist" ? this.partnerColor(p.role) : null;
      if (color) li.style.setProperty("--owner", color);
      return li;
    });
  }

  renderBanners() {
    const board = this.board;
    const pause = board.pauses.length > 0;
    const banner = $("pause-banner");
    banner.hidden = !pause;
    if (pause) {
      // In the order raised, "You" first.
      const by = board.pauses.map((p) => p.by).sort((x, y) => Number(y === this.role) - Number(x === this.role));
      const who = by.map((partner) => (partner === this.role ? "You" : this.partnerName(partner))).join(" and ");
      const text = `${who} asked for a pause. Take a breath; nothing needs to happen right now. ` +
        (this.role === "therapist" ? "Clear the pause when you are ready to go on." : "Your therapist will help you continue.");
      if ($("pause-text").textContent !== text) $("pause-text").textContent = text;
    }
    $("pause-clear").hidden = !(pause && this.role === "therapist");
    $("pause-clear").textContent = board.pauses.length > 1 ? "Clear both pauses and continue" : "Clear the pause and continue";
    $("frozen-banner").hidden = !board.frozen;
    const spot = board.spotlight ? this.view.colls.parts[board.spotlight] : null;
    const spotBanner = $("spotlight-banner");
    spotBanner.hidden = !spot;
    if (spot) {
      const owner = spot.owner === this.role ? "your part" : `${this.partnerName(spot.owner)}'s part`;
      spotBanner.textContent = `In the spotlight: ${spot.name} (${owner})`;
    }
  }

  renderStages() {
    const stages = this.stages;
    const current = this.stage;
    const therapist = this.role === "therapist";
    const items = stages.map((info, index) => ({ number: index + 1, name: info.name }));
    reconcile($("stages"), items, (s) => String(s.number),
      (s) => JSON.stringify([s, current, therapist, this.ui.preview]),
      (s) => {
        const state = s.number === current ? "current" : s.number < current ? "done" : "todo";
        const label = `${s.number}. ${s.name}`;
        const li = h("li", { class: `stage stage-${state}` });
        if (s.number === current) li.setAttribute("aria-current", "step");
        const suffix = state === "current" ? " (now)" : state === "done" ? " (done)" : "";
        if (therapist) {
          li.append(h("button", { type: "button", class: "stage-button", dataset: { focus: `stage-${s.number}` },
            "aria-pressed": this.ui.preview === s.number ? "true" : "false",
            "aria-label": `Preview stage ${label}${suffix}`,
            onclick: () => this.preview(s.number) }, h("span", { text: label })));
        } else {
          li.append(h("span", { class: "stage-label" }, h("span", { text: `${s.number}.` }),
            h("span", { class: "stage-name", text: ` ${s.name}` })), h("span", { class: "visually-hidden", text: suffix }));
        }
        return li;
      });
    const info = stages[current - 1];
    const title = `Stage ${current} of ${stages.length}: ${info.name}`;
    if ($("stage-title").textContent !== title) $("stage-title").textContent = title;
    if ($("stage-guidance").textContent !== info.guidance) $("stage-guidance").textContent = info.guidance;
    $("stage-controls").hidden = !therapist;
    if (therapist) {
      $("stage-back").disabled = current <= 1;
      $("stage-next").disabled = current >= stages.length;
      $("stage-next").textContent = current < stages.length
        ? `Next stage: ${stages[current].name}` : "This is the last stage";
    }
    const preview = therapist && this.ui.preview && this.ui.preview !== current ? this.ui.preview : null;
    $("preview").hidden = !preview;
    if (preview) {
      const pinfo = stages[preview - 1];
      $("preview-title").textContent = `Preview of stage ${preview}: ${pinfo.name}`;
      $("preview-guidance").textContent = pinfo.guidance;
    }
  }

  preview(number) {
    this.ui.preview = number === this.stage ? null : number;
    this.render();
    if (this.ui.preview) $("preview-title").focus();
  }

  async moveTo(stage) {
    const current = this.stage;
    if (stage === current) return;
    if (stage < current) {
      const info = this.stages[stage - 1];
      const ok = await this.confirm({
        title: `Go back to stage ${stage}, ${info.name}?`,
        text: "Everyone's board moves back. What was made stays visible, but what this stage " +
          "does not offer is locked again.",
        ok: `Go back to stage ${stage}`,
      });
      if (!ok) return;
      this.send("stage.set", { stage, confirm: true }).then(() => this.closePreview(), () => {});
    } else {
      this.send("stage.set", { stage }).then(() => this.closePreview(), () => {});
    }
  }

  closePreview() {
    this.ui.preview = null;
    this.scheduleRender();
  }

  renderPartnerActions() {
    const section = $("partner-actions");
    section.hidden = !this.isPartner;
    if (!this.isPartner) return;
    const pauses = this.board.pauses;
    const mine = pauses.some((p) => p.by === this.role);
    const raise = $("pause-raise");
    raise.textContent = mine ? "Your pause is on" : pauses.length ? "I need a pause too" : "I need a pause";
    raise.setAttribute("aria-disabled", mine ? "true" : "false");
    const ready = Boolean(this.view.colls.ready[this.role]);
    const readyButton = $("ready-toggle");
    readyButton.setAttribute("aria-pressed", ready ? "true" : "false");
    readyButton.textContent = ready ? "I'm ready (tap to take it back)" : "I'm ready for the next step";
    // The quiet signal says only what is true: sent, then seen once the therapist says so;
    // when the therapist clears it, the partner is told rather than the button just resetting.
    const signal = this.view.colls.overwhelm[this.role];
    if (signal) {
      this.overwhelmUp = true;
      this.overwhelmCleared = false;
    } else if (this.overwhelmUp) {
      this.overwhelmUp = false;
      this.overwhelmCleared = true;
      this.announce("Your therapist has cleared your overwhelm signal. You can send it again at any time.");
    }
    const quiet = $("overwhelm-toggle");
    quiet.setAttribute("aria-pressed", signal ? "true" : "false");
    quiet.textContent = !signal ? "I'm getting overwhelmed"
      : signal.seen_at ? "Your therapist has seen this" : "Sent to your therapist";
    const help = !signal && this.overwhelmCleared
      ? "Your therapist saw it and cleared it. Send it again any time; only your therapist sees it."
      : "Only your therapist sees this.";
    if ($("overwhelm-help").textContent !== help) $("overwhelm-help").textContent = help;
  }

  // ---------------------------------------------------------------- the ending moment

  // The partners get a moment to save their own copy; the therapist ends the session after it
  // (or it ends by itself after ENDING_SECONDS).
  renderEnding() {
    const ending = this.board.ending;
    const therapist = this.role === "therapist";
    $("ending-panel").hidden = !ending;
    $("ending-bar").hidden = !ending;
    if (!ending) {
      if (this.endingSince !== null) {
        this.endingSince = null;
        clearInterval(this.endingTimer);
        $("ending-time").textContent = "";
        this.announce("The session goes on.");
      }
      return;
    }
    if (this.endingSince === null) {
      this.endingSince = Date.now();
      this.endingTimer = setInterval(() => this.tickEnding(), 1000);
      this.announce(therapist ? "The session is ending. The couple is asked to save their copy."
        : "The session is ending. Save your copy now if you want one.");
    }
    const names = `${this.partnerName("a")} and ${this.partnerName("b")}`;
    const texts = therapist ? {
      title: "Ending the session",
      text: `${names} are asked to save their own copy now. Save yours too if you want to continue next time.`,
      bar: `Ending: ${names} are saving their copies.`,
      go: "End the session now",
    } : {
      title: "The session is ending: save your copy",
      text: "Download your own copy to keep what you made today: your own view of the board, your unshared " +
        "parts included. It is saved only on this device. After the session closes, what you agreed to " +
        "take home stays on this page until you close the tab.",
      bar: "The session is ending: save your copy.",
      go: "Save my copy",
    };
    for (const [id, key] of [["ending-title", "title"], ["ending-text", "text"], ["ending-bar-text", "bar"], ["ending-bar-go", "go"]]) {
      if ($(id).textContent !== texts[key]) $(id).textContent = texts[key];
    }
    $("ending-bar-go").className = therapist ? "danger-strong" : "primary";
    $("ending-downloads").hidden = therapist;
    $("ending-controls").hidden = !therapist;
    this.tickEnding();
  }

  tickEnding() {
    if (this.endingSince === null || this.client.terminal) return;
    const left = Math.max(0, ENDING_SECONDS - Math.floor((Date.now() - this.endingSince) / 1000));
    const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    let text;
    if (this.role === "therapist") {
      text = `It closes by itself in ${clock}, unless you end it now or keep the session going.`;
    } else {
      text = left ? `The session closes in ${clock}, or sooner when your therapist closes it.`
        : "The session closes any moment now.";
    }
    $("ending-time").textContent = text;
    if (!left && this.role === "therapist") this.finishSession();
  }

  // The therapist's care signals, as badges in the room bar (in reach at every scroll
  // position), each announced once when it appears.
  renderCare() {
    const signals = this.role === "therapist" ? this.careSignals() : [];
    $("care").hidden = signals.length === 0;
    reconcile($("care-badges"), signals, (s) => s.key, (s) => JSON.stringify(s), (s) =>
      h("li", { class: `badge badge-${s.kind}` }, h("button", {
        type: "button", class: "badge-button", dataset: { focus: `badge-${s.key}` },
        "aria-label": `${s.text}. Go to the couple's panel`,
        onclick: () => this.goToCouple(s.focus),
      }, h("span", { class: "badge-dot", "aria-hidden": "true" }), s.short)));
    const shown = new Set(signals.map((s) => s.key));
    for (const s of signals) {
      if (!this.careShown.has(s.key) && s.kind !== "ready") this.announce(s.text, "care-live");
    }
    this.careShown = shown;
  }

  careSignals() {
    const signals = [];
    const colls = this.view.colls;
    for (const partner of ["a", "b"]) {
      const name = this.partnerName(partner);
      if (this.board.pauses.some((pause) => pause.by === partner)) {
        signals.push({ key: `pause-${partner}`, kind: "pause", short: `${name}: pause`,
          text: `${name} asked for a pause`, focus: "pause-clear" });
      }
      const signal = colls.overwhelm[partner];
      if (signal) {
        signals.push({ key: `overwhelm-${partner}`, kind: signal.seen_at ? "seen" : "overwhelm",
          short: signal.seen_at ? `${name}: overwhelmed (seen)` : `${name}: overwhelmed`,
          text: `${name} is getting overwhelmed`, focus: `seen-${partner}` });
      }
      if (colls.ready[partner]) {
        signals.push({ key: `ready-${partner}`, kind: "ready", short: `${name}: ready`,
          text: `${name} is ready for the next step`, focus: null });
      }
    }
    return signals;
  }

  goToCouple(focusKey) {
    const target = (focusKey && (document.getElementById(focusKey) ||
      document.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`))) || $("couple-title");
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
  }

  // The bar with the pause in it shows for partners always, for everyone during a pause, and
  // for the therapist while a care signal is up.
  renderRoomBar() {
    const bar = $("room-bar");
    const show = this.isPartner || this.board.pauses.length > 0 || !$("care").hidden || this.ending;
    if (bar.hidden === show) {
      bar.hidden = !show;
      this.measureBars();
    }
  }

  // The heights of the sticky header and of the phone's bottom bar, for the page's padding and
  // its scroll padding (so that nothing focused or scrolled to ends up under them).
  watchBars() {
    const header = document.querySelector(".site-header");
    const bar = $("room-bar");
    const measure = () => this.measureBars();
    window.addEventListener("resize", measure);
    if (typeof ResizeObserver === "function") {
      const observer = new ResizeObserver(measure);
      observer.observe(header);
      observer.observe(bar);
    }
    this.barParts = { header, bar };
    measure();
  }

  measureBars() {
    if (!this.barParts) return;
    const { header, bar } = this.barParts;
    const root = document.documentElement;
    const sticky = getComputedStyle(header).position === "sticky";
    const fixed = bar.isConnected && getComputedStyle(bar).position === "fixed";
    const headerH = sticky ? `${Math.ceil(header.getBoundingClientRect().height)}px` : "0px";
    const barH = fixed && !bar.hidden ? `${Math.ceil(bar.getBoundingClientRect().height)}px` : "0px";
    if (root.style.getPropertyValue("--header-h") !== headerH) root.style.setProperty("--header-h", headerH);
    if (root.style.getPropertyValue("--bar-h") !== barH) root.style.setProperty("--bar-h", barH);
  }

  renderBoardMeta() {
    for (const partner of ["a", "b"]) {
      const name = this.partnerName(partner);
      const count = this.view.counts[partner] ? this.view.counts[partner].parts : 0;
      const hiddenCount = Object.values(this.view.colls.parts)
        .filter((p) => p.owner === partner && !p.shared).length;
      // Counts of parts this viewer cannot see: numbers only, never content.
      const unseen = Math.max(0, count - hiddenCount);
      const side = partner === this.role ? `Your side (${name})` : `${name}'s side`;
      const counted = unseen ? `${name} has ${unseen} ${unseen === 1 ? "part" : "parts"} not yet shared` : "";
      const label = $(`zone-${partner}-label`);
      const sideEl = label.querySelector(".zone-name");
      const countEl = label.querySelector(".zone-count");
      if (sideEl.textContent !== side) sideEl.textContent = side;
      if (countEl.textContent !== counted) countEl.textContent = counted;
      const color = this.partnerColor(partner);
      if (color) $("board").style.setProperty(`--partner-${partner}`, color);
    }
    $("add-part-panel").hidden = !this.can("part.add");
    $("tidy").hidden = !this.can("part.tidy")
      || !Object.values(this.view.colls.parts).some((p) => p.owner === this.role);
    $("add-part-privacy").textContent = this.isPartner ? `${this.privacyText(this.role)} until you share it.` : "";
    let help;
    if (this.isPartner) {
      help = this.stage < 2
        ? "Parts can be added from stage 2, Identifying Parts."
        : this.board.frozen
          ? "Your therapist has locked the board for a moment."
          : `Your side is on the ${this.role === "a" ? "left" : "right"}. Drag your parts, or choose one and use the arrow keys.`;
    } else {
      help = "Choose a shared part to put it in the spotlight.";
    }
    if ($("board-help").textContent !== help) $("board-help").textContent = help;
  }

  renderExport() {
    $("export-help").textContent = this.role === "therapist"
      ? "Your download holds the shared board, the agreements, the stage history and your private notes. It is saved only on this device."
      : "Your download holds your own view of the board, your unshared parts included. It is saved only on this device.";
    $("end-controls").hidden = this.role !== "therapist" || this.ending;
    // While the session ends, a partner's downloads are in the ending panel, first on the page.
    $("export-panel").hidden = this.isPartner && this.ending;
  }

  // ---------------------------------------------------------------- actions

  wire() {
    this.wired = true;
    this.wireStages();
    this.wireCare();
    this.wireBoard();
    this.wireWriting();
    this.wireSessionTools();
  }

  wireStages() {
    $("stage-next").addEventListener("click", () => this.moveTo(this.stage + 1));
    $("stage-back").addEventListener("click", () => this.moveTo(this.stage - 1));
    $("preview-go").addEventListener("click", () => this.ui.preview && this.moveTo(this.ui.preview));
    $("preview-close").addEventListener("click", () => {
      const number = this.ui.preview;
      this.closePreview();
      queueMicrotask(() => {
        const button = document.querySelector(`[data-focus="stage-${number}"]`);
        if (button) button.focus();
      });
    });
  }

  // The couple's care signals, and the therapist's answers to them.
  wireCare() {
    $("pause-raise").addEventListener("click", () => {
      if (!this.board.pauses.some((p) => p.by === this.role)) this.send("pause.raise");
    });
    $("pause-clear").addEventListener("click", () => this.send("pause.clear"));
    $("ready-toggle").addEventListener("click", () =>
      this.send("ready.set", { ready: !this.view.colls.ready[this.role] }));
    $("overwhelm-toggle").addEventListener("click", () => {
      if (!this.view.colls.overwhelm[this.role]) this.send("overwhelm.raise");
    });
  }

  // The board: parts, the part panel, the therapist's board controls.
  wireBoard() {
    // Esc closes the part's panel, from the panel or from the card it is about.
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.defaultPrevented || !this.ui.selected) return;
      const at = document.activeElement;
      const card = at && at.closest ? at.closest("li.part") : null;
      if ($("part-panel").contains(at) || (card && card.dataset.part === this.ui.selected)) {
        event.preventDefault();
        this.selectPart(null);
      }
    });
    $("freeze-toggle").addEventListener("click", () => this.send("freeze.set", { frozen: !this.board.frozen }));
    $("spotlight-clear").addEventListener("click", () => this.send("spotlight.set", { part: null }));
    $("reveal-all").addEventListener("click", () => this.send("part.reveal_all", { confirm: true }));
    $("tidy").addEventListener("click", () => this.send("part.tidy"));
    $("add-part").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("part-name");
      const name = input.value.trim();
      if (!name) {
        this.toast("Give the part a name first.");
        input.focus();
        return;
      }
      // The server puts it on the free place of this partner's side nearest the middle.
      this.send("part.add", { name, kind: $("part-kind").value, x: 0.5, y: 0 }).then(() => {
        drafts.delete("new-part-name");
      }, () => {});
      input.value = "";
      $("part-kind").value = "unsure";
      input.focus();
    });
  }

  // The therapist's agreements and private notes.
  wireWriting() {
    $("agreement-add").addEventListener("submit", (event) => {
      event.preventDefault();
      const area = $("agreement-text");
      if (!area.value.trim()) return;
      this.send("agreement.add", { text: area.value }).then(() => drafts.delete("new-agreement"), () => {});
      area.value = "";
    });
    $("note-add").addEventListener("submit", (event) => {
      event.preventDefault();
      const area = $("note-text");
      if (!area.value.trim()) return;
      this.send("note.add", { text: area.value }).then(() => drafts.delete("new-note"), () => {});
      area.value = "";
    });
  }

  // Downloads, ending the session, replacing a partner's link.
  wireSessionTools() {
    for (const button of document.querySelectorAll("button.export")) {
      button.addEventListener("click", () =>
        this.exportAs(button.dataset.format, button.closest("section").querySelector("[role=status]")));
    }
    $("end-session").addEventListener("click", () => this.endSession());
    $("ending-now").addEventListener("click", () => this.finishSession());
    $("ending-cancel").addEventListener("click", () => this.send("ending.cancel"));
    $("ending-bar-go").addEventListener("click", () => {
      if (this.role === "therapist") {
        this.finishSession();
      } else {
        const first = document.querySelector("#ending-downloads button");
        first.scrollIntoView({ block: "center" });
        first.focus({ preventScroll: true });
      }
    });
    $("kept-print").addEventListener("click", () => window.print());
    for (const button of [$("relink-a"), $("relink-b")]) {
      button.addEventListener("click", () => this.relink(button.dataset.partner));
    }
    $("relink-copy").addEventListener("click", async () => {
      const input = $("relink-url");
      try {
        await navigator.clipboard.writeText(input.value);
        this.announce("Copied.");
      } catch {
        input.select();
      }
    });
  }

  async api(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.client.secret}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  }

  async exportAs(format, status = $("export-status")) {
    status.textContent = "Preparing your download…";
    let response;
    try {
      response = await this.api(`/api/rooms/${encodeURIComponent(ROOM)}/export?format=${encodeURIComponent(format)}`);
    } catch {
      status.textContent = "The download could not be made: the server could not be reached.";
      return false;
    }
    if (!response.ok) {
      status.textContent = "The download could not be made. Please try again.";
      return false;
    }
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    const extension = { json: "json", md: "md", html: "html" }[format] || "txt";
    const name = match ? decodeURIComponent(match[1]) : `partsboard-session.${extension}`;
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: name, class: "visually-hidden" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
    status.textContent = `Downloaded ${name} to this device.`;
    return true;
  }

  async endSession() {
    const extra = h("div", { class: "actions" }, h("p", { class: "help", text: "Want a copy first?" }),
      ["json", "md", "html"].map((format) => h("button", { type: "button", class: "small",
        text: { json: "Download (JSON)", md: "Download (Markdown)", html: "Download (printable page)" }[format],
        onclick: () => this.exportAs(format) })));
    const minutes = ENDING_SECONDS / 60;
    const ok = await this.confirm({
      title: "End the session for everyone?",
      text: `${this.partnerName("a")} and ${this.partnerName("b")} first get ${minutes} minutes to save their own ` +
        "copy. Then the board closes for everyone and is deleted from the server; it cannot be opened again. " +
        "While they save, you can end it sooner or keep the session going.",
      ok: "End the session",
      extra,
      danger: true,
    });
    if (ok) this.send("ending.start");
  }

  // The confirmed end: every page is told, and the room is deleted from the server.
  async finishSession() {
    if (this.finishing) return;
    this.finishing = true;
    let response;
    try {
      response = await this.api(`/api/rooms/${encodeURIComponent(ROOM)}/end`, { confirm: true });
    } catch {
      response = null;
    }
    this.finishing = false;
    if (!response) {
      this.toast("The session could not be ended: the server could not be reached.");
      return;
    }
    if (!response.ok && response.status !== 404) {
      this.toast("The session could not be ended. Please try again.");
      return;
    }
    this.client.finish("ended");
  }

  async relink(partner) {
    const name = this.partnerName(partner);
    const ok = await this.confirm({
      title: `Make a new link for ${name}?`,
      text: `${name}'s current link stops working at once, and any window open with it closes.`,
      ok: "Make a new link",
      danger: true,
    });
    if (!ok) return;
    let response;
    try {
      response = await this.api(`/api/rooms/${encodeURIComponent(ROOM)}/links/${partner}`);
    } catch {
      this.toast("The server could not be reached.");
      return;
    }
    const data = response.ok ? await response.json().catch(() => null) : null;
    if (!data || !data.link) {
      this.toast("A new link could not be made. Please try again.");
      return;
    }
    $("relink-result").hidden = false;
    $("relink-label").textContent = `New link for ${name}`;
    $("relink-help").textContent = `Send it to ${name} the way you sent the first one. The old link no longer works.`;
    $("relink-url").value = data.link;
    $("relink-url").focus();
    $("relink-url").select();
  }

  // ---------------------------------------------------------------- dialogs and messages

  confirm({ title, text, ok, extra = null, danger = false }) {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = ok;
    $("confirm-ok").className = danger ? "danger-strong" : "primary";
    dialog.classList.toggle("confirm-danger", danger);
    replaceChildren($("confirm-extra"), extra ? [extra] : []);
    const opener = document.activeElement;
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        // What the dialog quoted (an agreement's words, a part's name) leaves the page with it.
        for (const id of ["confirm-title", "confirm-text", "confirm-ok"]) $(id).textContent = "";
        replaceChildren($("confirm-extra"), []);
        resolve(dialog.returnValue === "ok");
        if (opener && opener.isConnected) opener.focus();
      };
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  toast(message) {
    const box = $("toast");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { box.hidden = true; }, 7000);
  }

  announce(message, region = "live") {
    const live = $(region);
    live.append(h("p", { text: message }));
    while (live.childElementCount > 5) live.firstElementChild.remove();
  }

  announceEvent(event) {
    if (event.hidden || event.actor === this.role) return;
    // The therapist hears pauses and overwhelm from the care signals' own live region.
    if (this.role === "therapist" && (event.op === "pause.raise" || event.op === "overwhelm.raise")) return;
    const who = this.partnerName(event.actor);
    const stage = this.stage;
    const messages = {
      "stage.set": `Now at stage ${stage}: ${this.stages[stage - 1].name}.`,
      "agreement.add": "The therapist added an agreement.",
      "agreement.edit": "The therapist changed the wording of an agreement.",
      "agreement.remove": "The therapist removed an agreement.",
      "agreement.ack": `${who} agreed to an agreement.`,
      "spotlight.set": this.board.spotlight ? "The therapist put a part in the spotlight." : "The spotlight was cleared.",
      "freeze.set": this.board.frozen ? "The therapist locked the board for a moment." : "The board can be changed again.",
      "pause.raise": `${who} asked for a pause.`,
      "pause.clear": "The pause is over.",
      "overwhelm.raise": `${who} is getting overwhelmed.`,
      "overwhelm.ack": "Your therapist has seen that you are getting overwhelmed.",
      "ready.set": this.view.colls.ready[event.actor] ? `${who} is ready for the next step.` : `${who} is not ready yet.`,
      "part.add": `${who} added a part.`,
      "part.edit": `${who} changed a part.`,
      "part.move": `${who} moved a part.`,
      "part.remove": `${who} removed a part.`,
      "part.reveal": `${who} shared a part.`,
      "part.reveal_all": `${who} shared their parts.`,
      "part.withdraw": `${who} took a part back.`,
      "part.tidy": `${who} tidied their side of the board.`,
      "part.blend": `${who} noted how blended they are with a part.`,
      "link.add": `${who} drew an arrow between parts.`,
      "link.remove": `${who} removed an arrow.`,
      "checkin.set": `${who} updated their check-in.`,
      "checkin.reveal": `${who} shared their check-in.`,
      "checkin.withdraw": `${who} took their check-in back.`,
      "need.set": `${who} wrote what a part needs.`,
      "need.remove": `${who} removed a need.`,
      "request.make": `${who} made a request.`,
      "request.answer": `${who} answered a request.`,
      "partner.update": "The therapist changed a partner's name or colour.",
    };
    const message = messages[event.op];
    if (message) this.announce(message);
  }

  showTerminal(kind) {
    const [title, text] = TERMINAL[kind] || TERMINAL.invalid;
    clearInterval(this.endingTimer);
    // A partner whose session ended keeps what they agreed to take home, as this page shows it.
    const kept = kind === "ended" && this.isPartner ? Array.from($("home-list").children) : [];
    if (kept.length) {
      for (const item of kept) {
        delete item.dataset.sig; // the signature holds the whole need, not only what is shown
        delete item.dataset.item;
      }
      $("kept-list").append(...kept);
      $("kept").hidden = false;
    }
    // Nothing else of the session stays on the page.
    this.boardView.reset();
    for (const id of ["stages", "presence", "agreements-list", "my-parts-list", "links-list",
      "needs-list", "requests-list", "home-list", "therapist-status", "notes-list", "part-panel-body",
      "checkins-view", "care-badges", "live", "care-live"]) {
      clear($(id));
    }
    for (const id of ["part-name", "agreement-text", "note-text", "checkin-note", "relink-url"]) {
      $(id).value = "";
    }
    drafts.clear();
    $("room").remove();
    $("room-bar").remove();
    $("busy").remove();
    document.documentElement.style.setProperty("--bar-h", "0px");
    if ($("confirm-dialog").open) $("confirm-dialog").close();
    try {
      sessionStorage.removeItem(SECRET_KEY);
    } catch {
      /* ignore */
    }
    $("terminal-title").textContent = title;
    $("terminal-text").textContent = text;
    $("terminal").hidden = false;
    $("terminal-title").focus();
    const status = $("conn-status");
    status.textContent = STATUS_TEXT[kind] || STATUS_TEXT.invalid;
    status.dataset.state = kind;
  }
}

function errorText(error) {
  const known = {
    frozen: "Your therapist has locked the board for a moment.",
    stage_locked: "That is not available at this stage.",
    rate_limited: "That was a lot at once. Please wait a moment.",
    limit: error.message,
    not_found: "That item is no longer there.",
  };
  return known[error.code] || error.message || "That did not work. Please try again.";
}

function main() {
  const secret = readSecret();
  if (!secret) {
    const app = new App(new RoomClient({ room: ROOM, secret: "" }));
    app.showTerminal("nosecret");
    return;
  }
  const client = new RoomClient({ room: ROOM, secret });
  const app = new App(client);
  client.addEventListener("status", (e) => app.renderStatus(e.detail.status));
  client.addEventListener("welcome", (e) => {
    if (e.detail.reset) app.boardView.local.clear();
    app.render();
  });
  client.addEventListener("event", (e) => {
    app.boardView.onEvent(e.detail.event);
    app.cycleView.onEvent();
    app.scheduleRender();
    if (!e.detail.replay) queueMicrotask(() => app.announceEvent(e.detail.event));
  });
  client.addEventListener("presence", () => { if (app.view) app.renderPresence(); });
  client.addEventListener("drag", (e) => app.boardView.remoteDrag(e.detail.drag));
  client.addEventListener("terminal", (e) => app.showTerminal(e.detail.terminal));
  client.addEventListener("servererror", (e) => app.toast(errorText(e.detail.error)));
  client.start();
  window.partsboard = { status: () => client.status, pending: () => client.pending.size };
}

main();
