"""The "Nango syncs" page: self-contained HTML, CSS and vanilla JavaScript (no build step, nothing from a CDN).

The page is served at ``/nango/ui`` and shown inside Airflow's UI (nav item "Nango syncs"). It fetches
``/nango/v1/syncs`` with the user's session cookie, relative to its own URL so that it also works when Airflow
is served under a sub-path, and builds every element with ``textContent`` (nothing from the API is parsed as
HTML). Two views share the page: the list of syncs (``#/``) and a sync's page (``#/sync/<id>``: its definition,
charts and runs, from ``/nango/v1/syncs/<id>`` and ``/nango/v1/syncs/<id>/runs``).

Actions (pause, resume, trigger, cancel) go through ``PUT /nango/v1/syncs`` with the user's own session, so
Airflow's roles decide on the server; the page only disables the buttons the API says the user may not use
(``actions`` of each sync), and says why. Times are shown in the time zone chosen in Airflow's UI (its
``timezone`` entry of the browser's localStorage, else the browser's own), the colours follow Airflow's light
or dark theme (its ``theme`` entry).
"""

from __future__ import annotations

from typing import Final

_ICON_PATHS: Final = (
    '<path d="M18 12a6 6 0 0 1-10.3 4.2"/><path d="M6 12a6 6 0 0 1 10.3-4.2"/>'
    '<path d="M16.5 4.5v3.2h-3.2"/><path d="M7.5 19.5v-3.2h3.2"/>'
)
# A glyph on a filled tile with a light edge: visible on Airflow's light nav, its dark nav, and the blue
# background of the selected nav item (an outline icon in one colour disappears on one of them).
ICON_SVG: Final = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
    '<rect x="1" y="1" width="22" height="22" rx="5" fill="#0f766e" stroke="#ffffff" stroke-width="1.5"/>'
    '<g fill="none" stroke="#ffffff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    f"{_ICON_PATHS}</g></svg>"
)
ICON_DARK_SVG: Final = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
    '<rect x="1" y="1" width="22" height="22" rx="5" fill="#5eead4" stroke="#042f2e" stroke-width="1.5"/>'
    '<g fill="none" stroke="#042f2e" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    f"{_ICON_PATHS}</g></svg>"
)

PAGE_HTML: Final = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nango syncs</title>
<script>
  // Airflow's theme choice (next-themes, localStorage "theme"), before the first paint
  try { const t = localStorage.getItem("theme"); if (t === "light" || t === "dark") document.documentElement.dataset.theme = t; } catch (e) {}
