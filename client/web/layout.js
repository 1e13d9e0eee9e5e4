// The page by stage: what the current stage asks of this person comes first, in reading
// order and (on wide screens) at the top beside the board; every other panel follows, under
// the board on wide screens.

import { $ } from "./dom.js";

const TASKS = {
  partner: {
    1: ["agreements"],
    2: ["add-part-panel", "my-parts"],
    3: ["my-parts", "turns-panel", "links-panel"],
    4: ["checkin-panel"],
    5: ["requests-panel", "needs-panel", "home-panel"],
  },
  therapist: {
    1: ["agreements", "couple-panel"],
    2: ["couple-panel", "scribe-panel"],
    3: ["couple-panel", "turns-panel", "scribe-panel", "links-panel"],
    4: ["checkin-panel", "couple-panel"],
    5: ["needs-panel", "home-panel", "couple-panel"],
  },
};

// Where the rest goes, in this order.
const REST = {
  partner: ["agreements", "add-part-panel", "my-parts", "turns-panel", "links-panel", "checkin-panel",
    "requests-panel", "needs-panel", "home-panel", "export-panel"],
  therapist: ["couple-panel", "turns-panel", "scribe-panel", "notes-panel", "agreements", "links-panel", "checkin-panel",
    "needs-panel", "home-panel", "settings-panel", "export-panel"],
};

// Stages whose work happens on the board itself: on a narrow screen the board comes before
// the panels that go with it.
const BOARD_FIRST = { partner: [3], therapist: [2, 3] };

function arrangement(role, stage, { ending = false } = {}) {
  const who = role === "therapist" ? "therapist" : "partner";
  let task = ["part-panel", ...TASKS[who][stage]];
  if (ending) task = ["ending-panel", who === "partner" ? "home-panel" : "export-panel"];
  const more = REST[who].filter((id) => !task.includes(id));
  return { task, more, boardFirst: !ending && BOARD_FIRST[who].includes(stage) };
}

// Put the panels where the arrangement says, moving only what is out of place; the focused
// control keeps the focus.
export function arrange(app) {
  const { task, more, boardFirst } = arrangement(app.role, app.stage, { ending: app.ending });
  const active = document.activeElement;
  const layout = $("layout");
  const taskArea = $("task-area");
  const moreArea = $("more-area");
  const board = $("board-section");
  const top = boardFirst ? [board, taskArea, moreArea] : [taskArea, board, moreArea];
  let moved = placeChildren(layout, top);
  moved = placeChildren(taskArea, present(task)) || moved;
  // What the stage no longer asks for leaves the task area (hidden panels wait at the end).
  const stray = Array.from(taskArea.children).slice(present(task).length);
  if (stray.length) {
    moreArea.append(...stray);
    moved = true;
  }
  moved = placeChildren(moreArea, present(more)) || moved;
  layout.dataset.stage = String(app.stage);
  if (moved && active instanceof HTMLElement && active.isConnected && document.activeElement !== active) {
    active.focus({ preventScroll: true });
  }
}

function present(ids) {
  return ids.map((id) => document.getElementById(id)).filter(Boolean);
}

function placeChildren(parent, children) {
  let moved = false;
  let previous = null;
  for (const child of children) {
    const expected = previous ? previous.nextElementSibling : parent.firstElementChild;
    if (child !== expected) {
      parent.insertBefore(child, expected);
      moved = true;
    }
    previous = child;
  }
  return moved;
}
