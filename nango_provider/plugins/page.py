"""The "Nango syncs" page: self-contained HTML, CSS and vanilla JavaScript (no build step, nothing from a CDN).

The page is served at ``/nango/ui`` and shown inside Airflow's UI (nav item "Nango syncs"). It fetches
``/nango/v1/syncs`` with the user's session cookie, relative to its own URL so that it also works when Airflow
is served under a sub-path, and builds every element with ``textContent`` (nothing from the API is parsed as
HTML).
"""

from __future__ import annotations

from typing import Final

ICON_SVG: Final = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#0f766e"
 stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 12a9 9 0 0 1-15.5 6.2"/>
<path d="M3 12a9 9 0 0 1 15.5-6.2"/><path d="M18 2v4h-4"/><path d="M6 22v-4h4"/></svg>"""

PAGE_HTML: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nango syncs</title>
<style>
  :root {
    --bg: #ffffff; --fg: #1f2933; --muted: #6b7785; --line: #e4e7eb; --head: #f5f7fa;
    --ok: #15803d; --bad: #b91c1c; --run: #1d4ed8; --idle: #6b7785; --accent: #0f766e; --warn: #b45309;
  }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #111827; --fg: #e5e7eb; --muted: #9ca3af; --line: #273244; --head: #1a2333;
            --ok: #4ade80; --bad: #f87171; --run: #60a5fa; --idle: #9ca3af; --accent: #2dd4bf;
            --warn: #fbbf24; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 20px 24px; background: var(--bg); color: var(--fg);
         font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; margin-bottom: 14px; }
  h1 { font-size: 20px; margin: 0; }
  .muted { color: var(--muted); font-size: 12px; }
  button { font: inherit; padding: 4px 12px; border: 1px solid var(--line); border-radius: 6px;
           background: var(--head); color: var(--fg); cursor: pointer; }
  table { border-collapse: collapse; width: 100%; }
  .scroll { overflow-x: auto; }
  th, td { padding: 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
  th { background: var(--head); font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
       color: var(--muted); font-weight: 600; }
  td { white-space: nowrap; }
  td.dag { white-space: normal; font-size: 12px; }
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
  td.last-run-cell { white-space: normal; min-width: 280px; max-width: 440px; }
  .run-error { color: var(--bad); font-size: 12px; margin-top: 4px; white-space: pre-wrap;
               overflow-wrap: anywhere; max-height: 9.5em; overflow-y: auto; }
  .retrying + .muted + .run-error { color: var(--warn); } .cancelled + .muted + .run-error { color: var(--idle); }
  .running, .queued { color: var(--run); }
  .paused, .none, .not-parsed { color: var(--idle); }
  a { color: var(--accent); }
  .error { color: var(--bad); margin: 8px 0; white-space: pre-wrap; }
  .empty { padding: 24px; text-align: center; color: var(--muted); }
  svg.chart rect.success { fill: var(--ok); } svg.chart rect.failed { fill: var(--bad); }
  svg.chart rect.running { fill: var(--run); } svg.chart line { stroke: var(--line); }
  svg.chart rect.abandoned { fill: var(--bad); } svg.chart rect.cancelled { fill: var(--idle); }
</style>
</head>
<body>
<header>
  <h1>Nango syncs</h1>
  <span class="muted" id="updated">loading...</span>
  <button type="button" id="refresh">Refresh</button>
</header>
<div id="errors"></div>
<div class="scroll">
<table>
  <thead>
    <tr>
      <th>Sync</th><th>Schedule</th><th>State</th><th>Last run</th>
      <th class="num">Added</th><th class="num">Updated</th><th class="num">Unchanged</th><th class="num">Deleted</th>
      <th>Fetched, recent runs</th><th>DAG</th>
    </tr>
  </thead>
  <tbody id="syncs"><tr><td colspan="10" class="empty">Loading...</td></tr></tbody>
</table>
</div>
<script>
"use strict";
const API = "v1/syncs";          // relative to /nango/ui
const DAGS = "../dags/";         // the DAG pages of Airflow's UI
const REFRESH_MS = 10000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function ago(text) {
  if (!text) return "";
  const seconds = Math.round((Date.now() - new Date(text).getTime()) / 1000);
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}

function chart(history) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 120, height = 28, gap = 2;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...history.map((run) => run.fetched || 0));
  svg.setAttribute("aria-label", "records fetched per run: " + history.map((run) => run.fetched).join(", "));
  const base = document.createElementNS(ns, "line");
  for (const [key, value] of [["x1", 0], ["x2", width], ["y1", height - 0.5], ["y2", height - 0.5]]) {
    base.setAttribute(key, value);
  }
  svg.append(base);
  const slot = width / Math.max(history.length, 10);
  history.forEach((run, index) => {
    const bar = document.createElementNS(ns, "rect");
    const barHeight = Math.max(1, Math.round(((run.fetched || 0) / max) * (height - 2)));
    bar.setAttribute("x", (index * slot + gap / 2).toFixed(1));
    bar.setAttribute("y", height - barHeight);
    bar.setAttribute("width", Math.max(1, slot - gap).toFixed(1));
    bar.setAttribute("height", barHeight);
    bar.setAttribute("class", run.status);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${run.fetched} fetched, ${run.added} added, ${run.updated} updated (${run.status}, ` +
      `${new Date(run.started_at).toLocaleString()})`;
    bar.append(title);
    svg.append(bar);
  });
  return svg;
}

function state(sync) {
  if (!sync.parsed) return el("span", {class: "badge not-parsed"}, "not parsed yet");
  return el("span", {class: "badge " + (sync.is_paused ? "paused" : "active")}, sync.is_paused ? "paused" : "active");
}

function lastRun(sync) {
  const run = sync.last_run;
  const dagRun = sync.last_dag_run;
  if (dagRun && dagRun.state === "queued" && (!run || new Date(dagRun.run_after) > new Date(run.started_at))) {
    return el("span", {class: "badge queued"}, "queued");
  }
  if (!run) return el("span", {class: "none"}, "never run");
  const when = run.ended_at || run.started_at;
  const shown = el("span", {class: "last-run", title: new Date(when).toLocaleString()},
    el("span", {class: "badge " + run.status, "data-field": "status"}, run.status), " ",
    el("span", {class: "muted"}, ago(when)),
    ...(run.connection_id ? [" ", el("span", {class: "muted", "data-field": "connection"}, run.connection_id)] : []),
    ...(run.warnings || []).map((text) => el("span", {class: "badge warning", "data-field": "warning", title: text},
      "warning")));
  if (run.error) {
    // the whole message, readable without hovering (the try's error while it waits for its retry)
    const prefix = run.status === "retrying" ? "will retry: " : "";
    shown.append(el("div", {class: "run-error", "data-field": "error"}, prefix + run.error));
  }
  return shown;
}

function row(sync) {
  const run = sync.last_run || {};
  const count = (name) => el("td", {class: "num", "data-field": name}, run[name] ?? "");
  return el("tr", {"data-sync": sync.id},
    el("td", {},
      el("span", {class: "name"}, sync.id),
      el("span", {class: "badge source"}, sync.source === "dag_file" ? "dag file" : sync.source),
      el("div", {class: "muted"}, sync.table || "")),
    el("td", {"data-field": "schedule"}, sync.schedule || "triggered only"),
    el("td", {"data-field": "state"}, state(sync)),
    el("td", {class: "last-run-cell"}, lastRun(sync)),
    count("added"), count("updated"), count("unchanged"), deletedCount(sync, run),
    el("td", {class: "chart-cell", "data-field": "chart"}, chart(sync.history || []),
      el("span", {class: "muted"}, run.fetched === undefined ? "" : run.fetched + " fetched")),
    el("td", {class: "dag"}, dagLink(sync.dag_id)));
}

function deletedCount(sync, run) {
  // the sync's deletion mode (soft, hard or keep) as the cell's tooltip
  const mode = sync.definition && sync.definition.deletes;
  return el("td", {class: "num", "data-field": "deleted", title: mode ? "deletes: " + mode : ""}, run.deleted ?? "");
}

function dagLink(dagId) {
  // may wrap after the "nango_sync_" prefix, nowhere else
  const prefix = "nango_sync_";
  const link = el("a", {href: DAGS + encodeURIComponent(dagId), target: "_top"});
  if (dagId.startsWith(prefix)) link.append(prefix, el("wbr"), dagId.slice(prefix.length));
  else link.append(dagId);
  return link;
}

function show(data) {
  const body = document.getElementById("syncs");
  body.replaceChildren(...data.syncs.map(row));
  if (!data.syncs.length) {
    body.append(el("tr", {}, el("td", {colspan: 10, class: "empty"},
      "No syncs yet: add a YAML file, or POST /nango/v1/syncs.")));
  }
  const errors = (data.errors || []).map((text) => el("div", {class: "error"}, text));
  if (data.has_import_errors) {
    errors.unshift(el("div", {class: "error"}, el("strong", {},
      "Sync definitions that could not be loaded (Airflow shows them under Import errors):")));
  }
  document.getElementById("errors").replaceChildren(...errors);
  document.getElementById("updated").textContent = data.syncs.length + " syncs, updated " +
    new Date().toLocaleTimeString();
}

async function load() {
  try {
    const response = await fetch(API, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (response.status === 401) {
      document.getElementById("errors").replaceChildren(el("div", {class: "error"}, "Not logged in: ",
        el("a", {href: "../", target: "_top"}, "log in to Airflow"), "."));
      return;
    }
    if (!response.ok) throw new Error(response.status + " " + (await response.text()));
    show(await response.json());
  } catch (error) {
    document.getElementById("errors").replaceChildren(el("div", {class: "error"}, "Could not load syncs: " + error));
  }
}

document.getElementById("refresh").addEventListener("click", load);
load();
setInterval(load, REFRESH_MS);
</script>
</body>
</html>
"""
