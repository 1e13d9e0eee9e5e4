// The therapist's start page: create a room (or continue from an export) and
// hand out the three links.

import { $, copyText } from "./dom.js";
import { COLOR } from "./rules.js";

const form = $("create-form");
const errorBox = $("create-error");
const button = $("create-button");
const fileInput = $("continue-file");
const fileStatus = $("continue-status");
let continueFrom = null;

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.textContent = "";
  errorBox.hidden = true;
}

// Best effort: prefill the partners from last session's export, whatever its shape.
function prefillFrom(doc) {
  const partners = doc && (doc.partners || (doc.room && doc.room.partners) ||
    (doc.colls && doc.colls.partners));
  if (!partners || typeof partners !== "object") return;
  for (const key of ["a", "b"]) {
    const info = partners[key];
    if (!info || typeof info !== "object") continue;
    if (typeof info.name === "string" && !$(`name-${key}`).value) $(`name-${key}`).value = info.name;
    if (typeof info.color === "string" && COLOR.test(info.color)) {
      $(`color-${key}`).value = info.color;
    }
  }
}

fileInput.addEventListener("change", async () => {
  continueFrom = null;
  fileStatus.textContent = "";
  const file = fileInput.files && fileInput.files[0];
  if (!file) return;
  try {
    const doc = JSON.parse(await file.text());
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("not an object");
    continueFrom = doc;
    prefillFrom(doc);
    fileStatus.textContent = "Last session's export is ready to continue from.";
  } catch {
    fileInput.value = "";
    fileStatus.textContent = "This file is not a Partsboard JSON export. Choose the .json file you downloaded.";
  }
});

const FIELD_LABELS = {
  partners: "the partners' names and colours",
  name: "a partner's name",
  color: "a partner's colour",
  continue_from: "last session's export",
  therapist_sees_drafts: "who may see drafts",
};

async function create(event) {
  event.preventDefault();
  clearError();
  const names = { a: $("name-a").value.trim(), b: $("name-b").value.trim() };
  for (const key of ["a", "b"]) {
    if (!names[key]) {
      showError(`Please enter the ${key === "a" ? "first" : "second"} partner's name.`);
      $(`name-${key}`).focus();
      return;
    }
  }
  const body = {
    partners: {
      a: { name: names.a, color: $("color-a").value },
      b: { name: names.b, color: $("color-b").value },
    },
    therapist_sees_drafts: $("drafts-therapist").checked,
  };
  if (continueFrom) body.continue_from = continueFrom;
  const headers = { "Content-Type": "application/json" };
  const key = $("practice-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  button.disabled = true;
  button.textContent = "Creating…";
  let response;
  try {
    response = await fetch("/api/rooms", {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    showError("The server could not be reached. Check your connection and try again.");
    return;
  } finally {
    button.disabled = false;
    button.textContent = "Create the session";
  }
  if (response.status === 401 || response.status === 403) {
    showError("The practice key was not accepted. Check it and try again.");
    $("practice-key").focus();
    return;
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok || !data || !data.links) {
    const field = data && data.field ? FIELD_LABELS[data.field] || data.field : null;
    const message = data && typeof data.message === "string" ? data.message : "The session could not be created.";
    showError(field ? `${message} (Check ${field}.)` : message);
    return;
  }
  showLinks(data.links);
}

function showLinks(links) {
  $("link-a").value = links.a;
  $("link-b").value = links.b;
  $("link-therapist").value = links.therapist;
  $("link-a-label").textContent = `Link for ${$("name-a").value.trim()}`;
  $("link-b-label").textContent = `Link for ${$("name-b").value.trim()}`;
  $("open-room").href = links.therapist;
  form.hidden = true;
  $("links").hidden = false;
  $("links-title").focus();
}

for (const copy of document.querySelectorAll("button.copy")) {
  copy.addEventListener("click", async () => {
    const input = $(copy.dataset.copy);
    const ok = await copyText(input.value, input);
    $("copy-status").textContent = ok ? "Copied." : "Select the link and copy it by hand.";
  });
}

form.addEventListener("submit", create);
