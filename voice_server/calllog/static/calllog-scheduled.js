// The call-log page's "Scheduled calls" tab: the user's scheduled calls, latest first, how each
// number went, and a link to the transcript of each answered one. While the tab shows, the list
// is read again every few seconds as long as a call is running or due; a call due later is
// waited for (one timer until its time); with nothing to come, the list is left alone.
// Loaded before calllog.js, whose helpers ($, api, element, started, show) it uses when called
// (and which wires the tabs to showTab).
"use strict";

const scheduled = {
  calls: [],
  wanted: null, // the scheduled call a link named (`#scheduled=…`): marked, kept in the list
  timer: null, // the next read, while one is planned
  reading: 0, // counts reads; an answer overtaken by a later read is dropped
};
const SCHEDULED_POLL_MS = 2000;
const LONGEST_TIMER_MS = 2 ** 31 - 1; // setTimeout fires at once past this

async function loadScheduled() {
  const asked = ++scheduled.reading;
  const calls = await api("/scheduled-calls?limit=50&sort=-scheduledDateTime");
  const wanted = scheduled.wanted;
  if (wanted && !calls.some((call) => call.id === wanted)) {
    calls.push(await api(`/scheduled-calls/${encodeURIComponent(wanted)}`)); // an older one
  }
  if (asked !== scheduled.reading) return;
  scheduled.calls = calls;
  renderScheduled();
  planScheduledRead();
}

// A failed read is shown and tried again on the same plan, so a blip does not end the updates.
function readScheduled() {
  return loadScheduled().catch((error) => {
    show(error.message);
    planScheduledRead();
  });
}

function planScheduledRead() {
  clearTimeout(scheduled.timer);
  scheduled.timer = null;
  if ($("#scheduled-section").hidden || !apiKey()) return;
  const now = Date.now();
  const waits = scheduled.calls.map((call) => {
    if (call.status === "in-progress") return SCHEDULED_POLL_MS;
    if (call.status !== "pending") return Infinity;
    return Math.max(SCHEDULED_POLL_MS, new Date(call.scheduledDateTime) - now);
  });
  const wait = Math.min(...waits);
  if (wait !== Infinity) scheduled.timer = setTimeout(readScheduled, Math.min(wait, LONGEST_TIMER_MS));
}

function renderScheduled() {
  $("#scheduled-empty").hidden = scheduled.calls.length > 0;
  $("#scheduled").replaceChildren(...scheduled.calls.map(scheduledItem));
}

function scheduledItem(call) {
  const item = element("li", "scheduled");
  item.dataset.id = call.id;
  item.classList.toggle("selected", call.id === scheduled.wanted);
  const head = element("div", "head");
  const type = element("span", "type", call.callType);
  type.title = call.callType === "ai" ? "The agent talks" : "A message is said";
  head.append(started(call.scheduledDateTime), type);
  head.append(element("span", `status ${call.status}`, call.status));
  item.append(head);
  if (call.error) item.append(element("p", "error", call.error));
  // Destinations are laid out when a worker first takes the call; until then, its numbers wait.
  const numbers = call.destinations.length
    ? call.destinations
    : call.toPhoneNumbers.map((to) => ({ to, state: "waiting" }));
  const list = element("ul", "destinations");
  list.append(...numbers.map((destination) => destinationItem(destination, call.error)));
  item.append(list);
  return item;
}

// A number left undialled because the whole call failed has that call's error, shown above.
function destinationItem(destination, callError) {
  const item = element("li", "destination");
  const shown = destination.outcome ?? destination.state;
  item.append(element("span", "to", destination.to), element("span", `status ${shown}`, shown));
  if (destination.callId) {
    const link = element("a", "transcript", "transcript");
    link.href = `#call=${encodeURIComponent(destination.callId)}`;
    item.append(link);
  }
  if (destination.error && destination.error !== callError) item.append(element("span", "error", destination.error));
  return item;
}

async function showTab(name) {
  const onScheduled = name === "scheduled";
  $("#calls-section").hidden = onScheduled;
  $("#scheduled-section").hidden = !onScheduled;
  $("#calls-tab").setAttribute("aria-selected", String(!onScheduled));
  $("#scheduled-tab").setAttribute("aria-selected", String(onScheduled));
  if (onScheduled) await loadScheduled();
  else planScheduledRead(); // the list is not read while it is not seen
}

// A link to a scheduled call (`#scheduled=…`): its tab, the call marked and brought into view.
async function showScheduled(id) {
  scheduled.wanted = id;
  await showTab("scheduled");
  $(`#scheduled li[data-id="${CSS.escape(id)}"]`)?.scrollIntoView({ block: "nearest" });
}

function forgetScheduled() {
  scheduled.calls = [];
  scheduled.wanted = null;
  scheduled.reading++;
  renderScheduled();
  showTab("calls");
}
