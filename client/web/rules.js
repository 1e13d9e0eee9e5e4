// The protocol's rules as the server serves them (rooms/protocol.py, embedded in every
// page as <script type="application/json" id="protocol">): this file keeps no copy of
// them. They are used only to offer the controls that would be accepted; the server decides.

function served() {
  const element = document.getElementById("protocol");
  if (!element) throw new Error("This page carries no protocol document.");
  return JSON.parse(element.textContent);
}

export const PROTOCOL = served();

export const OPERATIONS = PROTOCOL.operations;

export function allowed(op, role, stage, frozen) {
  const rule = OPERATIONS[op];
  if (!rule) return false;
  return rule.roles.includes(role) && stage >= rule.stage && !(rule.freezable && frozen);
}

const names = (list) => list.map((item) => item.name);
const labels = (list) => Object.fromEntries(list.map((item) => [item.name, item.label]));

export const KINDS = names(PROTOCOL.part_kinds);
export const KIND_LABELS = labels(PROTOCOL.part_kinds);
export const LINK_KIND_LABELS = labels(PROTOCOL.link_kinds);
export const SELF_QUALITIES = names(PROTOCOL.self_qualities);
export const SELF_QUALITY_LABELS = labels(PROTOCOL.self_qualities);
export const ANSWER_LABELS = labels(PROTOCOL.answers);
export const COLOR = new RegExp(PROTOCOL.color_pattern);

// The board's geometry (rooms/geometry.py): aspect, card_w, card_h, gap.
export const BOARD = PROTOCOL.board;

// Close codes by number: {name, then: "stop" | "wait" | "resume", meaning}.
export const CLOSES = PROTOCOL.closes;

export function closeRule(code) {
  return CLOSES[String(code)] || { name: "lost_connection", then: "resume", meaning: "" };
}
