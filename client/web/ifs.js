// Parts work the IFS way, in the browser: a part's details, "How do you feel toward this
// part?" and its history, sharing in two steps, each partner's Self on the board with the
// change over the session, speaking for parts with a listener, and U-turn prompts.
// Everything shown here is already filtered for this viewer by the server.

import { $, drafts, field, forgetDrafts, h, replaceChildren, timeOf } from "./dom.js";
import { ANSWER_LABELS, KIND_LABELS, KINDS, LINK_KIND_LABELS, PROTOCOL, SELF_QUALITIES, SELF_QUALITY_LABELS } from "./rules.js";

const inOrder = (p, q) => (p.order ?? 0) - (q.order ?? 0) || (p.id < q.id ? -1 : 1);

const DETAILS = [
  ["job", "Its job: what it does for me"],
  ["fear", "Its fear: what would happen if it stopped"],
  ["age", "How old it seems"],
  ["intent", "What it wants for me"],
  ["burden", "What it carries (its burden)"],
];

// ---------------------------------------------------------------- sharing in two steps

// Sharing an exile asks gently first; the server refuses it without confirm.
export async function sharePart(app, part, to = "everyone") {
  if (part.kind === "exile") {
    const ok = await app.confirm({
      title: "This is a tender part",
      text: to === "therapist"
        ? `Share ${part.name} with your therapist now? Your partner will not see it.`
        : `Share ${part.name} with everyone now? You can take it back at any time.`,
      ok: "Share it",
    });
    if (!ok) return;
  }
  app.send("part.reveal", { id: part.id, to, confirm: part.kind === "exile" });
}

export function shareButtons(app, part) {
  const buttons = [];
  if (!part.shared && !part.with_therapist && app.can("part.reveal")) {
    buttons.push(h("button", { type: "button", text: "Share with your therapist first",
      dataset: { focus: "panel-share-therapist" }, onclick: () => sharePart(app, part, "therapist") }));
  }
  if (!part.shared && app.can("part.reveal")) {
    buttons.push(h("button", { type: "button", class: "primary", text: "Share with everyone",
      dataset: { focus: "panel-share" }, onclick: () => sharePart(app, part, "everyone") }));
  }
  if ((part.shared || part.with_therapist) && app.can("part.withdraw")) {
    if (part.shared) {
      buttons.push(h("button", { type: "button", text: "Keep it with your therapist only",
        dataset: { focus: "panel-withdraw-therapist" },
        onclick: () => app.send("part.withdraw", { id: part.id, to: "therapist" }) }));
    }
    buttons.push(h("button", { type: "button", text: "Take this part back",
      dataset: { focus: "panel-withdraw" }, onclick: () => app.send("part.withdraw", { id: part.id }) }));
  }
  return buttons;
}

export function visibilityText(app, part) {
  if (part.shared) return "shared with everyone";
  if (part.with_therapist && part.owner === app.role) return "Only you and your therapist can see this";
  return app.privacyText(part.owner);
}

// ---------------------------------------------------------------- the therapist as scribe

// A part or a link the therapist wrote for a partner.
export function scribeMark(app, item) {
  if (!item.by_therapist) return null;
  return item.owner === app.role ? "Written by your therapist" : "Written by you for them";
}

function scribeItems(app, part) {
  if (!part.by_therapist) return [];
  if (part.owner === app.role && app.can("part.accept")) {
    const drawn = Object.values(app.view.colls.links).filter((l) => l.by_therapist && l.source === part.id).length;
    const what = drawn === 0 ? "this part" : `this part and ${drawn === 1 ? "the link" : "the links"} drawn from it`;
    return [h("div", { class: "scribe-note" },
      h("p", { text: `Your therapist wrote ${what} for you. Is it yours? Keep it, change it or remove it.` }),
      h("button", { type: "button", class: "primary", text: "Keep it as mine", dataset: { focus: "part-accept" },
        onclick: () => app.send("part.accept", { id: part.id }) }))];
  }
  if (app.role === "therapist") {
    return [h("p", { class: "help", text: `${app.partnerName(part.owner)} has not accepted it yet: you can still change it.` })];
  }
  return [];
}

