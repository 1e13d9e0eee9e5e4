// The side panels of the room page: the selected part, one's own parts,
// agreements, links, the Self check-in, needs and requests, the therapist's
// tools and export. Each render is keyed, so typing and focus survive updates.

import { $, drafts, field, forgetDrafts, h, reconcile, replaceChildren, timeOf, uid } from "./dom.js";
import { kindIcon } from "./board.js";
import {
  answerHistory, linkLabelForm, partItems, partSig, scribeMark, shareButtons, sharePart, visibilityText,
} from "./ifs.js";
import { ANSWER_LABELS, COLOR, KIND_LABELS, KINDS, LINK_KIND_LABELS, SELF_QUALITIES, SELF_QUALITY_LABELS } from "./rules.js";

const byName = (p, q) => p.name.localeCompare(q.name) || (p.id < q.id ? -1 : 1);
// In the order they were made: the core gives each its `order` (the seq that made it).
const inOrder = (p, q) => (p.order ?? 0) - (q.order ?? 0) || (p.id < q.id ? -1 : 1);

// An item's text edited in place; `editing` names the app.ui field that says which item is open.
function inlineEditForm(app, { key, label, text, rows, op, id, editing, help }) {
  const close = () => { app.ui[editing] = null; drafts.delete(key); app.scheduleRender(); };
  const area = h("textarea", { rows, maxlength: 2000, dataset: { key } });
  area.value = text;
  const form = h("form", { class: "form inline-form" }, field(label, area),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary small", text: "Save" }),
      h("button", { type: "button", class: "small", text: "Cancel", onclick: close })),
    help ? h("p", { class: "help", text: help }) : null);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    app.send(op, { id, text: area.value }).then(close, () => {});
  });
  return form;
}

function kindSelect(value, key) {
  return h("select", { dataset: { focus: key } },
    KINDS.map((kind) => h("option", { value: kind, selected: kind === value, text: KIND_LABELS[kind] })));
}

function partLabel(app, part) {
  if (!part) return "a part";
  return part.owner === app.role ? part.name : `${part.name} (${app.partnerName(part.owner)})`;
}

// ---------------------------------------------------------------- the selected part

export function renderPartPanel(app) {
  const panel = $("part-panel");
  const body = $("part-panel-body");
  const part = app.ui.selected ? app.view.colls.parts[app.ui.selected] : null;
  if (!part) {
    if (app.ui.selected) app.ui.selected = null;
    panel.hidden = true;
    panel.dataset.sig = "";
    return;
  }
  const mine = part.owner === app.role;
  const parts = Object.values(app.view.colls.parts);
  // Links are drawn from one's own part, or by the therapist from a part they wrote as scribe.
  const linkOp = mine ? "link.add" : part.by_therapist ? "scribe.link_add" : null;
  const drawing = linkOp !== null && app.can(linkOp);
  const sig = JSON.stringify([part, app.role, app.stage, app.board.frozen, app.board.spotlight,
    drawing ? parts.map((p) => [p.id, p.name, p.owner, p.shared]) : null, app.view.colls.partners, partSig(app, part)]);
  panel.hidden = false;
  if (panel.dataset.sig === sig) return;
  panel.dataset.sig = sig;
  $("part-panel-title").textContent = part.name;
  const items = [];
  const owner = mine ? "Your part" : `${app.partnerName(part.owner)}'s part`;
  items.push(h("p", { class: "part-summary" }, kindIcon(part.kind),
    ` ${KIND_LABELS[part.kind]} · ${owner} · `,
    visibilityText(app, part)));
  if (part.blend !== null && part.blend !== undefined) {
    items.push(h("p", { text: `Blended ${part.blend} of 10.` }));
  }

  if (mine) {
    if (app.can("part.edit")) {
      const name = h("input", { type: "text", maxlength: 80, value: part.name, autocomplete: "off",
        dataset: { key: `rename-${part.id}` } });
      const kind = kindSelect(part.kind, `kind-${part.id}`);
      const form = h("form", { class: "form inline-form" },
        field("Name", name), field("Kind", kind),
        h("button", { type: "submit", text: "Save changes", dataset: { focus: "part-save" } }));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const args = { id: part.id };
        if (name.value.trim() && name.value.trim() !== part.name) args.name = name.value.trim();
        if (kind.value !== part.kind) args.kind = kind.value;
        if (Object.keys(args).length === 1) return;
        app.send("part.edit", args).then(() => drafts.delete(`rename-${part.id}`), () => {});
      });
      items.push(form);
    }
    const row = h("div", { class: "actions" }, shareButtons(app, part));
    if (app.can("part.remove")) {
      row.append(h("button", { type: "button", class: "danger", text: "Remove this part",
        dataset: { focus: "panel-remove" },
        onclick: async () => {
          const ok = await app.confirm({ title: "Remove this part?",
            text: "The card and its connections will be taken off the board.", ok: "Remove it", danger: true });
          if (ok) app.send("part.remove", { id: part.id });
        } }));
    }
    if (row.childElementCount) items.push(row);

    if (app.can("part.blend")) {
      const value = part.blend ?? 5;
      const output = h("output", { text: String(value) });
      const slider = h("input", { type: "range", min: 0, max: 10, step: 1, value,
        dataset: { focus: "blend" }, "aria-valuetext": `${value} of 10` });
      slider.addEventListener("input", () => {
        output.textContent = slider.value;
        slider.setAttribute("aria-valuetext", `${slider.value} of 10`);
      });
      slider.addEventListener("change", () => app.send("part.blend", { id: part.id, level: Number(slider.value) }));
      output.htmlFor = slider.id = uid("blend");
      items.push(h("div", { class: "field blend-field" },
        h("label", { for: slider.id, text: "How blended are you with this part right now?" }),
        h("div", { class: "slider-row" }, h("span", { class: "help", text: "0 separate" }), slider,
          h("span", { class: "help", text: "10 fully blended" }), output)));
    }
  } else if (app.role === "therapist" && part.shared) {
    const spotlit = app.board.spotlight === part.id;
    items.push(h("div", { class: "actions" }, h("button", { type: "button", dataset: { focus: "panel-spot" },
      text: spotlit ? "Take it out of the spotlight" : "Put it in the spotlight",
      onclick: () => app.send("spotlight.set", { part: spotlit ? null : part.id }) })));
  }
  if (drawing) items.push(...linkForms(app, part, linkOp));
  items.push(...partItems(app, part));
  items.push(h("div", { class: "actions" }, h("button", { type: "button", text: "Close",
    dataset: { focus: "panel-close" }, onclick: () => app.selectPart(null) })));
  replaceChildren(body, items);
}

