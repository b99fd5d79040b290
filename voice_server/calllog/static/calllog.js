// The call-log page: the calls list, and one call's transcript growing live. (The scheduled
// calls' tab is in calllog-scheduled.js.)
// The API key stays in sessionStorage (this tab only) and travels only in Authorization
// headers; the event streams get a token from POST /api/event-tokens instead, because
// EventSource cannot send headers. A token lives about a minute, so a stream is never left to
// EventSource's own reconnect (which would present the old token): when it drops, the page
// closes it, mints a new token and opens it again. No build step: plain browser JavaScript.
"use strict";

const KEY = "voiceServerApiKey";
const $ = (selector) => document.querySelector(selector);
const state = {
  calls: [],
  selected: null,
  opening: 0, // counts calls asked for; an answer for an earlier one is dropped
  callStream: null,
  listStream: null,
  agents: new Map(), // agent id → name
  absentAgents: new Set(), // ids no read of the agents found: deleted agents
  readingAgents: null, // the read of the agents under way
};
const RECONNECT_MS = 1000;
const MAX_PAGE = 100; // the API's largest page

function apiKey() {
  return sessionStorage.getItem(KEY);
}

// The whole answer (`data`, and `pagination` for a list); an Error with the API's message.
async function request(path, options = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}`, ...(options.headers || {}) };
  const response = await fetch(`/api${path}`, { ...options, headers });
  const body = await response.json();
  if (!body.success) {
    if (response.status === 401) forgetKey();
    throw new Error(body.error.message);
  }
  return body;
}

async function api(path, options = {}) {
  return (await request(path, options)).data;
}

async function eventStream(path) {
  const { token } = await api("/event-tokens", { method: "POST" });
  const separator = path.includes("?") ? "&" : "?";
  return new EventSource(`/api/events${path}${separator}token=${encodeURIComponent(token)}`);
}

function show(problem) {
  $("#problem").textContent = problem || "";
  $("#problem").hidden = !problem;
}

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour12: false });
}

// When a call started, in pieces a phone's layout can drop (a date of today, the seconds) or
// put on two lines (date, time); the whole is in the title.
function started(iso) {
  const when = new Date(iso);
  const shown = element("span", "started");
  shown.title = when.toLocaleString([], { hour12: false });
  shown.classList.toggle("today", when.toDateString() === new Date().toDateString());
  const minutes = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  const time = element("span", "time", minutes);
  time.append(element("span", "seconds", `:${String(when.getSeconds()).padStart(2, "0")}`));
  const date = when.toLocaleDateString([], { year: "2-digit", month: "numeric", day: "numeric" });
  shown.append(element("span", "date", date), " ", time);
  return shown;
}

function duration(call) {
  const end = call.end_time ? new Date(call.end_time) : new Date();
  const seconds = Math.max(0, Math.round((end - new Date(call.start_time)) / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

// Agents' names for the ids calls carry. The user's agents are read when a call names an agent
// the page does not know: once per page, and again after an agent is added. An id that a read
// does not find is a deleted agent's (the API lists live agents only); it is not asked again.
// One read at a time: the list and a call opening often ask together.

async function learnAgents(ids) {
  while (state.readingAgents) await state.readingAgents;
  if (ids.every((id) => state.agents.has(id) || state.absentAgents.has(id))) return;
  state.readingAgents = readAgents(ids);
  try {
    await state.readingAgents;
  } finally {
    state.readingAgents = null;
  }
}

async function readAgents(ids) {
  const names = new Map();
  for (let offset = 0, more = true; more; offset += MAX_PAGE) {
    const { data, pagination } = await request(`/agents?limit=${MAX_PAGE}&offset=${offset}`);
    for (const agent of data) names.set(agent.id, agent.name);
    more = pagination.hasMore;
  }
  state.agents = names;
  for (const id of ids) if (!names.has(id)) state.absentAgents.add(id);
}

function agentName(id) {
  return state.agents.get(id) ?? "unknown agent";
}

// The calls list: a page from the REST API, re-read whenever the set of active calls changes.

async function loadCalls() {
  const calls = await api("/calls?limit=50");
  await learnAgents(calls.map((call) => call.agent_id));
  state.calls = calls;
  renderCalls();
}

function renderCalls() {
  const rows = state.calls.map((call) => {
    const row = element("tr");
    row.dataset.id = call.id;
    row.classList.toggle("selected", call.id === state.selected?.id);
    const status = element("td");
    status.append(element("span", `status ${call.status}`, call.status));
    const agent = element("td", "agent", agentName(call.agent_id));
    agent.title = `${agentName(call.agent_id)} (${call.agent_id})`;
    const when = element("td");
    when.append(started(call.start_time));
    row.append(status, numberCell(call), agent);
    row.append(when, element("td", "duration", duration(call)));
    row.addEventListener("click", (event) => {
      if (!event.target.closest("a")) openCall(call.id).catch((error) => show(error.message));
    });
    return row;
  });
  $("#calls tbody").replaceChildren(...rows);
}

// The other party's number: the caller's, or the one an outbound call dialled (marked, and
// linked to the scheduled call that placed it).
function numberCell(call) {
  const cell = element("td", "number");
  cell.append(element("span", "", otherParty(call)));
  if (call.direction !== "outbound") return cell;
  const id = call.scheduled_call_id;
  const marker = element(id ? "a" : "span", "direction", "outbound");
  if (id) {
    marker.href = scheduledLink(id);
    marker.title = "Placed by a scheduled call: show it";
  }
  cell.append(" ", marker);
  return cell;
}

function otherParty(call) {
  return (call.direction === "outbound" ? call.to_number : call.from_number) || "";
}

function scheduledLink(id) {
  return `#scheduled=${encodeURIComponent(id)}`;
}

