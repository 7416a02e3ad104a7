// ki2api status page: "running" from /health without a key; everything else from /dashboard/data with the key.
// The key lives in sessionStorage only (this tab) and goes out as a Bearer header. Data is put into the page
// with textContent only, never as HTML.
"use strict";

const KEY_SLOT = "ki2api.key";
const REFRESH_MS = 10000;
let lastData = null;

const $ = (id) => document.getElementById(id);

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fillTable(id, rows, columns) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    for (const column of columns) {
      const [text, cls] = column(item);
      cell(row, text, cls);
    }
    body.appendChild(row);
  }
  if (!rows.length) {
    const row = document.createElement("tr");
    const td = cell(row, "none yet", "muted");
    td.colSpan = columns.length;
    body.appendChild(row);
  }
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const sign = seconds < 0 ? "-" : "";
  let s = Math.abs(seconds);
  if (s < 120) return `${sign}${s} s`;
  s = Math.round(s / 60);
  if (s < 120) return `${sign}${s} min`;
  return `${sign}${Math.round(s / 60)} h`;
}

function masked(key) {
  return $("reveal").checked ? key : "•".repeat(Math.min(Math.max(key.length, 8), 24));
}

async function checkRunning() {
  try {
    const response = await fetch("/health", { cache: "no-store" });
    setState(response.ok ? "running" : "down");
  } catch (error) {
    setState("down");
  }
}

function setState(state) {
  $("state").dataset.state = state;
  $("state").textContent = state === "running" ? "running" : "not answering";
}

