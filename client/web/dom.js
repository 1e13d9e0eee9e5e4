// Small DOM helpers. User text only ever goes in through textContent or
// attribute values, never through innerHTML.

export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

// h("button", {type: "button", class: "x", onclick: fn, dataset: {id}}, "text", child)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function show(el, visible) {
  el.hidden = !visible;
}

// A labelled form control, with an optional help line it is described by.
export function field(label, control, help) {
  const id = control.id || uid("f");
  control.id = id;
  const helpEl = help ? h("p", { class: "help", id: `${id}-help`, text: help }) : null;
  if (helpEl) control.setAttribute("aria-describedby", helpEl.id);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, helpEl);
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export function timeOf(at) {
  const when = new Date(at * 1000);
  return h("time", { class: "when", datetime: when.toISOString(), text: TIME.format(when) });
}

let uniqueCounter = 0;
export function uid(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

// Copy text to the clipboard; falls back to selecting an input's text.
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.focus();
      input.select();
      try {
        return document.execCommand("copy");
      } catch {
        return false;
      }
    }
    return false;
  }
}

// Values typed into inputs marked with data-key, check boxes ticked and options chosen survive
// a re-render.
export const drafts = new Map();
const isCheckBox = (el) => el instanceof HTMLInputElement && el.type === "checkbox";
document.addEventListener("input", (event) => {
  const target = event.target;
  if (target instanceof HTMLElement && target.dataset.key &&
      (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
       target instanceof HTMLSelectElement)) {
    drafts.set(target.dataset.key, isCheckBox(target) ? target.checked : target.value);
  }
});

function setDraft(el, value) {
  if (isCheckBox(el)) el.checked = value;
  else if ("value" in el) el.value = value;
}

export function restoreDrafts(root) {
  for (const el of root.querySelectorAll("[data-key]")) {
    if (drafts.has(el.dataset.key)) setDraft(el, drafts.get(el.dataset.key));
  }
}

// Forget drafts once sent, and empty their inputs wherever the page now shows them (an
// event may have drawn the form anew, from the drafts, before the answer came).
export function forgetDrafts(keys) {
  for (const key of keys) {
    drafts.delete(key);
    const el = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (el instanceof HTMLSelectElement) el.selectedIndex = 0;
    else if (el) setDraft(el, isCheckBox(el) ? false : "");
  }
}

function focusKeyIn(root) {
  const active = document.activeElement;
  if (!active || !root.contains(active)) return null;
  return active.dataset.focus || active.dataset.key || null;
}

function refocus(root, key) {
  if (!key) return;
  const el = root.querySelector(`[data-focus="${CSS.escape(key)}"]`) ||
    root.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (el) el.focus({ preventScroll: true });
}

// Replace all children of root, keeping typed drafts and the focused control.
export function replaceChildren(root, children) {
  const key = focusKeyIn(root);
  const hadFocus = root.contains(document.activeElement) && document.activeElement !== root;
  clear(root);
  append(root, [children]);
  restoreDrafts(root);
  refocus(root, key);
  if (hadFocus && !root.contains(document.activeElement) && root.closest("section")) {
    // The focused control went away: keep focus nearby rather than on <body>.
    const heading = root.closest("section").querySelector("h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
}

// Keyed update of a list: items are rebuilt only when their signature changes.
export function reconcile(container, items, keyOf, sigOf, build) {
  const existing = new Map();
  for (const el of Array.from(container.children)) existing.set(el.dataset.item, el);
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    const sig = sigOf(item);
    let el = existing.get(key);
    existing.delete(key);
    if (!el || el.dataset.sig !== sig) {
      const fresh = build(item);
      fresh.dataset.item = key;
      fresh.dataset.sig = sig;
      restoreDrafts(fresh);
      if (el) {
        const focusKey = focusKeyIn(el);
        const hadFocus = el.contains(document.activeElement);
        el.replaceWith(fresh);
        refocus(fresh, focusKey);
        if (hadFocus && !fresh.contains(document.activeElement)) {
          // The focused control is gone from the new item: stay in the item, not on <body>.
          const first = fresh.querySelector("button") || fresh.querySelector("input, select, textarea");
          if (first) first.focus({ preventScroll: true });
        }
      }
      el = fresh;
    }
    const expected = previous ? previous.nextSibling : container.firstChild;
    if (el !== expected) container.insertBefore(el, expected);
    previous = el;
  }
  for (const el of existing.values()) el.remove();
}
