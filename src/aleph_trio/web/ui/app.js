// The Control UI: a client of the gateway's JSON-RPC API over the same WebSocket as every other
// client. No private endpoints; after a reconnect it resumes events by seq (PROTOCOL §6.4).
"use strict";

const $ = (id) => document.getElementById(id);
const PATTERNS = ["agent.*", "stream.*", "exec.*", "cron.*", "session.*"];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

const state = {
  token: null, ws: null, open: false, nextId: 1, pending: new Map(),
  seq: null, bootId: null, backoff: 500, role: null,
  runs: new Map(), approvals: new Map(), streams: new Map(), loggedOut: false,
};

// -- DOM helpers: text only, never HTML from the wire -------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "onclick") node.addEventListener("click", value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function setStatus(text, up) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("up", !!up);
}

function when(ts) {
  return ts ? new Date(ts).toLocaleString() : "—";
}

// -- the connection ----------------------------------------------------------------------------

function call(method, params) {
  return new Promise((resolve, reject) => {
    if (!state.open) return reject(new Error("not connected"));
    const id = state.nextId++;
    state.pending.set(id, { resolve, reject });
    const doc = { jsonrpc: "2.0", id, method };
    if (params !== undefined) doc.params = params;
    state.ws.send(JSON.stringify(doc));
  });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  setStatus("connecting…");
  ws.onopen = async () => {
    state.open = true;
    try {
      const session = await call("connect", { token: state.token, client_id: "control-ui" });
      state.role = session.role;
      state.backoff = 500;
      const resume = state.bootId === session.boot_id && state.seq !== null;
      state.bootId = session.boot_id;
      const params = { patterns: session.role === "owner" ? PATTERNS : ["agent.*", "stream.*"] };
      if (resume) params.since_seq = state.seq;
      else state.seq = session.seq;
      const sub = await call("events.subscribe", params);
      setStatus(`connected as ${session.role}${sub.gap ? " (some events were missed)" : ""}`, true);
      $("login").hidden = true;
      $("app").hidden = false;
      await refreshAll();
    } catch (err) {
      state.open = false;
      if (err.code === -32001 || err.code === -32000) {
        sessionStorage.removeItem("aleph-token");
        showLogin(err.message);
        state.loggedOut = true;
      }
      ws.close();
    }
  };
  ws.onmessage = (message) => {
    const doc = JSON.parse(message.data);
    for (const item of Array.isArray(doc) ? doc : [doc]) receive(item);
  };
  ws.onclose = () => {
    state.open = false;
    for (const { reject } of state.pending.values()) reject(new Error("connection closed"));
    state.pending.clear();
    if (state.loggedOut) return;
    setStatus(`disconnected, retrying in ${Math.round(state.backoff / 100) / 10} s`);
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 10000);
  };
}

function receive(doc) {
  if (doc.id !== undefined && doc.id !== null && state.pending.has(doc.id)) {
    const { resolve, reject } = state.pending.get(doc.id);
    state.pending.delete(doc.id);
    if (doc.error) reject(Object.assign(new Error(doc.error.message), doc.error));
    else resolve(doc.result);
  } else if (doc.method === "event") {
    const event = doc.params;
    if (typeof event.seq === "number") state.seq = Math.max(state.seq ?? 0, event.seq);
    onEvent(event.topic, event.data || {});
  }
}

// -- events ------------------------------------------------------------------------------------

function onEvent(topic, data) {
  if (topic === "agent.started") {
    state.runs.set(data.run_id, { ...data, status: "running" });
    renderRuns();
  } else if (topic === "agent.completed" || topic === "agent.error" || topic === "agent.cancelled") {
    const run = state.runs.get(data.run_id) || { run_id: data.run_id, session_key: data.session_key };
    run.status = { "agent.completed": "completed", "agent.error": "failed" }[topic] || "cancelled";
    state.runs.set(data.run_id, run);
    renderRuns();
    if (topic === "agent.error") chatLine("error", `error: ${data.error?.message ?? "failed"}`, data.run_id);
  } else if (topic === "stream.chunk") {
    streamText(data.run_id).append(data.content);
    scrollLog();
  } else if (topic === "stream.tool_start") {
    chatLine("tool", `→ ${data.tool} ${JSON.stringify(data.input)}`, data.run_id);
  } else if (topic === "stream.tool_end") {
    chatLine("tool", `← ${data.tool}: ${String(data.output).slice(0, 400)}`, data.run_id);
  } else if (topic === "exec.approval_requested") {
    state.approvals.set(data.id, data);
    renderApprovals();
  } else if (topic === "exec.approval_resolved") {
    state.approvals.delete(data.id);
    renderApprovals();
  } else if (topic.startsWith("cron.")) {
    refreshCron();
  } else if (topic === "logs.entry") {
    appendLog(data);
  }
}

