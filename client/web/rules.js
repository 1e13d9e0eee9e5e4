// A mirror of rooms/stages.py OPERATIONS, used only to offer the controls that
// would be accepted; the server decides.

const T = ["therapist"];
const P = ["a", "b"];

export const OPERATIONS = {
  "stage.set": [T, 1, false],
  "agreement.add": [T, 1, false],
  "agreement.edit": [T, 1, false],
  "agreement.remove": [T, 1, false],
  "spotlight.set": [T, 1, false],
  "freeze.set": [T, 1, false],
  "pause.clear": [T, 1, false],
  "overwhelm.clear": [T, 1, false],
  "note.add": [T, 1, false],
  "note.edit": [T, 1, false],
  "note.remove": [T, 1, false],
  "partner.update": [T, 1, false],
  "agreement.ack": [P, 1, false],
  "pause.raise": [P, 1, false],
  "overwhelm.raise": [P, 1, false],
  "ready.set": [P, 1, false],
  "part.add": [P, 2, true],
  "part.edit": [P, 2, true],
  "part.move": [P, 2, true],
  "part.remove": [P, 2, true],
  "part.reveal": [P, 2, true],
  "part.reveal_all": [P, 2, true],
  "part.withdraw": [P, 2, true],
  "part.blend": [P, 3, true],
  "link.add": [P, 3, true],
  "link.remove": [P, 3, true],
  "checkin.set": [P, 4, true],
  "checkin.reveal": [P, 4, true],
  "checkin.withdraw": [P, 4, true],
  "need.set": [P, 5, true],
  "need.remove": [P, 5, true],
  "request.make": [P, 5, true],
  "request.answer": [P, 5, true],
};

export function allowed(op, role, stage, frozen) {
  const rule = OPERATIONS[op];
  if (!rule) return false;
  const [roles, first, freezable] = rule;
  return roles.includes(role) && stage >= first && !(freezable && frozen);
}

export const KINDS = ["manager", "firefighter", "exile", "unsure"];

export const KIND_LABELS = {
  manager: "Manager",
  firefighter: "Firefighter",
  exile: "Exile",
  unsure: "Not sure yet",
};

export const SELF_QUALITIES = [
  "calm", "curiosity", "compassion", "confidence",
  "courage", "clarity", "creativity", "connectedness",
];

export const ANSWER_LABELS = { yes: "Yes", not_yet: "Not yet", lets_talk: "Let's talk" };