function linkForms(app, part, op) {
  const parts = Object.values(app.view.colls.parts);
  const own = parts.filter((p) => p.owner === part.owner && p.id !== part.id).sort(byName);
  const theirs = parts.filter((p) => p.owner !== part.owner && p.shared).sort(byName);
  const whose = op === "link.add" ? "your" : `${app.partnerName(part.owner)}'s`;
  const forms = [];
  if (op === "scribe.link_add") {
    forms.push(h("p", { class: "help", text: `What you draw from it is ${whose} too, marked as written by you, until ` +
      `${app.partnerName(part.owner)} keeps the part.` }));
  }
  forms.push(linkForm(app, op, part, "protects", "This part protects…", own, `Add another of ${whose} parts first.`));
  forms.push(linkForm(app, op, part, "reacts_to", "This part reacts to…", [...theirs, ...own], "Add another part first."));
  forms.push(linkForm(app, op, part, "polarized_with", "This part is polarized with…", own,
    `Add another of ${whose} parts first.`));
  forms.push(linkForm(app, op, part, "allied_with", "This part is allied with…", own,
    `Add another of ${whose} parts first.`));
  return forms;
}

function linkForm(app, op, part, kind, label, targets, emptyText) {
  if (!targets.length) {
    return h("div", { class: "field" }, h("p", { class: "label", text: label }),
      h("p", { class: "help", text: emptyText }));
  }
  const key = `link-${kind}-${part.id}`;
  const select = h("select", { dataset: { focus: `link-${kind}`, key } },
    targets.map((p) => h("option", { value: p.id, text: partLabel(app, p) })));
  const form = h("form", { class: "form inline-form link-form" }, field(label, select),
    h("button", { type: "submit", text: "Draw the arrow", dataset: { focus: `link-${kind}-go` } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    app.send(op, { kind, source: part.id, target: select.value }).then(() => forgetDrafts([key]), () => {});
  });
  return form;
}

// ---------------------------------------------------------------- one's own parts

export function renderMyParts(app) {
  const section = $("my-parts");
  const partner = app.isPartner;
  section.hidden = !partner || app.stage < 2;
  if (section.hidden) return;
  const mine = Object.values(app.view.colls.parts).filter((p) => p.owner === app.role).sort(byName);
  $("my-parts-empty").hidden = mine.length > 0;
  const canReveal = app.can("part.reveal");
  const canWithdraw = app.can("part.withdraw");
  reconcile($("my-parts-list"), mine, (p) => p.id,
    (p) => JSON.stringify([p.name, p.kind, p.shared, p.blend, canReveal, canWithdraw, app.settings.therapist_sees_drafts]),
    (p) => {
      const blend = p.blend !== null && p.blend !== undefined ? ` · blended ${p.blend} of 10` : "";
      const li = h("li", { class: "item my-part" },
        h("div", { class: "my-part-text" },
          h("button", { type: "button", class: "link-button", dataset: { focus: `open-${p.id}` },
            onclick: () => app.selectPart(p.id) }, kindIcon(p.kind), ` ${p.name}`),
          h("span", { class: "help", text: ` ${KIND_LABELS[p.kind]} · ${p.shared ? "shared" : app.privacyText(p.owner)}${blend}` })));
      if (!p.shared && canReveal) {
        li.append(h("button", { type: "button", class: "small", text: "Share", "aria-label": `Share ${p.name}`,
          dataset: { focus: `list-share-${p.id}` }, onclick: () => sharePart(app, p) }));
      } else if (p.shared && canWithdraw) {
        li.append(h("button", { type: "button", class: "small", text: "Take back", "aria-label": `Take back ${p.name}`,
          dataset: { focus: `list-share-${p.id}` }, onclick: () => app.send("part.withdraw", { id: p.id }) }));
      }
      return li;
    });
  const unshared = mine.filter((p) => !p.shared).length;
  $("reveal-all").hidden = !(canReveal && unshared > 1);
}

// ---------------------------------------------------------------- agreements

export function renderAgreements(app) {
  const list = Object.values(app.view.colls.agreements).sort(inOrder);
  $("agreements-empty").hidden = list.length > 0;
  $("agreement-add").hidden = !app.can("agreement.add");
  const editing = app.ui.editingAgreement;
  reconcile($("agreements-list"), list, (a) => a.id,
    (a) => JSON.stringify([a, app.role, editing === a.id, app.view.colls.partners]),
    (a) => {
      const textId = uid("agreement");
      const li = h("li", { class: "item agreement" }, h("p", { class: "agreement-text", id: textId, text: a.text }));
      const acks = h("ul", { class: "acks", "aria-label": "Who has agreed" });
      for (const partner of ["a", "b"]) {
        const done = a.acks.includes(partner);
        acks.append(h("li", { class: done ? "ack done" : "ack" },
          h("span", { "aria-hidden": "true", text: done ? "✓ " : "… " }),
          `${app.partnerName(partner)}: ${done ? "agreed" : "not yet"}`));
      }
      li.append(acks);
      if (app.isPartner && !a.acks.includes(app.role) && app.can("agreement.ack")) {
        li.append(h("button", { type: "button", class: "primary small", text: "I agree",
          "aria-describedby": textId, dataset: { focus: `ack-${a.id}` },
          onclick: () => {
            app.ui.afterAck = a.id;
            app.send("agreement.ack", { id: a.id }).catch(() => { app.ui.afterAck = null; });
          } }));
      }
      if (app.role === "therapist") {
        if (editing === a.id) {
          li.append(inlineEditForm(app, {
            key: `agreement-edit-${a.id}`, label: "Change the wording", text: a.text, rows: 2,
            op: "agreement.edit", id: a.id, editing: "editingAgreement",
            help: "Changing the wording asks both partners to agree again." }));
        } else {
          li.append(h("div", { class: "actions" },
            h("button", { type: "button", class: "small", text: "Edit", "aria-describedby": textId,
              dataset: { focus: `edit-${a.id}` },
              onclick: () => { app.ui.editingAgreement = a.id; app.scheduleRender(); } }),
            h("button", { type: "button", class: "small danger", text: "Remove", "aria-describedby": textId,
              dataset: { focus: `remove-${a.id}` },
              onclick: async () => {
                if (await app.confirm({ title: "Remove this agreement?", text: a.text, ok: "Remove it", danger: true })) {
                  app.send("agreement.remove", { id: a.id });
                }
              } })));
        }
      }
      return li;
    });
  focusAfterAck(app, list);
}

// Once "I agree" has gone from an agreement, the focus moves on to the next agreement still
// waiting for this partner, or to the agreements' heading.
function focusAfterAck(app, list) {
  const id = app.ui.afterAck;
  if (!id) return;
  const acked = app.view.colls.agreements[id];
  if (acked && !acked.acks.includes(app.role)) return;
  app.ui.afterAck = null;
  const active = document.activeElement;
  if (active && active !== document.body && !$("agreements").contains(active)) return;
  const at = list.findIndex((a) => a.id === id);
  const next = [...list.slice(at + 1), ...list.slice(0, Math.max(at, 0))].find((a) => !a.acks.includes(app.role));
  const button = next ? document.querySelector(`[data-focus="ack-${CSS.escape(next.id)}"]`) : null;
  (button || $("agreements-title")).focus();
}

// ---------------------------------------------------------------- links

export function renderLinks(app) {
  const links = Object.values(app.view.colls.links).sort(inOrder);
  const section = $("links-panel");
  section.hidden = app.stage < 3 && links.length === 0;
  if (section.hidden) return;
  $("links-empty").hidden = links.length > 0;
  const parts = app.view.colls.parts;
  reconcile($("links-list"), links, (l) => l.id,
    (l) => JSON.stringify([l, parts[l.source]?.name, parts[l.target]?.name, app.can("link.remove"), app.view.colls.partners]),
    (l) => {
      const words = `${partLabel(app, parts[l.source])} ${LINK_KIND_LABELS[l.kind]} ${partLabel(app, parts[l.target])}`;
      const li = h("li", { class: `item link-item is-${l.kind}` },
        h("span", { text: l.label ? `${words}: “${l.label}”` : words }));
      const scribe = scribeMark(app, l);
      if (scribe) li.append(h("em", { class: "link-scribe", text: scribe }));
      if (l.owner === app.role && app.can("link.edit")) li.append(linkLabelForm(app, l, words));
      if (l.owner === app.role && app.can("link.remove")) {
        li.append(h("button", { type: "button", class: "small", text: "Remove",
          "aria-label": `Remove the arrow: ${words}`, dataset: { focus: `unlink-${l.id}` },
          onclick: () => app.send("link.remove", { id: l.id }) }));
      }
      return li;
    });
}

// ---------------------------------------------------------------- Self check-in

let checkinBuilt = false;
let checkinDirty = false;

function buildCheckinForm(app) {
  const box = $("checkin-sliders");
  for (const quality of SELF_QUALITIES) {
    const id = `checkin-${quality}`;
    const output = h("output", { for: id, id: `${id}-value`, text: "5" });
    const slider = h("input", { type: "range", id, name: quality, min: 0, max: 10, step: 1, value: 5,
      "aria-valuetext": "5 of 10" });
    slider.addEventListener("input", () => {
      checkinDirty = true;
      output.textContent = slider.value;
      slider.setAttribute("aria-valuetext", `${slider.value} of 10`);
    });
    box.append(h("div", { class: "slider-row checkin-row" },
      h("label", { for: id, text: SELF_QUALITY_LABELS[quality] }), slider, output));
  }
  $("checkin-note").addEventListener("input", () => { checkinDirty = true; });
  $("checkin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const scores = {};
    for (const quality of SELF_QUALITIES) scores[quality] = Number($(`checkin-${quality}`).value);
    app.send("checkin.set", { scores, note: $("checkin-note").value }).then(() => {
      checkinDirty = false;
      drafts.delete("checkin-note");
    }, () => {});
  });
  $("checkin-share").addEventListener("click", () => app.send("checkin.reveal"));
  $("checkin-withdraw").addEventListener("click", () => app.send("checkin.withdraw"));
  checkinBuilt = true;
}