// -- chat --------------------------------------------------------------------------------------

function chatSession() {
  return $("chat-session").value.trim();
}

function belongsToChat(runId) {
  const run = state.runs.get(runId);
  return !run || !run.session_key || run.session_key === chatSession();
}

function chatLine(kind, text, runId) {
  if (runId && !belongsToChat(runId)) return;
  $("chat-log").append(el("div", { class: `msg ${kind}` }, text));
  scrollLog();
}

function streamText(runId) {
  let node = state.streams.get(runId);
  if (!node) {
    const text = el("span");
    const line = el("div", { class: "msg assistant" }, el("span", { class: "who" }, "agent"), text);
    if (belongsToChat(runId)) $("chat-log").append(line);
    node = text;
    state.streams.set(runId, node);
  }
  return node;
}

function scrollLog() {
  const log = $("chat-log");
  log.scrollTop = log.scrollHeight;
}

function showMessage(target, message) {
  const who = message.role === "user" ? "you" : message.role;
  target.append(el("div", { class: `msg ${message.role}` }, el("span", { class: "who" }, who), message.content));
}

async function loadChat() {
  const log = $("chat-log");
  log.replaceChildren();
  try {
    const { messages } = await call("chat.history", { session_key: chatSession(), limit: 200 });
    for (const message of messages) if (message.role !== "tool") showMessage(log, message);
  } catch (err) {
    log.append(el("div", { class: "msg error" }, err.message));
  }
  scrollLog();
}

async function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  showMessage($("chat-log"), { role: "user", content: text });
  try {
    const run = await call("chat.send", { message: text, session_key: chatSession() });
    const known = state.runs.get(run.run_id) || {};
    state.runs.set(run.run_id, { ...known, run_id: run.run_id, session_key: run.session_key, status: known.status || run.status });
    renderRuns();
  } catch (err) {
    chatLine("error", err.message);
  }
}

async function abortChat() {
  try {
    await call("chat.abort", { session_key: chatSession() });
  } catch (err) {
    chatLine("error", err.message);
  }
}

// -- runs --------------------------------------------------------------------------------------

function renderRuns() {
  const rows = [...state.runs.values()].reverse().slice(0, 200).map((run) =>
    el("tr", { "data-run": run.run_id },
      el("td", { class: "mono" }, run.run_id), el("td", {}, run.session_key ?? ""),
      el("td", {}, run.agent_id ?? ""), el("td", { class: "run-status" }, run.status),
      el("td", {}, TERMINAL.has(run.status) ? "" :
        el("button", { class: "quiet", onclick: () => cancelRun(run.run_id) }, "Cancel"))));
  $("runs-body").replaceChildren(...rows);
}

async function cancelRun(runId) {
  try {
    await call("agent.cancel", { run_id: runId });
  } catch (err) {
    alert(err.message);
  }
}

// -- approvals ---------------------------------------------------------------------------------

function renderApprovals() {
  const items = [...state.approvals.values()].map((a) =>
    el("div", { class: "approval", "data-approval": a.id },
      el("div", {}, `${a.agent_id ?? "agent"} wants to run, in ${a.cwd ?? "?"}:`),
      el("pre", { class: "mono" }, a.command),
      el("button", { onclick: () => resolveApproval(a.id, "allow-once") }, "Allow once"),
      el("button", { class: "quiet", onclick: () => resolveApproval(a.id, "allow-always") }, "Always allow"),
      el("button", { class: "quiet", onclick: () => resolveApproval(a.id, "deny") }, "Deny")));
  $("approvals-list").replaceChildren(...items);
  $("approvals-empty").hidden = items.length > 0;
  const badge = $("approval-count");
  badge.hidden = items.length === 0;
  badge.textContent = String(items.length);
}

