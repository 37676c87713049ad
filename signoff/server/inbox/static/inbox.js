// signoff inbox: times in the viewer's zone, live updates over server-sent events,
// "select all" for bulk decisions. Hand-written; loaded by every page; no inline script.
"use strict";

// The path the app is mounted under ("" at the root), from <body data-base>.
const BASE = () => document.body.dataset.base || "";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) el.textContent = at.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }
}

function selectAll() {
  const all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="item"]')) box.checked = all.checked;
  });
}

function rowFor(data) {
  for (const row of document.querySelectorAll("#inbox-body tr[data-run]")) {
    if (row.dataset.run === data.run_id && row.dataset.key === data.key) return row;
  }
  return null;
}

function inboxLive(status) {
  let timer = null;
  const refresh = async () => {
    const response = await fetch(status.dataset.src, { credentials: "same-origin" });
    if (!response.ok) return;
    const html = await response.text();
    const parsed = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
    const body = parsed.querySelector("#inbox-body");
    const current = document.getElementById("inbox-body");
    if (!body || !current) return;
    const before = new Set([...current.querySelectorAll("tr[data-run]")].map((r) => r.dataset.run + "\n" + r.dataset.key));
    const checked = new Set([...current.querySelectorAll('input[name="item"]:checked')].map((b) => b.value));
    for (const row of body.querySelectorAll("tr[data-run]")) {
      if (!before.has(row.dataset.run + "\n" + row.dataset.key)) row.classList.add("arrived");
      const box = row.querySelector('input[name="item"]');
      if (box && checked.has(box.value)) box.checked = true;
    }
    current.replaceWith(body);
    const count = document.getElementById("inbox-count");
    if (count) count.textContent = body.dataset.total;
    localTimes(body);
  };
  const soon = (delay) => { clearTimeout(timer); timer = setTimeout(refresh, delay); };
  return {
    requested: () => soon(100),
    resolved: (data) => {
      const row = rowFor(data);
      if (row) {
        if (!row.classList.contains("left")) {
          // the count falls at once; the refresh below confirms it from the server
          const count = document.getElementById("inbox-count");
          const n = count ? parseInt(count.textContent, 10) : NaN;
          if (!isNaN(n) && n > 0) count.textContent = String(n - 1);
        }
        row.classList.add("left");
        const cell = row.querySelector("td.summary");
        if (cell && !cell.querySelector(".note")) {
          const note = document.createElement("div");
          note.className = "note";
          note.textContent = data.status.replace("_", " ") + (data.by ? " by " + data.by : "");
          cell.append(note);
        }
        soon(2500);
      } else soon(100);
    },
  };
}

function approvalLive(note) {
  return {
    requested: (data) => {
      if (data.run_id === note.dataset.run && data.key === note.dataset.key) {
        note.textContent = "A new version of this request arrived: reload to see it.";
        note.classList.remove("hidden");
      }
    },
    resolved: (data) => {
      if (data.run_id !== note.dataset.run || data.key !== note.dataset.key || data.status === "pending") return;
      note.textContent = "Decided meanwhile: " + data.status.replace("_", " ") + (data.by ? " by " + data.by : "") + ".";
      note.classList.remove("hidden");
    },
  };
}

function runLive(box) {
  let timer = null;
  const refresh = async () => {
    const response = await fetch(BASE() + "/inbox/run?part=timeline&id=" + encodeURIComponent(box.dataset.run), { credentials: "same-origin" });
    if (!response.ok) return;
    const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = parsed.getElementById("run-live");
    const current = document.getElementById("run-live");
    if (fresh && current) { current.replaceWith(fresh); localTimes(fresh); }
  };
  const moved = (data) => { if (data.run_id === box.dataset.run) { clearTimeout(timer); timer = setTimeout(refresh, 100); } };
  return { requested: moved, resolved: moved, other: moved };
}

// The edit form: what changes, shown before the person confirms.
function editDiff(form) {
  const out = document.getElementById("edit-diff");
  if (!out) return;
  const show = () => {
    out.replaceChildren();
    const changed = [...form.querySelectorAll("[data-original]")].filter((el) => el.value !== el.dataset.original);
    const json = form.querySelector("#value-json");
    if (!changed.length && !(json && json.value !== json.defaultValue)) {
      out.textContent = "No changes yet.";
      return;
    }
    const title = document.createElement("p");
    title.textContent = "You change:";
    const list = document.createElement("ul");
    for (const el of changed) {
      const item = document.createElement("li");
      const label = form.querySelector('label[for="' + el.id + '"]');
      item.textContent = (label ? label.textContent.trim() : el.name) + ": " + el.dataset.original + " → " + el.value;
      list.append(item);
    }
    if (json && json.value !== json.defaultValue) {
      const item = document.createElement("li");
      item.textContent = "the value (JSON)";
      list.append(item);
    }
    out.append(title, list);
  };
  form.addEventListener("input", show);
  form.addEventListener("change", show);
  show();
}

const RUN_EVENTS = ["step_completed", "run_completed", "run_failed", "run_cancelled", "run_blocked", "run_unblocked"];

function connect(status, handler) {
  const source = new EventSource(BASE() + "/inbox/stream");
  const say = (text, down) => { if (status) { status.textContent = text; status.classList.toggle("down", down); } };
  source.addEventListener("open", () => say("Live", false));
  source.addEventListener("error", () => say("Live updates lost; reconnecting…", true));
  const read = (fn) => (event) => { try { fn(JSON.parse(event.data)); } catch (e) { /* ignore */ } };
  source.addEventListener("waiting_for_input", read(handler.requested));
  source.addEventListener("input_resolved", read(handler.resolved));
  if (handler.other) for (const name of RUN_EVENTS) source.addEventListener(name, read(handler.other));
  window.addEventListener("pagehide", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  selectAll();
  const status = document.getElementById("live");
  const note = document.getElementById("live-note");
  const edit = document.querySelector("form.edit-form");
  if (edit) editDiff(edit);
  const run = document.getElementById("run-live");
  if (run) connect(status, runLive(run));
  else if (status && document.getElementById("inbox-body")) connect(status, inboxLive(status));
  else if (note) connect(null, approvalLive(note));
});