function scoresList(checkin) {
  return h("dl", { class: "scores" }, SELF_QUALITIES.map((q) => [
    h("dt", { text: SELF_QUALITY_LABELS[q] }),
    h("dd", { text: `${checkin.scores[q]} of 10` }),
  ]));
}

export function renderCheckins(app) {
  const section = $("checkin-panel");
  const checkins = app.view.colls.checkins;
  section.hidden = app.stage < 4 && Object.keys(checkins).length === 0;
  if (section.hidden) return;
  const form = $("checkin-form");
  const mine = app.isPartner ? checkins[app.role] : null;
  form.hidden = !(app.isPartner && app.can("checkin.set"));
  if (app.isPartner) {
    if (!checkinBuilt) buildCheckinForm(app);
    if (mine && !checkinDirty) {
      for (const quality of SELF_QUALITIES) {
        const slider = $(`checkin-${quality}`);
        slider.value = String(mine.scores[quality]);
        slider.setAttribute("aria-valuetext", `${slider.value} of 10`);
        $(`checkin-${quality}-value`).textContent = slider.value;
      }
      if (!drafts.has("checkin-note")) $("checkin-note").value = mine.note;
    }
    $("checkin-privacy").textContent = mine && mine.shared
      ? "Your check-in is shared with everyone."
      : mine ? `Saved. ${app.privacyText(app.role)}` : app.privacyText(app.role);
    $("checkin-share").hidden = !(mine && !mine.shared && app.can("checkin.reveal"));
    $("checkin-withdraw").hidden = !(mine && mine.shared && app.can("checkin.withdraw"));
  }
  const others = [];
  for (const partner of ["a", "b"]) {
    if (partner === app.role) continue;
    const checkin = checkins[partner];
    const name = app.partnerName(partner);
    if (checkin) {
      others.push(h("div", { class: "checkin-view" },
        h("h3", { text: `${name}'s check-in${checkin.shared ? "" : " (not yet shared)"}` }),
        scoresList(checkin), checkin.note ? h("p", { class: "note", text: checkin.note }) : null));
    } else if (app.view.counts[partner] && app.view.counts[partner].checkin) {
      others.push(h("p", { class: "help", text: `${name} has a check-in not yet shared.` }));
    } else {
      others.push(h("p", { class: "help", text: `${name} has not checked in yet.` }));
    }
  }
  const view = $("checkins-view");
  const sig = JSON.stringify([checkins, app.view.counts, app.view.colls.partners, app.role]);
  if (view.dataset.sig !== sig) {
    view.dataset.sig = sig;
    replaceChildren(view, others);
  }
}