</script>
<style>
  :root {
    --bg: #ffffff; --fg: #1f2933; --muted: #5b6673; --line: #e4e7eb; --head: #f5f7fa; --panel: #fafbfc;
    --ok: #15803d; --bad: #b91c1c; --run: #1d4ed8; --idle: #5b6673; --accent: #0f766e; --warn: #b45309;
    --added: #15803d; --updated: #2563eb; --deleted: #dc2626; --unchanged: #9ca3af; --focus: #2563eb;
    color-scheme: light;
  }
  :root[data-theme="dark"] {
    --bg: #111827; --fg: #e5e7eb; --muted: #a3acb9; --line: #2b3648; --head: #1a2333; --panel: #151e2e;
    --ok: #4ade80; --bad: #f87171; --run: #60a5fa; --idle: #a3acb9; --accent: #2dd4bf; --warn: #fbbf24;
    --added: #4ade80; --updated: #60a5fa; --deleted: #f87171; --unchanged: #6b7280; --focus: #93c5fd;
    color-scheme: dark;
  }
  @media (prefers-color-scheme: dark) {
    :root:not([data-theme="light"]) {
      --bg: #111827; --fg: #e5e7eb; --muted: #a3acb9; --line: #2b3648; --head: #1a2333; --panel: #151e2e;
      --ok: #4ade80; --bad: #f87171; --run: #60a5fa; --idle: #a3acb9; --accent: #2dd4bf; --warn: #fbbf24;
      --added: #4ade80; --updated: #60a5fa; --deleted: #f87171; --unchanged: #6b7280; --focus: #93c5fd;
      color-scheme: dark;
    }
  }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 20px 24px; background: var(--bg); color: var(--fg);
         font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: baseline; gap: 12px 16px; flex-wrap: wrap; margin-bottom: 14px; }
  h1 { font-size: 20px; margin: 0; } h2 { font-size: 16px; margin: 22px 0 8px; } h3 { font-size: 14px; margin: 14px 0 6px; }
  .muted { color: var(--muted); font-size: 12px; }
  button { font: inherit; font-size: 13px; padding: 3px 10px; border: 1px solid var(--line); border-radius: 6px;
           background: var(--head); color: var(--fg); cursor: pointer; }
  button.primary { background: var(--accent); border-color: var(--accent); color: var(--bg); }
  button.danger { color: var(--bad); border-color: var(--bad); }
  button:disabled { cursor: not-allowed; opacity: .5; }
  :focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
  .actions { display: flex; gap: 6px; flex-wrap: wrap; }
  table { border-collapse: collapse; width: 100%; }
  .scroll { overflow-x: auto; }
  th, td { padding: 8px 5px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
  th { background: var(--head); font-size: 11px; text-transform: uppercase; letter-spacing: .02em;
       color: var(--muted); font-weight: 600; vertical-align: middle; }
  td { white-space: nowrap; }
  .dag { font-size: 12px; }
  td.actions-cell .actions { width: 150px; gap: 4px; }
  td.actions-cell button { font-size: 12px; padding: 2px 8px; }
  td.sync-cell { white-space: normal; min-width: 150px; max-width: 230px; overflow-wrap: anywhere; }
  td.schedule-cell { white-space: normal; max-width: 110px; }
  td.chart-cell .muted { display: block; }
  td.chart-cell svg { vertical-align: middle; margin-right: 6px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .name { font-weight: 600; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
           border: 1px solid currentColor; white-space: nowrap; }
  .source { color: var(--muted); margin-left: 6px; }
  .success, .active { color: var(--ok); }
  .failed, .abandoned { color: var(--bad); }
  .cancelled { color: var(--idle); }
  .retrying { color: var(--warn); }
  .running, .queued { color: var(--run); }
  .paused, .none, .not-parsed { color: var(--idle); }
  td.last-run-cell { white-space: normal; min-width: 180px; max-width: 340px; }
  .run-error { color: var(--bad); font-size: 12px; margin-top: 4px; white-space: pre-wrap;
               overflow-wrap: anywhere; max-height: 9.5em; overflow-y: auto; }
  .run-error.retrying { color: var(--warn); } .run-error.cancelled { color: var(--idle); }
  pre.full-error { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 0; font-size: 12px;
                   color: var(--bad); background: var(--panel); border: 1px solid var(--line); padding: 8px; border-radius: 6px; }
  a { color: var(--accent); }
  .error { color: var(--bad); margin: 8px 0; white-space: pre-wrap; }
  .panel { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 0 0 14px; background: var(--panel); }
  .panel.bad { border-color: var(--bad); }
  .panel h2 { margin-top: 0; font-size: 15px; }
  ul.definition-errors { margin: 0; padding-left: 18px; }
  ul.definition-errors li { margin: 6px 0; }
  .where { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  .hint { color: var(--fg); } .hint::before { content: "Hint: "; font-weight: 600; }
  .empty-state { padding: 18px; border: 1px dashed var(--line); border-radius: 8px; margin: 12px 0; }
  .empty-state pre, pre.definition { background: var(--panel); border: 1px solid var(--line); padding: 10px;
      border-radius: 6px; overflow-x: auto; font-size: 12px; }
  #notice { min-height: 1.4em; margin: 0 0 8px; position: sticky; top: 0; z-index: 2; background: var(--bg); }
  #notice:not(:empty) { padding: 6px 10px; border: 1px solid currentColor; border-radius: 6px; }
  #notice.ok { color: var(--ok); } #notice.bad { color: var(--bad); }
  .reason { color: var(--muted); font-size: 12px; margin: 4px 0 10px; }
  dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
  dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
  .charts { display: flex; flex-wrap: wrap; gap: 16px; }
  figure { margin: 0; flex: 1 1 420px; max-width: 720px; }
  figcaption { font-weight: 600; margin-bottom: 4px; }
  svg.big { width: 100%; height: auto; display: block; }
  svg .axis { stroke: var(--muted); } svg .grid { stroke: var(--line); }
  svg text { fill: var(--muted); font-size: 11px; font-family: inherit; }
  svg .added { fill: var(--added); } svg .updated { fill: var(--updated); } svg .deleted { fill: var(--deleted); }
  svg .unchanged-line { stroke: var(--unchanged); fill: none; stroke-width: 2; stroke-dasharray: 4 3; }
  svg .unchanged-dot { fill: var(--unchanged); }
  svg rect.success { fill: var(--ok); } svg rect.failed, svg rect.abandoned { fill: var(--bad); }
  svg rect.running { fill: var(--run); } svg rect.cancelled { fill: var(--idle); } svg rect.retrying { fill: var(--warn); }
  svg.chart line { stroke: var(--line); }
  .legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin-top: 4px; }
  .legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 4px;
                         border-radius: 2px; background: var(--swatch); vertical-align: -1px; }
  dialog { border: 1px solid var(--line); border-radius: 10px; background: var(--bg); color: var(--fg);
           max-width: min(480px, 92vw); padding: 16px 18px; }
  dialog::backdrop { background: rgba(0, 0, 0, .35); }
  dialog label { display: block; margin: 10px 0; }
  dialog input[type=number] { font: inherit; width: 12em; padding: 3px 6px; margin-left: 6px; }
  dialog .actions { justify-content: flex-end; margin-top: 14px; }
  .field-error { color: var(--bad); font-size: 12px; min-height: 1.2em; }
  @media (max-width: 760px) {
    body { padding: 12px; }
    table.syncs thead { display: none; }
    table.syncs tr { display: block; border: 1px solid var(--line); border-radius: 8px; margin-bottom: 10px; padding: 4px 0; }
    table.syncs td { display: grid; grid-template-columns: 8.5em 1fr; gap: 8px; border: 0; padding: 4px 10px;
                     white-space: normal; min-width: 0; max-width: none; }
    table.syncs td::before { content: attr(data-label); color: var(--muted); font-size: 12px; }
    table.syncs td.num { text-align: left; }
    table.syncs td.blank { display: none; }
    table.runs th:nth-child(n+6), table.runs td:nth-child(n+6) { display: none; }
    table.runs td.error-cell { display: table-cell; }
  }
</style>
</head>
<body>
<header>
  <h1 id="title">Nango syncs</h1>
  <span class="muted" id="updated">loading...</span>
  <span class="muted" id="timezone"></span>
  <button type="button" id="refresh">Refresh</button>
</header>
<div id="notice" role="status" aria-live="polite"></div>
<div id="errors"></div>
<main id="view"><p class="muted">Loading...</p></main>

<dialog id="trigger-dialog" aria-labelledby="trigger-title">
  <form method="dialog" id="trigger-form" novalidate>
    <h2 id="trigger-title">Trigger</h2>
    <p class="muted">The same params as Airflow's trigger form.</p>
    <label><input type="checkbox" id="full-refresh" name="full_refresh"> Full refresh
      <span class="muted">(fetch everything again; records not seen are marked deleted)</span></label>
    <label>Max records <input type="number" id="max-total" name="max_total" min="1" step="1" placeholder="no limit"></label>
    <div class="field-error" id="trigger-error" role="alert"></div>
    <div class="actions">
      <button type="button" id="trigger-cancel">Close</button>
      <button type="submit" class="primary" id="trigger-confirm">Trigger</button>
    </div>
  </form>
</dialog>
<dialog id="confirm-dialog" aria-labelledby="confirm-title">
  <form method="dialog" id="confirm-form">
    <h2 id="confirm-title">Are you sure?</h2>
    <p id="confirm-text"></p>
    <div class="actions">
      <button type="button" id="confirm-no">Keep it</button>
      <button type="submit" class="danger" id="confirm-yes">Confirm</button>
    </div>
  </form>
</dialog>

<script>
"use strict";
const API = "v1/syncs";          // relative to /nango/ui
const UI_ROOT = "../";           // Airflow's UI, for its DAG, run and log pages
const REFRESH_MS = 10000;
const SVG_NS = "http://www.w3.org/2000/svg";
const COUNTS = ["added", "updated", "unchanged", "deleted"];
let current = null;              // what the view shows: {kind: "list"} or {kind: "sync", id}
let lastData = null;

// -- building blocks -----------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// -- time, in the zone Airflow's UI shows ------------------------------------------------------------------

function timeZone() {
  // Airflow's UI keeps the user's choice in localStorage "timezone" (JSON), else uses the browser's zone
  try {
    const stored = JSON.parse(localStorage.getItem("timezone") || "null");
    if (stored) { new Intl.DateTimeFormat("en", {timeZone: stored}); return stored; }
  } catch (e) { /* an unreadable or unknown value: the browser's zone */ }
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function formatTime(text, withZone) {
  if (!text) return "";
  const date = new Date(text);
  if (isNaN(date)) return String(text);
  const parts = {};
  const options = {timeZone: timeZone(), year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                   minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short"};
  for (const part of new Intl.DateTimeFormat("en-US", options).formatToParts(date)) parts[part.type] = part.value;
  const shown = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  return withZone === false ? shown : shown + " " + parts.timeZoneName;
}

function ago(text) {
  if (!text) return "";
  const seconds = Math.round((Date.now() - new Date(text).getTime()) / 1000);
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
}

function runSeconds(run) {
  if (run.duration_seconds !== undefined && run.duration_seconds !== null) return run.duration_seconds;
  if (!run.started_at || !run.ended_at) return null;
  return (new Date(run.ended_at) - new Date(run.started_at)) / 1000;
}

// -- talking to the API --------------------------------------------------------------------------------

async function getJson(path) {
  const response = await fetch(path, {credentials: "same-origin", headers: {Accept: "application/json"}});
  if (response.status === 401) throw new NotLoggedIn();
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.detail) || response.status + " " + response.statusText);
  return body;
}

class NotLoggedIn extends Error {}

async function act(sync, action, conf) {
  const body = {action: action, sync_id: sync.id};
  if (conf) body.conf = conf;
  const response = await fetch(API, {method: "PUT", credentials: "same-origin",
    headers: {"Content-Type": "application/json", Accept: "application/json"}, body: JSON.stringify(body)});
  const result = await response.json().catch(() => ({}));
  if (!response.ok) {
    const where = result.field ? ` (${result.field})` : "";
    throw new Error(`${response.status}: ${result.detail || response.statusText}${where}`);
  }
  return result;
}

function notice(text, ok) {
  const node = document.getElementById("notice");
  node.className = ok ? "ok" : "bad";
  node.textContent = text;
}

// -- actions -------------------------------------------------------------------------------------------

function isActive(sync) {
  const run = sync.last_dag_run;
  return !!run && (run.state === "queued" || run.state === "running");
}

function actionButton(sync, action, label, handler, extraClass) {
  const permission = (sync.actions || {})[action] || {allowed: false, reason: "unknown permissions"};
  let reason = permission.allowed ? null : permission.reason;
  if (!reason && action === "cancel" && !isActive(sync)) reason = "no queued or running run to cancel";
  const button = el("button", {type: "button", class: extraClass || null, "data-action": action,
    "data-key": sync.id + ":" + action, disabled: reason !== null, title: reason,
    "aria-label": `${label} ${sync.id}` + (reason ? ` (unavailable: ${reason})` : "")}, label);
  button.addEventListener("click", () => handler(sync, button));
  return button;
}

function actions(sync) {
  const toggle = sync.is_paused
    ? actionButton(sync, "resume", "Resume", (s) => runAction(s, "resume", null, `Resumed ${s.id}.`))
    : actionButton(sync, "pause", "Pause", (s) => runAction(s, "pause", null, `Paused ${s.id}.`));
  return el("div", {class: "actions", "data-field": "actions"},
    toggle,
    actionButton(sync, "trigger", "Trigger", openTrigger),
    actionButton(sync, "cancel", "Cancel run", confirmCancel, "danger"));
}

async function runAction(sync, action, conf, done) {
  notice(`${action} ${sync.id}...`, true);
  try {
    const result = await act(sync, action, conf);
    let text = done;
    if (action === "trigger") text = `Triggered ${sync.id}: run ${result.dag_run_id} is ${result.state}.`;
    if (action === "cancel") {
      text = result.cancelled.length ? `Cancelled ${sync.id}: ${result.cancelled.join(", ")} marked failed.`
                                     : `${sync.id} had no queued or running run.`;
    }
    notice(text, true);
  } catch (error) {
    notice(`Could not ${action} ${sync.id}: ${error.message}`, false);
  }
  await load();
}

let triggerTarget = null;
let triggerOpener = null;

function openTrigger(sync, button) {
  triggerTarget = sync;
  triggerOpener = button;
  document.getElementById("trigger-title").textContent = "Trigger " + sync.id;
  document.getElementById("full-refresh").checked = false;
  document.getElementById("max-total").value = "";
  document.getElementById("trigger-error").textContent = "";
  document.getElementById("trigger-dialog").showModal();
}

function triggerConf() {
  const conf = {full_refresh: document.getElementById("full-refresh").checked};
  const raw = document.getElementById("max-total").value.trim();
  if (raw === "") { conf.max_total = null; return conf; }
  const number = Number(raw);
  if (!Number.isInteger(number) || number < 1) throw new Error("Max records: expected a whole number of at least 1, or nothing");
  conf.max_total = number;
  return conf;
}

async function confirmTrigger(event) {
  event.preventDefault();
  let conf;
  try { conf = triggerConf(); } catch (error) {
    document.getElementById("trigger-error").textContent = error.message;
    return;
  }
  const sync = triggerTarget;
  if (conf.full_refresh && !(await confirmed(`Full refresh of ${sync.id}: every record is fetched again and the ` +
      `records the API no longer returns are marked deleted in ${sync.table || "its table"}.`, "Full refresh"))) {
    return;
  }
  closeDialog("trigger-dialog", triggerOpener);
  await runAction(sync, "trigger", conf);
}

let confirmResolve = null;

function confirmed(text, yesLabel) {
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yesLabel;
  const dialog = document.getElementById("confirm-dialog");
  dialog.showModal();
  document.getElementById("confirm-no").focus();
  return new Promise((resolve) => { confirmResolve = resolve; });
}

function answer(value) {
  document.getElementById("confirm-dialog").close();
  if (confirmResolve) { confirmResolve(value); confirmResolve = null; }
}

async function confirmCancel(sync, button) {
  const ok = await confirmed(`Cancel the queued and running runs of ${sync.id}? They are marked failed and a ` +
    "running task is stopped; the next run resumes from the last checkpoint.", "Cancel run");
  button.focus();
  if (ok) await runAction(sync, "cancel");
}

function closeDialog(id, opener) {
  document.getElementById(id).close();
  if (opener && document.contains(opener)) opener.focus();
}

// -- the list of syncs ---------------------------------------------------------------------------------

function state(sync) {
  if (!sync.parsed) return el("span", {class: "badge not-parsed"}, "not parsed yet");
  return el("span", {class: "badge " + (sync.is_paused ? "paused" : "active")}, sync.is_paused ? "paused" : "active");
}

function lastRun(sync) {
  const run = sync.last_run;
  const dagRun = sync.last_dag_run;
  if (dagRun && dagRun.state === "queued" && (!run || new Date(dagRun.run_after) > new Date(run.started_at))) {
    return el("span", {class: "badge queued", "data-field": "status"}, "queued");
  }
  if (!run) return el("span", {class: "none"}, "never run");
  const when = run.ended_at || run.started_at;
  const shown = el("span", {class: "last-run"},
    el("span", {class: "badge " + run.status, "data-field": "status"}, run.status), " ",
    el("time", {class: "muted", datetime: when, title: formatTime(when)}, ago(when)),
    ...(run.connection_id ? [" ", el("span", {class: "muted", "data-field": "connection"}, run.connection_id)] : []),
    ...(run.warnings || []).map((text) => el("span", {class: "badge warning", "data-field": "warning", title: text},
      "warning")));
  if (run.error) {
    // the whole message, readable without hovering (the try's error while it waits for its retry)
    const prefix = run.status === "retrying" ? "will retry: " : "";
    shown.append(el("div", {class: "run-error " + run.status, "data-field": "error"}, prefix + run.error));
  }
  return shown;
}

function sparkline(history, syncId) {
  const width = 96, height = 28, gap = 2;
  const max = Math.max(1, ...history.map((run) => run.fetched || 0));
  const label = history.length
    ? `${syncId}: records fetched in the last ${history.length} runs, oldest first: ` +
      history.map((run) => `${run.fetched} (${run.status})`).join(", ")
    : `${syncId}: no runs yet`;
  const svg = svgEl("svg", {class: "chart", width: width, height: height, role: "img", "aria-label": label},
    svgEl("title", {}, label),
    svgEl("line", {x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5}));
  const slot = width / Math.max(history.length, 10);
  history.forEach((run, index) => {
    const barHeight = Math.max(1, Math.round(((run.fetched || 0) / max) * (height - 2)));
    svg.append(svgEl("rect", {x: (index * slot + gap / 2).toFixed(1), y: height - barHeight,
      width: Math.max(1, slot - gap).toFixed(1), height: barHeight, class: run.status},
      svgEl("title", {}, `${run.fetched} fetched, ${run.added} added, ${run.updated} updated, ${run.deleted} ` +
        `deleted (${run.status}, ${formatTime(run.started_at)})`)));
  });
  return svg;
}

function syncLink(sync) {
  return el("a", {class: "name", href: "#/sync/" + encodeURIComponent(sync.id), "data-field": "open"}, sync.id);
}

function row(sync) {
  const run = sync.last_run || {};
  // one block per cell, so that the narrow layout's grid has two items: the label and the value
  const cell = (label, attrs, ...children) => el("td", {"data-label": label, ...attrs}, el("div", {}, ...children));
  const count = (name) => cell(name[0].toUpperCase() + name.slice(1), {class: "num" + (run[name] === undefined ? " blank" : ""), "data-field": name,
    title: name === "deleted" && sync.definition && sync.definition.deletes ? "deletes: " + sync.definition.deletes : null},
    run[name] ?? "");
  return el("tr", {"data-sync": sync.id},
    cell("Sync", {class: "sync-cell"}, syncLink(sync),
      el("span", {class: "badge source"}, sync.source === "dag_file" ? "dag file" : sync.source),
      el("div", {class: "muted"}, sync.table || ""),
      el("div", {class: "dag"}, dagLink(sync.dag_id))),
    cell("Schedule", {class: "schedule-cell", "data-field": "schedule"}, sync.schedule || "triggered only"),
    cell("State", {"data-field": "state"}, state(sync)),
    cell("Last run", {class: "last-run-cell"}, lastRun(sync)),
    count("added"), count("updated"), count("unchanged"), count("deleted"),
    cell("Recent runs", {class: "chart-cell", "data-field": "chart"}, sparkline(sync.history || [], sync.id),
      el("span", {class: "muted"}, run.fetched === undefined ? "" : run.fetched + " fetched")),
    cell("Actions", {class: "actions-cell"}, actions(sync)));
}

function dagLink(dagId) {
  // may wrap after the "nango_sync_" prefix, nowhere else
  const prefix = "nango_sync_";
  const link = el("a", {href: UI_ROOT + "dags/" + encodeURIComponent(dagId), target: "_top"});
  if (dagId.startsWith(prefix)) link.append(prefix, el("wbr"), dagId.slice(prefix.length));
  else link.append(dagId);
  return link;
}

function emptyState() {
  return el("section", {class: "empty-state", "data-field": "empty"},
    el("h2", {}, "No syncs yet"),
    el("p", {}, "Add a sync in one of two ways:"),
    el("h3", {}, "1. A YAML file in the syncs folder"),
    el("p", {}, "Put a file such as contacts.yaml in the folder named by NANGO_SYNCS_PATH on the machines that " +
      "run Airflow (make airflow prints it). The DAG processor picks it up within a minute:"),
    el("pre", {}, "syncs:\n  contacts:\n    http_conn_id: my_api\n    url: /v1/contacts\n" +
      "    response_path: results\n    unique_key: id\n    paging_response_path: next\n    frequency: 30m\n"),
    el("h3", {}, "2. POST /nango/v1/syncs"),
    el("pre", {}, "curl -X POST \"$AIRFLOW_URL/nango/v1/syncs\" \\\n  -H \"Authorization: Bearer $TOKEN\" " +
      "-H \"Content-Type: application/json\" \\\n  -d '{\"name\": \"contacts\", \"url\": \"https://api.example.com/v1/contacts\", " +
      "\"response_path\": \"results\", \"unique_key\": \"id\", \"paging_response_path\": \"next\"}'"),
    el("p", {class: "muted"}, "docs/adding-a-sync.md and docs/rest-api.md describe every field."));
}

function viewerNote(data) {
  // said once above the table: the buttons' own tooltips name each DAG
  const blocked = data.syncs.filter((sync) => Object.values(sync.actions || {}).some((p) => !p.allowed && / may not /.test(p.reason || "")));
  if (!blocked.length) return null;
  const which = blocked.length === data.syncs.length ? "these syncs" : `${blocked.length} of these syncs`;
  return el("p", {class: "reason", "data-field": "permissions"},
    `User '${data.user}' may not change ${which} (Airflow role): pause, resume, trigger and cancel are disabled. ` +
    "Ask an Airflow admin for a role that may edit DAGs.");
}

function showList(data) {
  const syncs = data.syncs;
  const view = document.getElementById("view");
  if (!syncs.length) {
    view.replaceChildren(emptyState());
    return;
  }
  const head = ["Sync", "Schedule", "State", "Last run", "Added", "Updated", "Unchanged", "Deleted",
                "Recent runs", "Actions"];
  const numeric = new Set(["Added", "Updated", "Unchanged", "Deleted"]);
  view.replaceChildren(
    viewerNote(data) || "",
    el("div", {class: "scroll"}, el("table", {class: "syncs"},
      el("caption", {class: "muted", style: "text-align:left; caption-side: bottom; padding-top: 6px"},
        "Counts are those of the last run. Open a sync for its runs, charts and definition."),
      el("thead", {}, el("tr", {}, ...head.map((name) => el("th", {scope: "col", class: numeric.has(name) ? "num" : null}, name)))),
      el("tbody", {id: "syncs"}, ...syncs.map(row)))));
}

// -- definition errors, at the top ---------------------------------------------------------------------

function showErrors(data) {
  const shown = [];
  const structured = data.definition_errors || [];
  if (structured.length) {
    shown.push(el("section", {class: "panel bad", "data-field": "definition-errors", "aria-labelledby": "definition-errors-title"},
      el("h2", {id: "definition-errors-title", class: "error"},
        "Sync definitions that could not be loaded (Airflow shows them under Import errors):"),
      el("ul", {class: "definition-errors"}, ...structured.map(definitionError)),
      el("p", {class: "muted"}, "Every valid sync is loaded. Fix the file (or POST the sync again) and the sync appears here within a minute.")));
  }
  const known = new Set(structured.map((item) => item.text));
  for (const text of data.errors || []) {
    if (!known.has(text)) shown.push(el("div", {class: "error"}, text));
  }
  document.getElementById("errors").replaceChildren(...shown);
}

function definitionError(item) {
  const where = [];
  if (item.file) where.push(el("span", {"data-field": "file"}, item.file));
  if (item.sync) where.push(el("span", {}, "sync ", el("strong", {"data-field": "sync"}, item.sync)));
  if (item.field) where.push(el("span", {}, "field ", el("strong", {"data-field": "field"}, item.field)));
  const parts = [];
  where.forEach((part, index) => { if (index) parts.push(" · "); parts.push(part); });
  return el("li", {class: "definition-error", title: item.text},
    parts.length ? el("div", {class: "where"}, ...parts) : null,
    el("div", {class: "error", "data-field": "message"}, item.message),
    item.hint ? el("div", {class: "hint", "data-field": "hint"}, item.hint) : null);
}

// -- a sync's page -------------------------------------------------------------------------------------

function facts(pairs) {
  return el("dl", {class: "facts"}, ...pairs.filter(([, value]) => value !== null && value !== undefined && value !== "")
    .flatMap(([name, value]) => [el("dt", {}, name), el("dd", {"data-field": name.toLowerCase().replace(/ /g, "-")}, value)]));
}

function connections(definition) {
  if (!definition) return null;
  const named = [];
  if (definition.http_conn_id) named.push("HTTP: " + definition.http_conn_id);
  if (definition.postgres_conn_id) named.push("Postgres: " + definition.postgres_conn_id);
  const each = definition.connections;  // one run per connection (a tenant each)
  if (Array.isArray(each) && each.length) named.push("one run each: " + each.join(", "));
  else if (typeof each === "string") named.push("one run each: " + each);
  return named.join("; ");
}

function whereDefined(sync) {
  if (sync.source === "api") return "the REST API (POST /nango/v1/syncs)" + (sync.created_at ? ", " + formatTime(sync.created_at) : "");
  if (sync.source === "yaml") return "YAML file " + (sync.defined_in || "?") + " in the syncs folder";
  return "DAG file " + (sync.defined_in || "?");
}

function connectionRuns(sync) {
  // a sync with `connections`: the latest try of each connection
  const runs = Object.entries(sync.connections || {});
  if (!runs.length) return null;
  const head = ["Connection", "Status", "Started", "Added", "Updated", "Unchanged", "Deleted"];
  const rows = runs.map(([connection, run]) => el("tr", {"data-connection": connection},
    el("td", {}, connection), el("td", {}, runStatus(run)),
    el("td", {}, el("time", {datetime: run.started_at}, formatTime(run.started_at))),
    ...["added", "updated", "unchanged", "deleted"].map((name) => el("td", {class: "num", "data-field": name}, run[name] ?? ""))));
  const errors = runs.filter(([, run]) => run.error).map(([connection, run]) =>
    el("pre", {class: "full-error", "data-field": "error", "data-connection": connection}, connection + ": " + run.error));
  return [el("h3", {}, "Last run of each connection"),
    el("div", {class: "scroll"}, el("table", {class: "runs connections"},
      el("thead", {}, el("tr", {}, ...head.map((name) => el("th", {scope: "col"}, name)))), el("tbody", {}, ...rows))),
    ...errors];
}

function runStatus(run, sync) {
  return el("span", {class: "badge " + run.status, "data-field": "status"}, run.status);
}

function runsTable(runs, sync) {
  const perConnection = runs.some((run) => run.connection_id);
  const head = ["Status", "Started", "Duration", "Try", "Fetched", "Pages", "Added", "Updated", "Unchanged", "Deleted", "Airflow"];
  if (perConnection) head.splice(1, 0, "Connection");
  const numeric = new Set(["Try", "Pages", "Fetched", "Added", "Updated", "Unchanged", "Deleted"]);
  const rows = [];
  for (const run of runs) {
    const links = run.links
      ? el("span", {}, el("a", {href: UI_ROOT + run.links.dag_run, target: "_top", "data-field": "run-link"}, "run"), " · ",
          el("a", {href: UI_ROOT + run.links.task_log, target: "_top", "data-field": "log-link"}, "log"))
      : "";
    const num = (name) => el("td", {class: "num", "data-field": name}, run[name] ?? "");
    rows.push(el("tr", {"data-run": run.run_id, "data-try": run.try_number},
      el("td", {}, runStatus(run, sync)),
      perConnection ? el("td", {"data-field": "connection"}, run.connection_id || "") : null,
      el("td", {}, el("time", {datetime: run.started_at}, formatTime(run.started_at))),
      el("td", {class: "num", "data-field": "duration"}, run.status === "running" ? "running" : duration(runSeconds(run))),
      num("try_number"), num("fetched"), num("pages"), num("added"), num("updated"), num("unchanged"), num("deleted"),
      el("td", {}, links)));
    if (run.error) {
      const prefix = run.status === "retrying" ? "will retry: " : "";
      rows.push(el("tr", {class: "error-row", "data-error-of": run.run_id},
        el("td", {colspan: head.length, class: "error-cell"},
          el("pre", {class: "full-error", "data-field": "error"}, prefix + run.error))));
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", {colspan: head.length, class: "muted"}, "No runs yet.")));
  return el("div", {class: "scroll"}, el("table", {class: "runs"},
    el("thead", {}, el("tr", {}, ...head.map((name) => el("th", {scope: "col", class: numeric.has(name) ? "num" : null}, name)))),
    el("tbody", {}, ...rows)));
}

function axisLabel(value) {
  if (value >= 1e6) return (value / 1e6).toFixed(value >= 1e7 ? 0 : 1) + "M";
  if (value >= 1e3) return (value / 1e3).toFixed(value >= 1e4 ? 0 : 1) + "k";
  return String(Number(value.toPrecision(3)));
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function frame(runs, options) {
  // a chart's frame: plot area, y axis (left, and optionally right), x labels of the first and last run
  const width = 640, height = 240, left = 48, right = options.rightMax ? 48 : 12, top = 12, bottom = 40;
  const plot = {x: left, y: top, w: width - left - right, h: height - top - bottom};
  const svg = svgEl("svg", {class: "big " + options.cls, viewBox: `0 0 ${width} ${height}`, role: "img",
                            "aria-labelledby": options.id + "-title " + options.id + "-desc"},
    svgEl("title", {id: options.id + "-title"}, options.title),
    svgEl("desc", {id: options.id + "-desc"}, options.desc));
  const y = (value, max) => plot.y + plot.h - (value / max) * plot.h;
  for (let i = 0; i <= 4; i++) {
    const value = options.max * i / 4;
    svg.append(svgEl("line", {class: "grid", x1: plot.x, x2: plot.x + plot.w, y1: y(value, options.max), y2: y(value, options.max)}),
      svgEl("text", {x: plot.x - 6, y: y(value, options.max) + 4, "text-anchor": "end"}, axisLabel(value)));
    if (options.rightMax) {
      const other = options.rightMax * i / 4;
      svg.append(svgEl("text", {x: plot.x + plot.w + 6, y: y(other, options.rightMax) + 4}, axisLabel(other)));
    }
  }
  svg.append(svgEl("line", {class: "axis", x1: plot.x, x2: plot.x, y1: plot.y, y2: plot.y + plot.h}),
    svgEl("line", {class: "axis", x1: plot.x, x2: plot.x + plot.w, y1: plot.y + plot.h, y2: plot.y + plot.h}),
    svgEl("text", {x: 12, y: plot.y + plot.h / 2, transform: `rotate(-90 12 ${plot.y + plot.h / 2})`, "text-anchor": "middle"}, options.yLabel));
  if (options.rightLabel) {
    const x = width - 6;
    svg.append(svgEl("text", {x: x, y: plot.y + plot.h / 2, transform: `rotate(90 ${x} ${plot.y + plot.h / 2})`, "text-anchor": "middle"}, options.rightLabel));
  }
  if (runs.length) {
    svg.append(svgEl("text", {x: plot.x, y: height - 20}, formatTime(runs[0].started_at, false)),
      svgEl("text", {x: plot.x + plot.w, y: height - 20, "text-anchor": "end"}, formatTime(runs[runs.length - 1].started_at, false)),
      svgEl("text", {x: plot.x + plot.w / 2, y: height - 4, "text-anchor": "middle"}, `runs, oldest to newest (${timeZone()})`));
  }
  const slot = plot.w / Math.max(runs.length, 10);
  return {svg, plot, slot, y};
}

function legend(items) {
  return el("div", {class: "legend", "aria-hidden": "true"},
    ...items.map(([name, color]) => el("span", {style: "--swatch: " + color}, name)));
}

function changesChart(runs) {
  const changed = (run) => (run.added || 0) + (run.updated || 0) + (run.deleted || 0);
  const max = niceMax(Math.max(1, ...runs.map(changed)));
  const rightMax = niceMax(Math.max(1, ...runs.map((run) => run.unchanged || 0)));
  const desc = runs.length ? "Per run, oldest first: " + runs.map((run) =>
    `${formatTime(run.started_at)}: ${run.added} added, ${run.updated} updated, ${run.deleted} deleted, ${run.unchanged} unchanged`).join("; ")
    : "No runs yet.";
  const {svg, plot, slot, y} = frame(runs, {id: "changes-chart", cls: "changes", title: "Records changed per run",
    desc: desc, max: max, rightMax: rightMax, yLabel: "added / updated / deleted", rightLabel: "unchanged"});
  const points = [];
  runs.forEach((run, index) => {
    let base = 0;
    const x = plot.x + index * slot + 2;
    for (const name of ["added", "updated", "deleted"]) {
      const value = run[name] || 0;
      if (!value) continue;
      svg.append(svgEl("rect", {class: name, x: x.toFixed(1), y: y(base + value, max).toFixed(1), width: Math.max(1, slot - 4).toFixed(1),
        height: Math.max(1, (value / max) * plot.h).toFixed(1), "data-field": name},
        svgEl("title", {}, `${value} ${name} (${formatTime(run.started_at)}, ${run.status})`)));
      base += value;
    }
    points.push([x + (slot - 4) / 2, y(run.unchanged || 0, rightMax)]);
  });
  if (points.length) {
    svg.append(svgEl("polyline", {class: "unchanged-line", points: points.map(([a, b]) => a.toFixed(1) + "," + b.toFixed(1)).join(" ")}));
    points.forEach(([a, b], index) => svg.append(svgEl("circle", {class: "unchanged-dot", cx: a.toFixed(1), cy: b.toFixed(1), r: 2.5},
      svgEl("title", {}, `${runs[index].unchanged} unchanged`))));
  }
  return el("figure", {"data-field": "changes-chart"}, el("figcaption", {}, "Records changed per run"), svg,
    legend([["added", "var(--added)"], ["updated", "var(--updated)"], ["deleted", "var(--deleted)"],
            ["unchanged (dashed line, right axis)", "var(--unchanged)"]]));
}

function durationChart(runs) {
  const seconds = runs.map((run) => runSeconds(run) || 0);
  const max = niceMax(Math.max(1, ...seconds));
  const desc = runs.length ? "Per run, oldest first: " + runs.map((run, index) =>
    `${formatTime(run.started_at)}: ${duration(seconds[index])} (${run.status})`).join("; ") : "No runs yet.";
  const {svg, plot, slot, y} = frame(runs, {id: "duration-chart", cls: "durations", title: "Run durations",
    desc: desc, max: max, yLabel: "seconds"});
  runs.forEach((run, index) => {
    const height = Math.max(1, (seconds[index] / max) * plot.h);
    svg.append(svgEl("rect", {class: run.status, x: (plot.x + index * slot + 2).toFixed(1), y: y(seconds[index], max).toFixed(1),
      width: Math.max(1, slot - 4).toFixed(1), height: height.toFixed(1)},
      svgEl("title", {}, `${duration(seconds[index])} (${run.status}, ${formatTime(run.started_at)})`)));
  });
  return el("figure", {"data-field": "duration-chart"}, el("figcaption", {}, "Run durations"), svg,
    legend([["success", "var(--ok)"], ["failed / abandoned", "var(--bad)"], ["retrying", "var(--warn)"],
            ["running", "var(--run)"], ["cancelled", "var(--idle)"]]));
}

function showSync(sync, runs) {
  const definition = sync.definition;
  const oldestFirst = runs.slice().reverse();
  const reasons = [...new Set(Object.values(sync.actions || {}).filter((p) => !p.allowed).map((p) => p.reason))];
  document.getElementById("view").replaceChildren(
    el("p", {}, el("a", {href: "#/", "data-field": "back"}, "← All syncs")),
    el("h2", {id: "sync-title", tabindex: "-1", "data-sync-page": sync.id}, sync.id, " ", state(sync)),
    actions(sync),
    reasons.length ? el("p", {class: "reason", "data-field": "permissions"}, "Unavailable: " + reasons.join("; ") + ".") : "",
    el("h3", {}, "Last run"), lastRun(sync),
    el("h3", {}, "About"),
    facts([["Defined in", whereDefined(sync)], ["Table", sync.table], ["Frequency", definition ? (definition.frequency || "triggered only") : sync.schedule],
           ["Schedule", sync.schedule || "triggered only"], ["Connections", connections(definition)],
           ["Next run", sync.next_run_after ? formatTime(sync.next_run_after) : null],
           ["DAG", dagLink(sync.dag_id)]]),
    ...(connectionRuns(sync) || []),
    el("h3", {}, "Charts"),
    el("div", {class: "charts"}, changesChart(oldestFirst), durationChart(oldestFirst)),
    el("h3", {}, "Recent runs"), runsTable(runs, sync),
    el("h3", {}, "Definition (secrets masked)"),
    definition ? el("pre", {class: "definition", "data-field": "definition"}, JSON.stringify(definition, null, 2))
               : el("p", {class: "muted"}, "Not known to the API server (a sync built in a DAG file)."));
  document.title = sync.id + " · Nango syncs";
}

// -- loading and routing -------------------------------------------------------------------------------

function route() {
  const match = location.hash.match(/^#\/sync\/(.+)$/);
  return match ? {kind: "sync", id: decodeURIComponent(match[1])} : {kind: "list"};
}

function focusedKey() {
  const active = document.activeElement;
  return active && active.dataset ? active.dataset.key || null : null;
}

async function load() {
  const wanted = route();
  const changedView = !current || current.kind !== wanted.kind || current.id !== wanted.id;
  const key = changedView ? null : focusedKey();
  if (document.querySelector("dialog[open]")) return;  // never rebuild under an open dialog
  try {
    if (wanted.kind === "sync") {
      const id = encodeURIComponent(wanted.id);
      const [sync, runs] = await Promise.all([getJson(`${API}/${id}`), getJson(`${API}/${id}/runs?limit=50`)]);
      showErrors({definition_errors: sync.definition_errors, errors: sync.errors});
      showSync(sync, runs.runs);
      document.getElementById("updated").textContent = "updated " + formatTime(new Date().toISOString());
    } else {
      const data = await getJson(API);
      lastData = data;
      showErrors(data);
      showList(data);
      document.title = "Nango syncs";
      document.getElementById("updated").textContent = data.syncs.length + " syncs, updated " +
        formatTime(new Date().toISOString());
    }
    current = wanted;
    document.getElementById("timezone").textContent = "times in " + timeZone();
    if (changedView && wanted.kind === "sync") document.getElementById("sync-title").focus?.();
    if (key) {
      const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again && !again.disabled) again.focus();
    }
  } catch (error) {
    if (error instanceof NotLoggedIn) {
      document.getElementById("errors").replaceChildren(el("div", {class: "error"}, "Not logged in: ",
        el("a", {href: UI_ROOT, target: "_top"}, "log in to Airflow"), "."));
      return;
    }
    const what = wanted.kind === "sync" ? `sync ${wanted.id}` : "syncs";
    document.getElementById("errors").replaceChildren(el("div", {class: "error"}, `Could not load ${what}: ${error.message}`));
    if (changedView) document.getElementById("view").replaceChildren(el("p", {}, el("a", {href: "#/"}, "← All syncs")));
  }
}

document.getElementById("refresh").addEventListener("click", load);
document.getElementById("trigger-form").addEventListener("submit", confirmTrigger);
document.getElementById("trigger-cancel").addEventListener("click", () => closeDialog("trigger-dialog", triggerOpener));
document.getElementById("confirm-form").addEventListener("submit", (event) => { event.preventDefault(); answer(true); });
document.getElementById("confirm-no").addEventListener("click", () => answer(false));
document.getElementById("confirm-dialog").addEventListener("cancel", () => answer(false));
window.addEventListener("hashchange", () => { notice("", true); load(); });
window.addEventListener("storage", (event) => {
  if (event.key === "theme") {
    const theme = localStorage.getItem("theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
  }
  if (event.key === "timezone") load();
});
load();
setInterval(load, REFRESH_MS);
</script>
</body>
</html>
"""