// Calls `open` again after a pause once `stream` drops, unless another stream took its place.
function reopenOnDrop(stream, current, open) {
  stream.onerror = () => {
    stream.close();
    setTimeout(() => {
      if (current() === stream) open().catch((error) => show(error.message));
    }, RECONNECT_MS);
  };
}

async function followActiveCalls() {
  state.listStream?.close();
  const stream = await eventStream("/calls");
  state.listStream = stream;
  stream.addEventListener("calls", () => loadCalls().catch((error) => show(error.message)));
  reopenOnDrop(stream, () => state.listStream, followActiveCalls);
}

// One call: its summary, then its transcript entries as the event stream delivers them.

async function openCall(id) {
  const asked = ++state.opening;
  const { transcript, ...call } = await api(`/calls/${encodeURIComponent(id)}`);
  await learnAgents([call.agent_id]);
  if (asked !== state.opening) return; // another call was asked for meanwhile
  state.callStream?.close();
  state.callStream = null;
  state.selected = { ...call, next: 0 };
  location.hash = `call=${id}`;
  $("#transcript").replaceChildren();
  transcript.forEach((entry, index) => addEntry({ ...entry, index }));
  $("#call").hidden = false;
  renderCalls();
  renderCallHead();
  if (call.status === "active") await followCall();
}

async function followCall() {
  const call = state.selected;
  const stream = await eventStream(`/calls/${encodeURIComponent(call.id)}?since=${call.next}`);
  if (state.selected !== call) {
    stream.close(); // another call was opened meanwhile
    return;
  }
  state.callStream = stream;
  stream.addEventListener("entry", (event) => addEntry(JSON.parse(event.data)));
  stream.addEventListener("end", (event) => {
    stream.close();
    Object.assign(call, JSON.parse(event.data));
    renderCallHead();
    loadCalls().catch((error) => show(error.message));
  });
  reopenOnDrop(stream, () => state.callStream, followCall);
}

