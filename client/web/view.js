// The local mirror of one viewer's view; the same rules as rooms/views.py apply_event.

export class GapError extends Error {
  constructor(expected, got) {
    super(`expected seq ${expected}, got ${got}`);
    this.name = "GapError";
  }
}

export function applyEvent(view, event) {
  if (event.seq !== view.seq + 1) {
    throw new GapError(view.seq + 1, event.seq);
  }
  for (const [coll, key, value] of event.changes || []) {
    if (!view.colls[coll]) view.colls[coll] = {};
    if (value === null || value === undefined) {
      delete view.colls[coll][key];
    } else {
      view.colls[coll][key] = value;
    }
  }
  view.counts = event.counts;
  view.seq = event.seq;
}