// ---------------------------------------------------------------- needs and requests

// A partner's stage 5 comes in three panels: what is asked of them (waiting first), what their
// own parts need, and what was agreed to take home. The therapist sees every need and request.
export function renderNeeds(app) {
  const needs = app.view.colls.needs;
  const parts = app.view.colls.parts;
  const open = app.stage >= 5 || Object.keys(needs).length > 0;
  const rows = [];
  const asked = [];
  if (app.isPartner) {
    const myShared = Object.values(parts).filter((p) => p.owner === app.role && p.shared).sort(byName);
    for (const part of myShared) rows.push({ key: `mine-${part.id}`, part, need: needs[part.id] || null, mine: true });
  }
  for (const need of Object.values(needs)) {
    const part = parts[need.part];
    if (!part || part.owner === app.role) continue;
    const row = { key: `other-${part.id}`, part, need, mine: false };
    if (app.isPartner && need.request) asked.push(row);
    else rows.push(row);
  }
  // Waiting for an answer first.
  asked.sort((p, q) => Number(Boolean(p.need.answer)) - Number(Boolean(q.need.answer)) || inOrder(p.need, q.need));

  const needsPanel = $("needs-panel");
  needsPanel.hidden = !open;
  const requestsPanel = $("requests-panel");
  requestsPanel.hidden = !(open && app.isPartner);
  if (!open) return;
  $("needs-title").textContent = app.isPartner ? "What your parts need" : "Needs and requests";
  const other = app.isPartner ? app.other(app.role) : null;
  const unseen = ["a", "b"].filter((p) => p !== app.role).map((p) => {
    const count = (app.view.counts[p] && app.view.counts[p].needs) || 0;
    const seen = Object.values(needs).filter((n) => n.owner === p && !n.shared).length;
    const left = count - seen;
    return left > 0 ? ` ${app.partnerName(p)} has ${left} ${left === 1 ? "need" : "needs"} not yet shared.` : "";
  }).join("");
  const help = (app.isPartner
    ? `For each part you have shared, say what it needs; it stays private until you share it. A shared need can become a request of ${app.partnerName(other)}.`
    : "What the partners' shared parts need, their requests and the answers.") + unseen;
  if ($("needs-help").textContent !== help) $("needs-help").textContent = help;
  const editable = app.can("need.set");
  const sigOf = (r) => JSON.stringify([r.part.name, r.need, editable, app.role, app.can("request.answer"),
    app.view.colls.partners]);
  const build = (r) => (r.mine ? ownNeedItem(app, r.part, r.need, editable) : otherNeedItem(app, r.part, r.need));
  reconcile($("needs-list"), rows, (r) => r.key, sigOf, build);
  if (app.isPartner) {
    const waiting = asked.filter((r) => !r.need.answer).length;
    $("requests-title").textContent = waiting ? `Asked of you (${waiting} waiting)` : "Asked of you";
    reconcile($("requests-list"), asked, (r) => r.key, sigOf, build);
    $("requests-empty").hidden = asked.length > 0;
    $("requests-empty").textContent = `Nothing asked of you yet. When ${app.partnerName(app.other(app.role))} makes a request, it shows here.`;
  }
  renderHome(app, open);
}