function renderCallHead() {
  const call = state.selected;
  $("#call-status").textContent = call.status;
  $("#call-status").className = `status ${call.status}`;
  const outbound = call.direction === "outbound";
  $("#call-number").textContent = otherParty(call);
  $("#call-agent").textContent = agentName(call.agent_id);
  const [number, agent] = [$("#call-number"), $("#call-agent")];
  $("#call-parties").replaceChildren(...(outbound ? [agent, " → ", number] : [number, " → ", agent]));
  $("#call-direction").hidden = !outbound;
  $("#call-scheduled").hidden = !call.scheduled_call_id;
  if (call.scheduled_call_id) $("#call-scheduled a").href = scheduledLink(call.scheduled_call_id);
  $("#call-start").replaceChildren(call.start_time ? started(call.start_time) : "");
  $("#call-duration").textContent = call.start_time ? duration(call) : "";
}

function addEntry(entry) {
  if (entry.index < state.selected.next) return;
  state.selected.next = entry.index + 1;
  const item = element("li", `entry ${entry.role}`);
  item.dataset.index = entry.index;
  const other = state.selected.direction === "outbound" ? "Callee" : "Caller";
  item.append(element("span", "who", entry.role === "user" ? other : "Agent"));
  const time = element("time", "", clock(entry.timestamp));
  time.dateTime = entry.timestamp;
  item.append(time, element("div", "text", entry.text));
  if (entry.interrupted) {
    item.querySelector(".text").append(element("span", "interrupted", "interrupted"));
  }
  const figures = Object.entries(entry.metrics || {});
  if (figures.length) {
    const metrics = element("span", "metrics");
    for (const [name, value] of figures) {
      const unit = name.endsWith("_ms") ? " ms" : "";
      metrics.append(element("span", "", `${name.replace(/_ms$/, "")} ${Math.round(value)}${unit}`));
    }
    item.append(metrics);
  }
  $("#transcript").append(item);
}

// The key: asked for once per tab, kept in sessionStorage only.

function forgetKey() {
  sessionStorage.removeItem(KEY);
  state.callStream?.close();
  state.listStream?.close();
  state.callStream = state.listStream = null;
  state.agents = new Map(); // the next key may be another user's
  state.absentAgents = new Set();
  forgetScheduled();
  start();
}

async function start() {
  const haveKey = Boolean(apiKey());
  $("#key-form").hidden = haveKey;
  $("#forget-key").hidden = !haveKey;
  $("#log").hidden = !haveKey;
  if (!haveKey) return;
  try {
    await loadCalls();
    show("");
    await followActiveCalls();
    await followFragment();
  } catch (error) {
    show(error.message);
  }
}

// The fragment names a call to open (`#call=…`, as rows and transcript links set it) or a
// scheduled call to show (`#scheduled=…`); either is brought into view, as on a phone it may be
// below the list. The call a row opened is already open: it stays where it is.
async function followFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const call = fragment.get("call");
  if (call && call !== state.selected?.id) {
    await openCall(call);
    $("#call").scrollIntoView({ block: "nearest" });
  }
  if (fragment.has("scheduled")) await showScheduled(fragment.get("scheduled"));
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("#api-key").value.trim());
  $("#api-key").value = "";
  start();
});
$("#forget-key").addEventListener("click", forgetKey);
$("#calls-tab").addEventListener("click", () => showTab("calls"));
$("#scheduled-tab").addEventListener("click", () => {
  showTab("scheduled").catch((error) => show(error.message));
});
// A link or the address bar naming another call or a scheduled call (a same-page navigation: no
// reload) shows it.
window.addEventListener("hashchange", () => {
  if (apiKey()) followFragment().catch((error) => show(error.message));
});
// A link to the fragment the page is already at changes nothing, so fires no hashchange: the
// scheduled call it names may be on the tab not shown.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (link?.hash && link.hash === location.hash && apiKey()) {
    followFragment().catch((error) => show(error.message));
  }
});
setInterval(() => {
  for (const row of document.querySelectorAll("#calls tbody tr")) {
    const call = state.calls.find((known) => known.id === row.dataset.id);
    if (call?.status === "active") row.querySelector(".duration").textContent = duration(call);
  }
  if (state.selected?.status === "active") renderCallHead();
}, 1000);
start();