async function resolveApproval(id, decision) {
  try {
    await call("exec.approval.resolve", { id, decision, resolved_by: "control-ui" });
  } catch (err) {
    alert(err.message);
  }
  state.approvals.delete(id);
  renderApprovals();
}

// -- sessions ----------------------------------------------------------------------------------

async function refreshSessions() {
  const { sessions } = await call("session.list", { limit: 200 });
  $("sessions-list").replaceChildren(...sessions.map((s) =>
    el("li", { onclick: () => showHistory(s.session_key) },
      el("div", {}, s.session_key), el("small", { class: "hint" }, `${s.message_count} messages · ${when(s.updated_at)}`))));
}

async function showHistory(sessionKey) {
  const target = $("session-history");
  target.replaceChildren(el("div", { class: "hint" }, sessionKey));
  const { messages } = await call("session.history", { session_key: sessionKey, limit: 500 });
  for (const message of messages) showMessage(target, message);
}

// -- cron --------------------------------------------------------------------------------------

async function refreshCron() {
  if (state.role !== "owner" || !state.open) return;
  const { jobs } = await call("cron.list");
  $("cron-body").replaceChildren(...jobs.map((job) =>
    el("tr", { "data-job": job.name },
      el("td", {}, job.name), el("td", { class: "mono" }, job.schedule), el("td", {}, job.agent_id),
      el("td", {}, job.enabled ? when(job.next_run_at) : "paused"), el("td", {}, job.last_status ?? "—"),
      el("td", {},
        el("button", { class: "quiet", onclick: () => cronAction("cron.trigger", job.job_id) }, "Run now"),
        el("button", { class: "quiet", onclick: () => cronAction(job.enabled ? "cron.pause" : "cron.resume", job.job_id) },
          job.enabled ? "Pause" : "Resume"),
        el("button", { class: "quiet", onclick: () => cronAction("cron.delete", job.job_id) }, "Delete")))));
}

async function cronAction(method, jobId) {
  try {
    await call(method, { job_id: jobId });
  } catch (err) {
    $("cron-error").textContent = err.message;
  }
  await refreshCron();
}

async function createCron(event) {
  event.preventDefault();
  $("cron-error").textContent = "";
  try {
    await call("cron.create", {
      name: $("cron-name").value.trim(), schedule: $("cron-schedule").value.trim(),
      agent_id: $("cron-agent").value.trim(), prompt: $("cron-prompt").value,
    });
    $("cron-form").reset();
    $("cron-agent").value = "main";
  } catch (err) {
    $("cron-error").textContent = err.message;
  }
  await refreshCron();
}

// -- logs --------------------------------------------------------------------------------------

function appendLog(entry) {
  const logs = $("logs");
  logs.append(el("div", { class: `level-${entry.level}` }, `${entry.ts} ${entry.level.padEnd(8)} ${entry.component}: ${entry.message}`));
  while (logs.childElementCount > 2000) logs.firstElementChild.remove();
  logs.scrollTop = logs.scrollHeight;
}

async function refreshLogs() {
  if (state.role !== "owner") return;
  const { entries } = await call("logs.tail", { lines: 200, follow: true });
  $("logs").replaceChildren();
  for (const entry of entries) appendLog(entry);
}

// -- start -------------------------------------------------------------------------------------

async function refreshAll() {
  const tasks = [loadChat(), refreshSessions().catch(() => {})];
  if (state.role === "owner") {
    tasks.push(refreshCron(), refreshLogs(), call("exec.approvals.pending").then(({ pending }) => {
      state.approvals = new Map(pending.map((a) => [a.id, a]));
      renderApprovals();
    }));
  }
  await Promise.allSettled(tasks);
}

function showTab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
  if (name === "sessions") refreshSessions().catch(() => {});
}

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value;
    state.loggedOut = false;
    sessionStorage.setItem("aleph-token", state.token);
    $("login-error").textContent = "";
    connect();
  });
  $("logout").addEventListener("click", () => {
    state.loggedOut = true;
    sessionStorage.removeItem("aleph-token");
    state.ws?.close();
    showLogin("");
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("chat-abort").addEventListener("click", abortChat);
  $("chat-load").addEventListener("click", loadChat);
  $("cron-form").addEventListener("submit", createCron);
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  const saved = sessionStorage.getItem("aleph-token");
  if (saved) {
    state.token = saved;
    connect();
  }
});