function renderHome(app, open) {
  const needs = app.view.colls.needs;
  const home = Object.values(needs).filter((n) => n.request && n.answer === "yes").sort(inOrder);
  $("home-panel").hidden = !open;
  $("home-empty").hidden = home.length > 0;
  reconcile($("home-list"), home, (n) => n.part, (n) => JSON.stringify([n, app.role, app.view.colls.partners]),
    (n) => homeItem(app, n));
}

function homeItem(app, need) {
  const asker = need.owner === app.role ? "You" : app.partnerName(need.owner);
  const answerer = otherOf(need.owner) === app.role ? "you" : app.partnerName(otherOf(need.owner));
  return h("li", { class: "item home-item" },
    h("p", { class: "home-request" }, h("q", { text: need.request })),
    h("p", { class: "help", text: `${asker} asked; ${answerer} said yes.` }),
    need.answer_note ? h("p", { class: "home-note" }, h("strong", { text: "With a note: " }), need.answer_note) : null);
}

const otherOf = (partner) => (partner === "a" ? "b" : "a");

// A need is private first, like a part: it carries the same privacy line, its owner shares
// it, and only a shared need can become a request.
function needPrivacy(app, need) {
  return h("p", { class: "privacy-line", text: need.shared ? "Shared with everyone" : app.privacyText(need.owner) });
}