async function load() {
  const key = sessionStorage.getItem(KEY_SLOT);
  if (!key) return showLogin(null);
  let response;
  try {
    response = await fetch("/dashboard/data", { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
  } catch (error) {
    setState("down");
    return;
  }
  if (response.status === 401) {
    sessionStorage.removeItem(KEY_SLOT);
    return showLogin("That key was refused. Enter the API_KEY ki2api was started with.");
  }
  if (!response.ok) {
    return showLogin(`The status request failed (HTTP ${response.status}).`);
  }
  lastData = await response.json();
  setState("running");
  render(lastData, key);
}

function showLogin(message) {
  $("details").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

function render(data, key) {
  $("login").hidden = true;
  $("details").hidden = false;
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  const server = data.server;
  const workers = server.workers === 1 ? "1 worker" : `${server.workers} workers`;
  $("server").textContent = `answered by worker pid ${server.worker_pid} (${workers}), up ${duration(server.uptime_seconds)}`;
  renderAccounts(data.accounts);
  renderTotals(data.totals);
  renderRecent(data);
  $("models").textContent = data.models.join(", ");
  renderClients(data.client, data.models, key);
}

function accountState(a, c) {
  if (a.state) return a.state === "healthy" ? ["ok", "good"] : [a.state.replace("_", " "), "bad"];
  if (c.needs_login) return ["needs login", "bad"];
  return c.loaded ? ["ok", "good"] : ["not loaded", "bad"];
}

function renderAccounts(accounts) {
  // A pool row ({name, state, credential: {...}, requests, errors, last_error}) or a bare credential status.
  fillTable("accounts", accounts, [
    (a) => [a.name],
    (a) => accountState(a, a.credential || a),
    (a) => { const c = a.credential || a; return [[c.source, c.path].filter(Boolean).join(": ")]; },
    (a) => [(a.credential || a).auth_method],
    (a) => [(a.credential || a).expires_at],
    (a) => {
      const seconds = (a.credential || a).expires_in_seconds;
      return [duration(seconds), seconds !== null && seconds < 0 ? "bad" : ""];
    },
    (a) => {
      const last = (a.credential || a).last_refresh;
      return last ? [`${last.at} ${last.ok ? "ok" : "failed"}`, last.ok ? "" : "bad"] : ["never"];
    },
    (a) => [a.requests === undefined ? "" : `${a.requests} / ${a.errors}`],
    (a) => {
      const quarantined = a.quarantine && `quarantined (${a.quarantine.until ? "until " + a.quarantine.until
        : "until cleared"}): ${a.quarantine.why}`;
      const error = quarantined || (a.credential || a).error || (a.last_error && a.last_error.message);
      return [error, error ? "bad" : ""];
    },
    // Kiro's figure at the last poll, less what answers were charged since (see docs/accounts.md)
    (a) => [a.usage && typeof a.usage.remaining === "number" ? `${a.usage.remaining}` : ""],
    () => [""],
  ]);
  const stored = new Set((lastData && lastData.stored_accounts) || []);
  const rows = $("accounts").querySelectorAll("tbody tr");
  accounts.forEach((a, index) => {
    if (!stored.has(a.name) || !rows[index]) return;
    const off = a.state === "off";
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = off ? "Enable" : "Disable";
    button.dataset.account = a.name;
    button.addEventListener("click", () => setEnabled(a.name, off));
    rows[index].lastChild.appendChild(button);
  });
}

// -- account actions (each needs the key; the server logs them) -----------------------------------------------

async function post(path, body) {
  const key = sessionStorage.getItem(KEY_SLOT);
  const response = await fetch(path, {
    method: "POST", cache: "no-store",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await response.json(); } catch (error) { /* not JSON */ }
  return [response.status, data];
}

async function setEnabled(name, enabled) {
  const [status, data] = await post(`/dashboard/accounts/${encodeURIComponent(name)}/${enabled ? "enable" : "disable"}`);
  $("account-message").hidden = false;
  $("account-message").textContent = status === 200 ? `${name}: ${enabled ? "enabled" : "disabled"}` : data.error;
  load();
}

async function addAccount(event) {
  event.preventDefault();
  $("add-error").hidden = true;
  const body = { start_url: $("start-url").value.trim(), region: $("region").value.trim() };
  const [status, data] = await post("/dashboard/logins", body);
  if (status !== 200) return addFailed(data.error || `HTTP ${status}`);
  $("add-link").href = data.verification_uri_complete;
  $("add-link").textContent = data.verification_uri;
  $("add-code").textContent = data.user_code;
  $("add-status").textContent = "Waiting for the approval…";
  $("add-flow").hidden = false;
  pollLogin(data.id, data.interval);
}

async function pollLogin(id, interval) {
  await new Promise((resolve) => setTimeout(resolve, Math.max(1, interval) * 1000));
  const [status, data] = await post(`/dashboard/logins/${id}/poll`);
  if (status === 200 && data.status === "pending") return pollLogin(id, interval);
  if (status === 200 && data.status === "done") {
    $("add-status").textContent = data.added ? `Account ${data.account} added.` : `That login is account ${data.account} already.`;
    return load();
  }
  addFailed(data.error || `HTTP ${status}`);
}

function addFailed(message) {
  $("add-flow").hidden = true;
  $("add-error").hidden = false;
  $("add-error").textContent = `The login did not complete: ${message}`;
}

function renderTotals(totals) {
  const routes = Object.entries(totals.routes).map(([route, counts]) => ({ route, ...counts }));
  routes.sort((a, b) => b.requests - a.requests);
  fillTable("routes", routes, [(r) => [r.route], (r) => [r.requests], (r) => [r.errors, r.errors ? "bad" : ""]]);
  const upstream = Object.entries(totals.upstream_errors).map(([kind, n]) => `${kind} ${n}`).join(", ") || "none";
  const refreshes = totals.token_refreshes;
  $("counters").textContent = `Streams open now: ${totals.streams_in_flight}. Upstream errors: ${upstream}. ` +
    `Token refreshes: ${refreshes.ok || 0} ok, ${refreshes.failed || 0} failed. ` +
    `Tokens: ${totals.tokens.in || 0} in, ${totals.tokens.out || 0} out.`;
  const spent = totals.credits || { accounts: {}, keys: {} };
  const rows = Object.entries(spent.accounts).map(([name, credits]) => ({ by: "account", name, credits }))
    .concat(Object.entries(spent.keys).map(([name, credits]) => ({ by: "client key", name, credits })));
  fillTable("credits", rows, [(r) => [r.by], (r) => [r.name], (r) => [r.credits]]);
}

// "2026-11-25T10:37:13+00:00" -> "10:37:13" (the column says UTC; the date is today's for a recent request)
const clock = (at) => (at || "").slice(11, 19);

function renderRecent(data) {
  fillTable("recent", data.recent_requests, [
    (r) => [clock(r.at)], (r) => [r.request_id], (r) => [r.route], (r) => [r.model], (r) => [r.stream ? "yes" : "no"],
    (r) => [r.status, r.status >= 400 ? "bad" : ""], (r) => [r.ttfb_ms], (r) => [r.duration_ms],
    (r) => [r.tokens_in !== undefined ? `${r.tokens_in}/${r.tokens_out}` : ""],
    (r) => [r.credits !== undefined ? `${r.credits}` : ""],
  ]);
  fillTable("errors", data.recent_errors, [
    (r) => [clock(r.at)], (r) => [r.request_id], (r) => [r.route], (r) => [r.status, "bad"],
    (r) => [r.upstream_error || r.stream_error || ""],
  ]);
}

function renderClients(client, models, key) {
  const shown = masked(key);
  const cherry = $("cherry");
  cherry.replaceChildren();
  for (const [term, value] of [["Provider type", "OpenAI"], ["API address", client.api_root],
                               ["API key", shown], ["Model", client.default_model]]) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    cherry.append(dt, dd);
  }
  const ccr = {
    Providers: [{ name: "ki2api", api_base_url: client.chat_completions_url, api_key: shown,
                  models: models.filter((m) => !m.includes(".")) }],
    Router: { default: `ki2api,${client.default_model}` },
  };
  $("ccr").textContent = JSON.stringify(ccr, null, 2);
  $("sdk").textContent = [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${client.base_url}", api_key="${shown}")`,
    "reply = client.chat.completions.create(",
    `    model="${client.default_model}",`,
    '    messages=[{"role": "user", "content": "Hello"}],',
    ")",
    "print(reply.choices[0].message.content)",
  ].join("\n");
}

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_SLOT, $("key").value.trim());
    $("key").value = "";
    load();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_SLOT);
    showLogin(null);
  });
  $("add-form").addEventListener("submit", addAccount);
  $("reveal").addEventListener("change", () => {
    const key = sessionStorage.getItem(KEY_SLOT);
    if (lastData && key) renderClients(lastData.client, lastData.models, key);
  });
  checkRunning().then(load);
  setInterval(() => checkRunning().then(load), REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