export function renderScribe(app) {
  const section = $("scribe-panel");
  section.hidden = !app.can("scribe.part_add");
  if (section.hidden || section.dataset.sig === JSON.stringify(app.view.colls.partners)) return;
  section.dataset.sig = JSON.stringify(app.view.colls.partners);
  const who = h("select", { dataset: { focus: "scribe-who" } },
    ["a", "b"].map((p) => h("option", { value: p, text: app.partnerName(p) })));
  const name = h("input", { type: "text", maxlength: 80, autocomplete: "off", dataset: { key: "scribe-name" } });
  const kind = h("select", { dataset: { focus: "scribe-kind" } },
    KINDS.map((k) => h("option", { value: k, text: KIND_LABELS[k], selected: k === "unsure" })));
  const form = h("form", { class: "form" }, field("For", who), field("The part's name", name), field("Kind", kind),
    h("p", { class: "help", text: "Only that partner and you see it until they share it; they can keep, change or remove it." }),
    h("button", { type: "submit", class: "primary", text: "Write this part for them", dataset: { focus: "scribe-add" } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    app.send("scribe.part_add", { partner: who.value, name: name.value, kind: kind.value }).then(() => {
      drafts.delete("scribe-name");
      name.value = "";
    }, () => {});
  });
  replaceChildren($("scribe-body"), [form]);
}

// ---------------------------------------------------------------- the part's panel

// What the part panel shows from this module changes with these.
export function partSig(app, part) {
  return [feelingsOf(app, part.id), app.view.colls.links];
}

function feelingsOf(app, partId) {
  return Object.values(app.view.colls.feelings || {}).filter((f) => f.part === partId).sort(inOrder);
}

export function partItems(app, part) {
  const mine = part.owner === app.role;
  const items = scribeItems(app, part);
  if (mine && app.can("part.details")) {
    items.push(detailsForm(app, part, "part.details"));
  } else if (part.by_therapist && app.can("scribe.part_edit")) {
    items.push(detailsForm(app, part, "scribe.part_edit"));
  } else {
    const shown = DETAILS.filter(([key]) => part[key]);
    if (shown.length) {
      items.push(h("dl", { class: "details" }, shown.map(([key, label]) =>
        [h("dt", { text: label }), h("dd", { text: part[key] })])));
    }
  }
  if (mine && app.can("part.feel")) items.push(feelForm(app, part));
  const feelings = feelingsOf(app, part.id);
  if (feelings.length) {
    items.push(h("div", { class: "feelings" },
      h("h3", { text: mine ? "How you felt toward it" : `How ${app.partnerName(part.owner)} felt toward it` }),
      h("ol", { class: "feelings-list" }, feelings.map((f) => h("li", { class: "feeling" },
        timeOf(f.at), " ", feelingWords(f))))));
  }
  return items;
}

function feelingWords(feeling) {
  const words = [];
  if (feeling.qualities.length) {
    words.push(h("span", { class: "self-words",
      text: `Self: ${feeling.qualities.map((q) => SELF_QUALITY_LABELS[q].toLowerCase()).join(", ")}` }));
  }
  if (feeling.other) {
    if (words.length) words.push(" · ");
    words.push(h("span", { class: "other-words", text: `Another part: ${feeling.other}` }));
  }
  return words;
}

function detailsForm(app, part, op) {
  const inputs = {};
  const fields = [];
  for (const [key, label] of DETAILS) {
    if (key === "burden" && part.kind !== "exile") continue;
    const input = h(key === "age" ? "input" : "textarea", key === "age"
      ? { type: "text", maxlength: 500, autocomplete: "off", dataset: { key: `${key}-${part.id}` } }
      : { rows: 2, maxlength: 500, dataset: { key: `${key}-${part.id}` } });
    input.value = part[key] || "";
    inputs[key] = input;
    fields.push(field(label, input));
  }
  const form = h("form", { class: "form details-form" },
    h("details", { open: DETAILS.some(([key]) => part[key]) },
      h("summary", { text: "About this part" }), fields,
      h("button", { type: "submit", text: "Save about this part", dataset: { focus: "details-save" } })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const args = { id: part.id };
    for (const [key, input] of Object.entries(inputs)) {
      if (input.value.trim() !== (part[key] || "")) args[key] = input.value;
    }
    if (Object.keys(args).length === 1) return;
    app.send(op, args).then(() => {
      for (const key of Object.keys(inputs)) drafts.delete(`${key}-${part.id}`);
    }, () => {});
  });
  return form;
}

function feelForm(app, part) {
  const boxes = SELF_QUALITIES.map((q) => {
    const box = h("input", { type: "checkbox", name: q, value: q, dataset: { key: `feel-${q}-${part.id}` } });
    return { q, box, el: h("label", { class: "check" }, box, ` ${SELF_QUALITY_LABELS[q]}`) };
  });
  const other = h("input", { type: "text", maxlength: 500, autocomplete: "off",
    dataset: { key: `feel-other-${part.id}` }, placeholder: "annoyed, afraid of it, wanting it gone…" });
  const asPart = h("input", { type: "checkbox", dataset: { key: `feel-as-part-${part.id}` } });
  const name = h("input", { type: "text", maxlength: 80, autocomplete: "off", dataset: { key: `feel-name-${part.id}` } });
  const kind = h("select", { dataset: { key: `feel-link-${part.id}` } },
    ["reacts_to", "polarized_with"].map((k) => h("option", { value: k, text: `It ${LINK_KIND_LABELS[k]} ${part.name}` })));
  const offer = h("fieldset", { class: "new-part-offer" },
    h("legend", { text: "This feeling may be another part" }),
    h("label", { class: "check" }, asPart, " Add it to the board as a new part"),
    field("Its name", name), field("How it is linked", kind));
  const syncOffer = () => {
    offer.hidden = !other.value.trim();
    name.disabled = kind.disabled = !asPart.checked;
  };
  other.addEventListener("input", syncOffer);
  asPart.addEventListener("change", () => {
    if (asPart.checked && !name.value.trim()) {
      name.value = `The part that feels ${other.value.trim()}`.slice(0, 80);
      drafts.set(name.dataset.key, name.value);
    }
    syncOffer();
  });
  const form = h("form", { class: "form feel-form" },
    h("fieldset", { class: "qualities" }, h("legend", { text: `How do you feel toward ${part.name}?` }),
      h("div", { class: "check-grid" }, boxes.map((b) => b.el))),
    field("Or another feeling, in your words", other,
      "Any feeling that is not one of these may be another part, blended with you."),
    offer,
    h("button", { type: "submit", class: "primary", text: "Save how I feel", dataset: { focus: "feel-save" } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const qualities = {};
    for (const b of boxes) if (b.box.checked) qualities[b.q] = true;
    const args = { id: part.id, qualities, other: other.value };
    if (asPart.checked && other.value.trim()) {
      args.new_part = name.value;
      args.new_link = kind.value;
    }
    app.send("part.feel", args).then(() => {
      forgetDrafts([...boxes.map((b) => b.box), asPart, other, name, kind].map((el) => el.dataset.key));
      form.reset();
      syncOffer();
      const shown = document.querySelector("#part-panel .new-part-offer");
      if (shown) shown.hidden = true;
    }, () => {});
  });
  queueMicrotask(syncOffer);
  return form;
}

// ---------------------------------------------------------------- stage 5: answers revisited

// A request's earlier answers, oldest first, so a "not yet" that became a yes is seen.
export function answerHistory(need) {
  const earlier = need.answers || [];
  if (!earlier.length) return null;
  return h("details", { class: "answer-history" }, h("summary", { text: `Earlier answers (${earlier.length})` }),
    h("ol", {}, earlier.map((a) => h("li", {}, timeOf(a.at), ` ${ANSWER_LABELS[a.answer] || "No answer"}`,
      a.note ? ` (“${a.note}”)` : "", a.request ? ` to: ${a.request}` : ""))));
}

// ---------------------------------------------------------------- links

// Each kind has its own dash pattern and words, so colour is never needed to read it.
export const LINK_LOOKS = {
  protects: { cls: "link-protects", marker: "url(#arrow-protects)" },
  reacts_to: { cls: "link-reacts", marker: "url(#arrow-reacts)" },
  polarized_with: { cls: "link-polarized", marker: null },
  allied_with: { cls: "link-allied", marker: null },
};

export function linkLabelForm(app, link, words) {
  const input = h("input", { type: "text", maxlength: 80, autocomplete: "off", value: link.label || "",
    dataset: { key: `label-${link.id}` }, "aria-label": `Label for: ${words}`, placeholder: "A short label" });
  const form = h("form", { class: "inline-form label-form" }, input,
    h("button", { type: "submit", class: "small", text: "Save label", dataset: { focus: `label-save-${link.id}` } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    app.send("link.edit", { id: link.id, label: input.value }).then(() => drafts.delete(`label-${link.id}`), () => {});
  });
  return form;
}

// ---------------------------------------------------------------- Self on the board

export function selfEnergy(scores) {
  const values = SELF_QUALITIES.map((q) => scores[q]);
  return values.reduce((a, b) => a + b, 0) / values.length;
}

export function renderSelf(app) {
  const row = $("self-row");
  const checkins = app.view.colls.checkins;
  const sig = JSON.stringify([checkins, app.role, app.view.colls.partners]);
  row.hidden = Object.keys(checkins).length === 0;
  if (row.dataset.sig === sig) return;
  row.dataset.sig = sig;
  replaceChildren(row, ["a", "b"].map((partner) => selfCell(app, partner, checkins[partner])));
}

function selfCell(app, partner, checkin) {
  const cell = h("div", { class: `self-cell self-${partner}` });
  if (!checkin) return cell;
  const name = partner === app.role ? "Your Self" : `${app.partnerName(partner)}'s Self`;
  const energy = selfEnergy(checkin.scores);
  const size = 2 + energy * 0.45; // rem: 2 (no Self energy) to 6.5 (all of it)
  const privacy = checkin.shared ? "shared" : partner === app.role ? app.privacyText(partner) : "not yet shared";
  const history = [...checkin.history, checkin];
  const orb = h("div", { class: "self-orb", role: "img",
    dataset: { energy: energy.toFixed(1) }, "aria-label": `${name}: Self energy ${energy.toFixed(1)} of 10` });
  orb.style.setProperty("--self-size", `${size.toFixed(2)}rem`); // the page's CSP allows no style attribute
  cell.append(orb,
    h("p", { class: "self-caption" }, h("strong", { text: name }),
      ` · ${energy.toFixed(1)} of 10 · ${privacy}`));
  if (history.length > 1) {
    cell.append(h("details", { class: "self-history" },
      h("summary", { text: "Change over the session" }),
      h("ol", {}, history.map((c) => h("li", {}, timeOf(c.at), ` ${selfEnergy(c.scores).toFixed(1)} of 10`)))));
  }
  return cell;
}

// ---------------------------------------------------------------- speaking and listening

const STEMS = PROTOCOL.sentence_stems;

export function renderTurns(app) {
  const section = $("turns-panel");
  const turns = Object.values(app.view.colls.turns || {}).sort(inOrder);
  const uturns = Object.values(app.view.colls.uturns || {}).sort(inOrder);
  section.hidden = app.stage < 3 && !turns.length && !uturns.length;
  if (section.hidden) return;
  const sig = JSON.stringify([turns, uturns, app.role, app.stage, app.board.frozen,
    app.view.colls.partners, Object.values(app.view.colls.parts).map((p) => [p.id, p.name, p.owner, p.shared])]);
  if (section.dataset.sig === sig) return;
  section.dataset.sig = sig;
  const open = turns.find((t) => t.ended_at === null || t.ended_at === undefined);
  const items = [];
  if (app.role === "therapist") items.push(therapistTurnControls(app, open));
  if (open) {
    items.push(openTurn(app, open));
  } else if (app.role !== "therapist") {
    items.push(h("p", { class: "help", text: "Your therapist gives the floor to one of you to speak for a part." }));
  }
  const past = turns.filter((t) => t !== open);
  if (past.length) {
    items.push(h("details", { class: "past-turns" }, h("summary", { text: `Earlier turns (${past.length})` }),
      h("ol", {}, past.map((t) => h("li", {}, turnSummary(app, t))))));
  }
  const uturnItems = uturns.map((u) => uturnItem(app, u));
  if (uturnItems.length || app.can("uturn.ask")) {
    items.push(h("h3", { text: "Turning inward (U-turn)" }));
    if (app.can("uturn.ask")) items.push(uturnAskForm(app));
    items.push(h("ul", { class: "uturns" }, uturnItems));
  }
  replaceChildren($("turns-body"), items);
}

function therapistTurnControls(app, open) {
  const row = h("div", { class: "actions turn-controls" });
  if (!open && app.can("turn.start")) {
    for (const speaker of ["a", "b"]) {
      row.append(h("button", { type: "button", class: "primary", dataset: { focus: `turn-start-${speaker}` },
        text: `Give the floor to ${app.partnerName(speaker)}`,
        onclick: () => app.send("turn.start", { speaker }) }));
    }
  }
  if (open && app.can("turn.end")) {
    row.append(
      h("button", { type: "button", text: "Swap speaker and listener", dataset: { focus: "turn-swap" },
        onclick: () => app.send("turn.end", { swap: true }) }),
      h("button", { type: "button", text: "End the turn", dataset: { focus: "turn-end" },
        onclick: () => app.send("turn.end", {}) }));
  }
  return row;
}

function turnSummary(app, turn) {
  const parts = app.view.colls.parts;
  const lines = [h("p", { class: "turn-roles" },
    h("strong", { text: `${app.partnerName(turn.speaker)} speaks` }),
    `, ${app.partnerName(turn.listener)} listens · `, timeOf(turn.at))];
  if (turn.spoken) {
    const part = turn.part && parts[turn.part] ? ` (for ${parts[turn.part].name})` : "";
    lines.push(h("p", { class: "turn-spoken" }, h("span", { class: "who", text: `${app.partnerName(turn.speaker)}${part}: ` }),
      turn.spoken));
  }
  if (turn.reflection) {
    lines.push(h("p", { class: "turn-reflection" },
      h("span", { class: "who", text: `${app.partnerName(turn.listener)} heard: ` }), turn.reflection));
  }
  if (turn.heard === true) lines.push(h("p", { class: "turn-heard", text: `${app.partnerName(turn.speaker)} felt heard.` }));
  if (turn.heard === false) {
    lines.push(h("p", { class: "turn-heard" }, `${app.partnerName(turn.speaker)} did not feel fully heard`,
      turn.correction ? `: ${turn.correction}` : "."));
  }
  return lines;
}

function stemsHelp(who) {
  return h("ul", { class: "stems", "aria-label": "Sentence starts that can help" },
    STEMS[who].map((stem) => h("li", { text: stem })));
}

function openTurn(app, turn) {
  const box = h("div", { class: "turn-open" }, turnSummary(app, turn));
  const me = app.role;
  if (me === turn.speaker && app.can("turn.speak") && (turn.spoken === "" || turn.heard === false)) {
    const own = Object.values(app.view.colls.parts).filter((p) => p.owner === me && p.shared);
    const select = h("select", { dataset: { focus: "turn-part" } },
      h("option", { value: "", text: "(no part named)" }),
      own.map((p) => h("option", { value: p.id, text: p.name })));
    const text = h("textarea", { rows: 3, maxlength: 2000, dataset: { key: `speak-${turn.id}` } });
    const form = h("form", { class: "form" }, h("p", { class: "label", text: "Speak for a part" }), stemsHelp("speaker"),
      own.length ? field("For which part", select) : null, field("What the part says", text),
      h("button", { type: "submit", class: "primary", text: "Speak for this part", dataset: { focus: "turn-speak" } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      app.send("turn.speak", { text: text.value, part: select.value || null })
        .then(() => drafts.delete(`speak-${turn.id}`), () => {});
    });
    box.append(form);
  } else if (me === turn.listener && app.can("turn.reflect") && turn.spoken && !turn.reflection) {
    const text = h("textarea", { rows: 3, maxlength: 2000, dataset: { key: `reflect-${turn.id}` } });
    const form = h("form", { class: "form" }, h("p", { class: "label", text: "Reflect back what you heard" }),
      stemsHelp("listener"), field("What I heard is…", text),
      h("button", { type: "submit", class: "primary", text: "Reflect back", dataset: { focus: "turn-reflect" } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      app.send("turn.reflect", { text: text.value }).then(() => drafts.delete(`reflect-${turn.id}`), () => {});
    });
    box.append(form);
  } else if (me === turn.speaker && app.can("turn.confirm") && turn.reflection && turn.heard === null) {
    const correction = h("textarea", { rows: 2, maxlength: 2000, dataset: { key: `correct-${turn.id}` } });
    const form = h("form", { class: "form" },
      h("p", { class: "label", text: `Did you feel heard by ${app.partnerName(turn.listener)}?` }),
      h("button", { type: "button", class: "primary", text: "Yes, I felt heard", dataset: { focus: "turn-heard" },
        onclick: () => app.send("turn.confirm", { heard: true }) }),
      field("Or say what was missed", correction),
      h("button", { type: "submit", text: "Not quite: correct it", dataset: { focus: "turn-correct" } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      app.send("turn.confirm", { heard: false, correction: correction.value })
        .then(() => drafts.delete(`correct-${turn.id}`), () => {});
    });
    box.append(form);
  }
  return box;
}

function uturnAskForm(app) {
  const who = h("select", { dataset: { focus: "uturn-who" } },
    ["a", "b"].map((p) => h("option", { value: p, text: app.partnerName(p) })));
  const prompt = h("textarea", { rows: 2, maxlength: 2000, placeholder: PROTOCOL.uturn_prompt,
    dataset: { key: "uturn-prompt" } });
  const form = h("form", { class: "form" }, field("Invite", who),
    field("Prompt", prompt, "Left empty, the usual prompt is sent. Only that partner and you see it."),
    h("button", { type: "submit", text: "Send the U-turn prompt", dataset: { focus: "uturn-ask" } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    app.send("uturn.ask", { partner: who.value, prompt: prompt.value }).then(() => drafts.delete("uturn-prompt"), () => {});
  });
  return form;
}

function uturnItem(app, u) {
  const mine = u.partner === app.role;
  const privacy = u.shared ? "shared with everyone"
    : mine ? "Only you and your therapist can see this" : `Only ${app.partnerName(u.partner)} and you can see this`;
  const li = h("li", { class: "item uturn" },
    h("p", {}, h("strong", { text: mine ? "For you: " : `For ${app.partnerName(u.partner)}: ` }), u.prompt),
    h("p", { class: "help" }, timeOf(u.at), ` · ${privacy}`));
  if (u.answer) li.append(h("p", { class: "uturn-answer", text: u.answer }));
  if (mine && app.can("uturn.answer")) {
    const text = h("textarea", { rows: 2, maxlength: 2000, dataset: { key: `uturn-${u.id}` } });
    text.value = u.answer;
    const form = h("form", { class: "form" }, field(u.answer ? "Change your answer" : "Your answer", text),
      h("button", { type: "submit", text: "Save my answer", dataset: { focus: `uturn-save-${u.id}` } }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      app.send("uturn.answer", { id: u.id, text: text.value }).then(() => drafts.delete(`uturn-${u.id}`), () => {});
    });
    li.append(form);
  }
  if (mine && u.answer && app.can("uturn.share")) {
    li.append(h("button", { type: "button", class: "small", dataset: { focus: `uturn-share-${u.id}` },
      text: u.shared ? "Take it back" : "Share with everyone",
      onclick: () => app.send("uturn.share", { id: u.id, shared: !u.shared }) }));
  }
  return li;
}