function ownNeedItem(app, part, need, editable) {
  const li = h("li", { class: "item need" }, h("h3", { class: "need-part" }, kindIcon(part.kind), ` ${part.name}`));
  const other = app.partnerName(otherOf(part.owner));
  if (need) {
    li.append(h("p", {}, h("strong", { text: "Needs: " }), need.text), needPrivacy(app, need));
    const share = !need.shared && app.can("need.reveal")
      ? h("button", { type: "button", class: "small primary", text: "Share this need",
        "aria-label": `Share what ${part.name} needs`, dataset: { focus: `need-share-${part.id}` },
        onclick: () => app.send("need.reveal", { part: part.id }) })
      : need.shared && app.can("need.withdraw")
        ? h("button", { type: "button", class: "small", text: "Take this need back",
          "aria-label": `Take back what ${part.name} needs`, dataset: { focus: `need-share-${part.id}` },
          onclick: () => app.send("need.withdraw", { part: part.id }) })
        : null;
    if (share) li.append(h("div", { class: "actions" }, share));
  }
  if (need && need.request) {
    li.append(h("p", {}, h("strong", { text: `You asked ${other}: ` }), need.request));
    li.append(answerLine(app, need));
  }
  if (!editable) return li;
  const needKey = `need-${part.id}`;
  const needArea = h("textarea", { rows: 2, maxlength: 2000, dataset: { key: needKey } });
  needArea.value = need ? need.text : "";
  const needActions = h("div", { class: "actions" },
    h("button", { type: "submit", class: "small", text: need ? "Update the need" : "Save the need",
      dataset: { focus: `need-save-${part.id}` } }));
  if (need && app.can("need.remove")) {
    needActions.append(h("button", {
      type: "button", class: "small danger", text: "Remove this need",
      "aria-label": `Remove this need (${part.name})`, dataset: { focus: `need-remove-${part.id}` },
      onclick: async () => {
        const ok = await app.confirm({
          title: `Remove what ${part.name} needs?`,
          text: !need.shared ? "The need is removed; nobody else saw it."
            : need.request
              ? `The need, your request to ${other} and ${other}'s answer are taken off the board for everyone.`
              : "The need is taken off the board for everyone.",
          ok: "Remove the need",
          danger: true,
        });
        if (ok) {
          app.send("need.remove", { part: part.id }).then(() => {
            drafts.delete(needKey);
            drafts.delete(`request-${part.id}`);
          }, () => {});
        }
      },
    }));
  }
  const needForm = h("form", { class: "form inline-form" },
    field(need ? `Change what ${part.name} needs` : `What does ${part.name} need?`, needArea,
      need ? null : `${app.privacyText(app.role)} until you share it.`),
    needActions);
  needForm.addEventListener("submit", (event) => {
    event.preventDefault();
    app.send("need.set", { part: part.id, text: needArea.value }).then(() => drafts.delete(needKey), () => {});
  });
  li.append(needForm);
  if (need && app.can("need.self")) {
    // IFIO's order: what your own Self can offer the part comes before a request.
    const selfKey = `self-${part.id}`;
    const selfArea = h("textarea", { rows: 2, maxlength: 2000, dataset: { key: selfKey } });
    selfArea.value = need.self_offer || "";
    const selfForm = h("form", { class: "form inline-form" },
      field(`What can your own Self offer ${part.name}?`, selfArea),
      h("button", { type: "submit", class: "small", text: "Save what your Self offers",
        dataset: { focus: `self-${part.id}` } }));
    selfForm.addEventListener("submit", (event) => {
      event.preventDefault();
      app.send("need.self", { part: part.id, text: selfArea.value }).then(() => drafts.delete(selfKey), () => {});
    });
    li.append(selfForm);
  }
  if (need && !need.shared && app.can("request.make")) {
    li.append(h("p", { class: "help", text: `Share this need to turn it into a request of ${other}.` }));
  }
  if (need && need.shared && need.self_offer == null && app.can("request.make")) {
    li.append(h("p", { class: "help", text: `Before asking ${other}, write what your own Self can offer ${part.name}.` }));
  }
  if (need && need.shared && need.self_offer != null && app.can("request.make")) {
    const requestKey = `request-${part.id}`;
    const requestArea = h("textarea", { rows: 2, maxlength: 2000, dataset: { key: requestKey } });
    requestArea.value = need.request || "";
    const requestForm = h("form", { class: "form inline-form" },
      field(`What would you like to ask ${other}?`, requestArea),
      h("button", { type: "submit", class: "small primary", text: need.request ? `Ask ${other} again` : `Ask ${other}`,
        dataset: { focus: `request-${part.id}` } }));
    requestForm.addEventListener("submit", (event) => {
      event.preventDefault();
      app.send("request.make", { part: part.id, text: requestArea.value }).then(() => drafts.delete(requestKey), () => {});
    });
    li.append(requestForm);
  }
  return li;
}

function answerLine(app, need) {
  const answerer = otherOf(need.owner);
  const you = answerer === app.role;
  const who = app.partnerName(answerer);
  if (!need.answer) {
    return h("p", { class: "help waiting", text: you ? "Waiting for your answer." : `Waiting for ${who}'s answer.` });
  }
  return h("div", { class: `answer answer-${need.answer}` },
    h("p", {}, h("strong", { text: you ? "You answered: " : `${who} answered: ` }), ANSWER_LABELS[need.answer]),
    need.answer_note ? h("p", { class: "answer-note" }, h("strong", { text: "With a note: " }), need.answer_note) : null,
    answerHistory(need));
}

function otherNeedItem(app, part, need) {
  const owner = app.partnerName(part.owner);
  const li = h("li", { class: "item need" },
    h("h3", { class: "need-part" }, kindIcon(part.kind), ` ${part.name} (${owner})`),
    h("p", {}, h("strong", { text: "Needs: " }), need.text), need.shared ? null : needPrivacy(app, need));
  // IFIO's order, seen by all: what the owner's own Self offers the part comes before the request.
  if (need.self_offer) {
    li.append(h("p", { class: "self-offer" }, h("strong", { text: `${owner}'s Self offers this part: ` }),
      need.self_offer));
  }
  if (!need.request) return li;
  const asked = app.role === "therapist" ? `${owner} asks ${app.partnerName(otherOf(part.owner))}: ` : `${owner} asks you: `;
  li.append(h("p", {}, h("strong", { text: asked }), need.request));
  li.append(answerLine(app, need));
  if (app.isPartner && app.can("request.answer")) {
    const group = uid("answer");
    const noteKey = `answer-note-${part.id}`;
    const radios = Object.entries(ANSWER_LABELS).map(([value, label]) => {
      const id = `${group}-${value}`;
      return h("div", { class: "radio" },
        h("input", { type: "radio", name: group, id, value, checked: need.answer === value,
          dataset: { focus: `answer-${part.id}-${value}` } }),
        h("label", { for: id, text: label }));
    });
    const note = h("textarea", { rows: 2, maxlength: 2000, dataset: { key: noteKey } });
    note.value = need.answer_note || "";
    const form = h("form", { class: "form inline-form" },
      h("fieldset", {}, h("legend", { text: "Your answer" }), radios),
      field("A note with your answer (optional)", note),
      h("button", { type: "submit", class: "small primary", text: need.answer ? "Send my new answer" : "Send my answer",
        dataset: { focus: `answer-send-${part.id}` } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = form.querySelector(`input[name="${group}"]:checked`);
      if (!chosen) {
        app.toast("Choose an answer first.");
        return;
      }
      app.send("request.answer", { part: part.id, answer: chosen.value, note: note.value })
        .then(() => drafts.delete(noteKey), () => {});
    });
    // Once answered, changing the answer is offered, folded.
    li.append(need.answer
      ? h("details", { class: "change-answer" }, h("summary", { text: "Change your answer" }), form)
      : form);
  }
  return li;
}

// ---------------------------------------------------------------- the therapist's tools

// How each partner is doing, the overwhelm acknowledgement, and the board lock.
export function renderCouple(app) {
  const section = $("couple-panel");
  section.hidden = app.role !== "therapist";
  if (section.hidden) return;
  const view = app.view;
  const rows = [];
  for (const partner of ["a", "b"]) {
    const name = app.partnerName(partner);
    const signal = view.colls.overwhelm[partner];
    if (signal) {
      rows.push({ key: `overwhelm-${partner}`, alert: !signal.seen_at, seen: Boolean(signal.seen_at), partner,
        text: signal.seen_at ? `${name} is getting overwhelmed. ${name} knows you have seen it.`
          : `${name} is getting overwhelmed.` });
    }
    rows.push({ key: `ready-${partner}`, text: view.colls.ready[partner]
      ? `${name} is ready for the next step.` : `${name} has not said they are ready yet.` });
    const counts = view.counts[partner] || {};
    const unshared = counts.parts || 0;
    rows.push({ key: `count-${partner}`, text: unshared
      ? `${name} has ${unshared} ${unshared === 1 ? "part" : "parts"} not yet shared.`
      : `${name} has no parts waiting to be shared.` });
    // Counted for the therapist alone: the other partner learns nothing of these.
    if (counts.feelings) {
      rows.push({ key: `feelings-${partner}`, text: `${name} has ${counts.feelings === 1
        ? "1 feeling toward a part" : `${counts.feelings} feelings toward parts`} not yet shared.` });
    }
    if (counts.uturns) {
      rows.push({ key: `uturns-${partner}`, text: `${name} has ${counts.uturns} U-turn ${counts.uturns === 1
        ? "answer" : "answers"} not yet shared.` });
    }
  }
  // Seeing it tells the partner so ("Your therapist has seen this"); clearing it is a second step.
  reconcile($("therapist-status"), rows, (r) => r.key, (r) => JSON.stringify(r), (r) => {
    const li = h("li", { class: r.alert ? "item alert-item" : r.seen ? "item seen-item" : "item", text: r.text });
    const name = r.partner ? app.partnerName(r.partner) : "";
    if (r.alert) {
      li.append(h("button", { type: "button", class: "small", text: "I've seen it",
        "aria-label": `I've seen that ${name} is overwhelmed`, dataset: { focus: `seen-${r.partner}` },
        onclick: () => app.send("overwhelm.ack", { partner: r.partner }) }));
    } else if (r.seen) {
      li.append(h("button", { type: "button", class: "small", text: "Clear",
        "aria-label": `Clear ${name}'s overwhelm signal`, dataset: { focus: `seen-${r.partner}` },
        onclick: () => app.send("overwhelm.clear", { partner: r.partner }) }));
    }
    return li;
  });
  const lock = $("freeze-toggle");
  lock.setAttribute("aria-pressed", app.board.frozen ? "true" : "false");
  lock.textContent = app.board.frozen ? "Unlock the board" : "Lock the board";
  $("spotlight-clear").hidden = !app.board.spotlight;
}

export function renderNotes(app) {
  const section = $("notes-panel");
  section.hidden = app.role !== "therapist";
  if (section.hidden) return;
  const notes = Object.values(app.view.colls.notes || {}).sort(inOrder);
  const editing = app.ui.editingNote;
  reconcile($("notes-list"), notes, (n) => n.id, (n) => JSON.stringify([n, editing === n.id]), (n) => {
    const textId = uid("note");
    const li = h("li", { class: "item note" }, timeOf(n.at), h("p", { id: textId, text: n.text }));
    if (editing === n.id) {
      li.append(inlineEditForm(app, {
        key: `note-edit-${n.id}`, label: "Edit the note", text: n.text, rows: 3,
        op: "note.edit", id: n.id, editing: "editingNote" }));
    } else {
      li.append(h("div", { class: "actions" },
        h("button", { type: "button", class: "small", text: "Edit", "aria-describedby": textId,
          dataset: { focus: `note-edit-${n.id}` },
          onclick: () => { app.ui.editingNote = n.id; app.scheduleRender(); } }),
        h("button", { type: "button", class: "small danger", text: "Delete", "aria-describedby": textId,
          dataset: { focus: `note-del-${n.id}` },
          onclick: async () => {
            if (await app.confirm({ title: "Delete this note?", text: "It cannot be brought back.", ok: "Delete it",
              danger: true })) {
              app.send("note.remove", { id: n.id });
            }
          } })));
    }
    return li;
  });
}

// Names, colours, the drafts setting and new links: set up once, folded away.
export function renderSettings(app) {
  const section = $("settings-panel");
  section.hidden = app.role !== "therapist";
  if (section.hidden) return;
  const view = app.view;
  reconcile($("partners-edit"), ["a", "b"], (p) => p, (p) => JSON.stringify(view.colls.partners[p]),
    (partner) => partnerForm(app, partner));
  const setting = app.settings.therapist_sees_drafts
    ? "You see each partner's parts before they share them; each private card tells its owner so."
    : "Each partner's parts stay with them until they share them; you see only what is shared.";
  if ($("drafts-setting").textContent !== setting) $("drafts-setting").textContent = setting;
}

function partnerForm(app, partner) {
  const info = app.view.colls.partners[partner] || { name: "", color: "#1f6fb2" };
  const which = partner === "a" ? "first" : "second";
  const nameKey = `partner-name-${partner}`;
  const name = h("input", { type: "text", maxlength: 40, autocomplete: "off", dataset: { key: nameKey } });
  name.value = info.name;
  const color = h("input", { type: "color", dataset: { focus: `partner-color-${partner}` } });
  color.value = COLOR.test(info.color) ? info.color : "#1f6fb2";
  const form = h("form", { class: "form inline-form partner-edit" },
    h("div", { class: "partner-field" }, field(`The ${which} partner's name`, name),
      h("div", { class: "field field-color" }, h("label", { for: uid("c"), text: `The ${which} partner's colour` }))),
    h("button", { type: "submit", class: "small", text: "Save", dataset: { focus: `partner-save-${partner}` },
      "aria-label": `Save the ${which} partner's name and colour` }));
  const colorField = form.querySelector(".field-color");
  color.id = colorField.querySelector("label").htmlFor;
  colorField.append(color);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const args = { partner };
    if (name.value.trim() && name.value.trim() !== info.name) args.name = name.value.trim();
    if (color.value.toLowerCase() !== String(info.color).toLowerCase()) args.color = color.value;
    if (Object.keys(args).length === 1) return;
    app.send("partner.update", args).then(() => drafts.delete(nameKey), () => {});
  });
  return h("li", { class: "item" }, form);
}
