// A session's page: its entries (paged, filtered, live), a timeline of its changes
// by source, and the feed of its events, all from the server's event stream. The
// revision slider shows the entries as they were at a past revision instead (read
// from the session's history: `entries?revision=REV`, paged the same way); the feed
// and the timeline go on live meanwhile.
//
// The stream sends each change with `id: <revision>`. The browser's EventSource
// sends the last one back (Last-Event-ID) when it reconnects, and the server replays
// what was missed, so the page sees every revision once and in order; a gap the
// session no longer keeps comes as an event of its own ("gap") and is shown.
import {
  api, ApiError, compareKeys, el, formatBytes, formatClock, formatSpan, jsonView, printable,
  segment, serverNow, sessionIdOfPage, setStatus, syncClock,
} from "/static/common.js";

const PAGE_SIZE = 100;
const HISTORY = 500; // changes before the page opened that the feed and timeline show
const FEED_MAX = 500;
const MARKS_MAX = 2000;
const TIMELINE_SPAN = 600; // seconds shown at most
const RECONNECT_MS = 1000;
const SEALED = "(sealed)";
const SEALED_HELP = "sealed: serve with the session's key ring (--keys-file or SHAREDCTX_KEYS) to see and set its values";

const sessionId = sessionIdOfPage();
const base = `/api/sessions/${segment(sessionId)}`;
const status = document.getElementById("status");
const tbody = document.querySelector("#entries tbody");
const feed = document.getElementById("feed");
const tooltip = document.getElementById("tooltip");
const slider = document.getElementById("revision-slider");
const revisionNumber = document.getElementById("revision-number");
const liveButton = document.getElementById("revision-live");
const revisionNote = document.getElementById("revision-note");
const revisionMessage = document.getElementById("revision-message");
const LIVE_NOTE = "live: the entries as they are now";
const SLIDE_MS = 150; // a slider being dragged reads the entries once it rests this long

const state = {
  config: { allow_writes: false, csrf_token: null },
  filter: { pattern: "*", tag: "" },
  after: null, // the key the shown page starts after (null: the first page)
  next: null, // the key the next page starts after, if there is one
  count: 0,
  rows: new Map(), // key -> { tr, entry }
  order: [], // the shown keys, sorted
  tableRevision: 0, // the revision the shown entries were read at (or after)
  lastRevision: null, // the last revision applied
  source: null,
  marks: [],
  lanes: [],
  timelineDirty: true,
  editing: null,
  summarySoon: null,
  viewRevision: null, // the past revision the table shows (null: live)
  latest: 0, // the session's last revision, as far as the page knows
  loads: 0, // entries requests made: an answer to an older one is dropped
  slideSoon: null,
  sliding: false, // the slider's thumb is held
};

// For the tests and the benchmarks: every revision received, in order (before any
// check), the gaps and losses shown, and how often the stream (re)opened.
const log = {
  received: [], gaps: [], lost: [], opened: 0, loaded: 0, firstRender: null, compacted: [],
};
window.sharedctxPage = log;

// -- entries ------------------------------------------------------------------

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  return search.toString();
}

function ttlText(entry) {
  if (entry.expires === null) return "never";
  const left = entry.expires - serverNow();
  return left > 0 ? (left < 60 ? `${left.toFixed(1)} s` : formatSpan(left)) : "expiring";
}

function valueCell(entry) {
  const cell = el("td", { cls: "value" });
  const revision = state.viewRevision; // (the whole value of the revision shown)
  if (entry.sealed) {
    // A sealed session's value, and the server has not its key ring.
    cell.append(el("span", { cls: "muted sealed", text: SEALED, title: SEALED_HELP }));
    return cell;
  }
  if (entry.value_error) {
    cell.append(el("span", { cls: "error", text: entry.value_error }));
    return cell;
  }
  cell.append(jsonView(entry.value, 0));
  if (entry.truncated) {
    const more = el("button", { cls: "more", text: `all ${formatBytes(entry.size)}`, attrs: { type: "button" } });
    more.addEventListener("click", async () => {
      try {
        const answer = await api(`${base}/entry?${query({ key: entry.key, full: 1, revision })}`);
        cell.replaceChildren(jsonView(answer.entry.value, 1));
      } catch (error) {
        more.replaceWith(el("span", { cls: "error", text: error.message }));
      }
    });
    cell.append(" ", el("span", { cls: "muted truncated", text: "(a preview)" }), " ", more);
  }
  return cell;
}

function rowFor(entry) {
  const tr = el(
    "tr",
    { attrs: { "data-key": entry.key } },
    el("td", { cls: "key", text: entry.key }),
    el("td", { cls: "num version", text: String(entry.version) }),
    el("td", { cls: "num revision", text: String(entry.revision) }),
    el("td", { cls: "source", text: entry.source }),
    el("td", { cls: "tags" }, ...entry.tags.map((tag) => el("span", { cls: "tag", text: tag }))),
    el("td", { cls: "num size", text: formatBytes(entry.size) }),
    el("td", { cls: "num ttl", text: ttlText(entry) }),
    valueCell(entry),
  );
  if (state.config.allow_writes && state.viewRevision !== null) {
    tr.append(el("td")); // a past revision is read-only
  } else if (state.config.allow_writes && entry.sealed) {
    tr.append(el("td", {}, el("button", { cls: "edit", text: "set…", title: SEALED_HELP, attrs: { type: "button", disabled: "" } })));
  } else if (state.config.allow_writes) {
    tr.append(el("td", {}, el("button", { cls: "edit", text: "set…", attrs: { type: "button" }, on: { click: () => openEditor(entry.key) } })));
  }
  return tr;
}

/** Where `key` goes among the shown keys (sorted as the server sorts them). */
function position(key) {
  let low = 0;
  let high = state.order.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (compareKeys(state.order[middle], key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

function showRow(entry) {
  const row = { tr: rowFor(entry), entry };
  const old = state.rows.get(entry.key);
  if (old) {
    old.tr.replaceWith(row.tr);
  } else {
    const at = position(entry.key);
    const after = state.order[at];
    tbody.insertBefore(row.tr, after === undefined ? null : state.rows.get(after).tr);
    state.order.splice(at, 0, entry.key);
  }
  state.rows.set(entry.key, row);
  if (state.order.length > PAGE_SIZE) {
    // A page holds PAGE_SIZE entries: the last one moves to the next page.
    const last = state.order.pop();
    state.rows.get(last).tr.remove();
    state.rows.delete(last);
    state.next = state.order[state.order.length - 1];
    document.getElementById("next").hidden = false;
  }
}

function dropRow(key) {
  const row = state.rows.get(key);
  if (row) {
    row.tr.remove();
    state.rows.delete(key);
    state.order.splice(position(key), 1);
  }
}

function onShownPage(key) {
  if (state.after !== null && compareKeys(key, state.after) <= 0) return false;
  if (state.next === null) return true;
  return compareKeys(key, state.next) <= 0;
}

function showCount() {
  const count = document.getElementById("count");
  if (state.viewRevision === null) {
    count.textContent = `${state.count} live · revision ${state.lastRevision ?? state.tableRevision}`;
  } else if (revisionMessage.hidden) {
    const more = state.next === null ? "" : " on this page";
    count.textContent = `at revision ${state.viewRevision} · ${state.order.length} shown${more} · now at ${latestRevision()}`;
  }
}

async function loadEntries() {
  const { pattern, tag } = state.filter;
  const revision = state.viewRevision;
  const ticket = ++state.loads;
  const table = document.getElementById("entries");
  table.setAttribute("data-shown", "loading"); // (then the revision shown, or "live")
  let answer;
  try {
    answer = await api(`${base}/entries?${query({ pattern, tag, limit: PAGE_SIZE, after: state.after, revision })}`);
  } catch (error) {
    if (ticket !== state.loads) return;
    if (revision !== null && error instanceof ApiError && error.status === 410) {
      showCompacted(error.body);
      return;
    }
    throw error;
  }
  if (ticket !== state.loads) return; // the page asked for something else since
  syncClock(answer.now);
  state.latest = Math.max(state.latest, answer.latest);
  if (!answer.past) {
    state.tableRevision = answer.revision;
    state.count = answer.count;
  }
  revisionMessage.hidden = true;
  state.next = answer.next;
  state.rows.clear();
  state.order = [];
  tbody.replaceChildren();
  for (const entry of answer.entries) showRow(entry);
  document.getElementById("next").hidden = answer.next === null;
  document.getElementById("first").hidden = state.after === null;
  table.setAttribute("data-shown", revision === null ? "live" : String(revision));
  showSliderRange();
  showCount();
  log.loaded += 1;
  if (log.firstRender === null) log.firstRender = performance.now();
}

async function loadTags() {
  const select = document.querySelector("#filter select[name=tag]");
  const answer = await api(`${base}/tags`);
  const options = [el("option", { text: "any", attrs: { value: "" } })];
  for (const [tag, count] of Object.entries(answer.tags)) {
    const option = el("option", { text: `${tag} (${count})`, attrs: { value: "" } });
    option.value = tag; // the exact tag, not its printable form
    options.push(option);
  }
  select.replaceChildren(...options);
  select.value = state.filter.tag;
}

/** A change, on the table of entries (if it is newer than what the table shows). */
function applyToTable(event) {
  if (state.viewRevision !== null) return; // a past revision does not change
  if (event.revision <= state.tableRevision) return;
  if (event.action === "set" && event.version === 1) state.count += 1;
  if (event.action !== "set") state.count = Math.max(0, state.count - 1);
  const row = state.rows.get(event.key);
  if (row && row.entry.revision >= event.revision) return; // the table is newer
  if (event.action !== "set" || !event.matches) {
    dropRow(event.key);
    return;
  }
  if (row || onShownPage(event.key)) showRow({ ...event, revision: event.revision });
}

function tick() {
  for (const { tr, entry } of state.rows.values()) {
    const cell = tr.querySelector(".ttl");
    if (cell && entry.expires !== null) cell.textContent = ttlText(entry);
  }
}

// -- the feed and the timeline ----------------------------------------------

function describe(event) {
  const when = event.time === null ? "time not recorded" : formatClock(event.time);
  return `#${event.revision} ${event.action} ${event.key} v${event.version} from ${event.source} at ${when}`;
}

function addToFeed(event) {
  const item = el(
    "li",
    { cls: `event ${event.action}`, attrs: { "data-revision": event.revision } },
    el("span", { cls: "time", text: event.time === null ? "–" : formatClock(event.time) }),
    el("span", { cls: "revision", text: `#${event.revision}` }),
    el("span", { cls: "action", text: event.action }),
    el("span", { cls: "key", text: event.key }),
    el("span", { cls: "version", text: `v${event.version}` }),
    el("span", { cls: "source", text: event.source }),
  );
  feed.prepend(item);
  while (feed.childElementCount > FEED_MAX) feed.lastElementChild.remove();
}

function addNote(kind, text) {
  feed.prepend(el("li", { cls: `note ${kind}`, text }));
}

function addMark(event) {
  const previous = state.marks.length ? state.marks[state.marks.length - 1].time : serverNow();
  // A delete or eviction replayed from the history carries no time: it happened after
  // the change before it, so it is drawn there.
  const time = event.time ?? previous;
  state.marks.push({ revision: event.revision, time, action: event.action, key: event.key, source: event.source, event });
  if (state.marks.length > MARKS_MAX) state.marks.splice(0, state.marks.length - MARKS_MAX);
  if (!state.lanes.includes(event.source)) {
    state.lanes.push(event.source);
    state.lanes.sort(compareKeys);
  }
  state.timelineDirty = true;
}

const LANE = 18;
const LABELS = 150;

function drawTimeline() {
  const box = document.getElementById("timeline");
  const width = Math.max(400, box.clientWidth);
  const height = Math.max(1, state.lanes.length) * LANE + 24;
  const end = serverNow();
  const first = state.marks.length ? state.marks[0].time : end;
  const start = Math.max(Math.min(first, end - 10), end - TIMELINE_SPAN);
  const plot = width - LABELS - 10;
  const x = (time) => LABELS + ((time - start) / (end - start)) * plot;
  const svg = el("svg:svg", { attrs: { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" } });
  state.lanes.forEach((source, lane) => {
    const y = lane * LANE;
    svg.append(el("svg:rect", { cls: `lane ${lane % 2 ? "odd" : "even"}`, attrs: { x: 0, y, width, height: LANE } }));
    svg.append(el("svg:text", { cls: "lane-label", text: source.length > 22 ? `${source.slice(0, 21)}…` : source, attrs: { x: 4, y: y + 13 } }));
  });
  for (let tick = 0; tick <= 4; tick++) {
    const time = start + ((end - start) * tick) / 4;
    const at = x(time);
    svg.append(el("svg:line", { cls: "tick", attrs: { x1: at, x2: at, y1: 0, y2: height - 20 } }));
    svg.append(el("svg:text", { cls: "tick-label", text: formatClock(time).slice(0, 8), attrs: { x: at - 24, y: height - 6 } }));
  }
  state.marks.forEach((mark, index) => {
    if (mark.time < start) return;
    const lane = state.lanes.indexOf(mark.source);
    svg.append(
      el("svg:rect", {
        cls: `mark ${mark.action}`,
        attrs: { x: x(mark.time) - 1.5, y: lane * LANE + 3, width: 3, height: LANE - 6, "data-index": index, "data-revision": mark.revision },
      }),
    );
  });
  box.replaceChildren(svg);
  state.timelineDirty = false;
}

function onHover(event) {
  const target = event.target.closest ? event.target.closest(".mark") : null;
  if (!target) {
    tooltip.hidden = true;
    return;
  }
  const mark = state.marks[Number(target.getAttribute("data-index"))];
  if (!mark) return;
  tooltip.textContent = printable(describe(mark.event));
  tooltip.hidden = false;
  tooltip.style.left = `${event.pageX + 12}px`;
  tooltip.style.top = `${event.pageY + 12}px`;
}

// -- the revision slider ------------------------------------------------------

function latestRevision() {
  return Math.max(state.latest, state.lastRevision ?? 0, state.tableRevision);
}

/** The slider spans revisions 0 to the last; live, it follows the last (but not
 *  under the hand of someone moving it, or typing a revision). */
function showSliderRange() {
  const latest = latestRevision();
  slider.max = String(latest);
  revisionNumber.max = String(latest);
  if (state.viewRevision === null) {
    if (!state.sliding) slider.value = String(latest);
    if (document.activeElement !== revisionNumber) revisionNumber.value = String(latest);
  }
}

function updateLocation() {
  const search = query({ ...state.filter, revision: state.viewRevision });
  history.replaceState(null, "", search ? `${location.pathname}?${search}` : location.pathname);
}

/** Show the entries as they were just after `revision` (the last one: live). */
async function showRevision(revision) {
  const latest = latestRevision();
  const target = Math.max(0, Math.min(Math.floor(Number(revision) || 0), latest));
  if (target >= latest) {
    await goLive();
    return;
  }
  slider.value = String(target);
  revisionNumber.value = String(target);
  if (target === state.viewRevision && revisionMessage.hidden) return; // shown already
  state.viewRevision = target;
  state.after = null;
  document.body.classList.add("past");
  if (state.editing !== null) closeEditor();
  liveButton.disabled = false;
  revisionNote.textContent = `the entries as they were just after revision ${target}: read-only`;
  updateLocation();
  await reload();
}

async function goLive() {
  const was = state.viewRevision;
  state.viewRevision = null;
  liveButton.disabled = true;
  revisionNote.textContent = LIVE_NOTE;
  revisionMessage.hidden = true;
  document.body.classList.remove("past");
  showSliderRange();
  if (was === null) return;
  state.after = null;
  updateLocation();
  await reload(); // the entries now, and the changes after them as they come
}

/** A revision the session no longer keeps: say so, with the oldest one it does. */
function showCompacted(body) {
  const { revision, oldest, latest } = body.compacted;
  log.compacted.push({ revision, oldest });
  state.latest = Math.max(state.latest, latest);
  state.rows.clear();
  state.order = [];
  state.next = null;
  tbody.replaceChildren();
  document.getElementById("next").hidden = true;
  document.getElementById("first").hidden = true;
  const text = oldest >= latest
    ? `Revision ${revision} is no longer kept: this session keeps no state before its current revision ${latest} (its writers keep past versions with history_versions, for history_retention).`
    : `Revision ${revision} is no longer kept: the oldest revision this session can still show is ${oldest}. (Past versions are kept by history_versions and history_retention, and go with their key when it is deleted, evicted or expires.)`;
  revisionMessage.replaceChildren(el("span", { cls: "compacted", text, title: body.error }));
  if (oldest < latest) {
    revisionMessage.append(
      el("button", { text: `show revision ${oldest}`, attrs: { type: "button", id: "revision-oldest" }, on: { click: () => showRevision(oldest) } }),
    );
  }
  revisionMessage.hidden = false;
  document.getElementById("count").textContent = `revision ${revision} · no longer kept`;
  document.getElementById("entries").setAttribute("data-shown", "none");
}

function onSlide() {
  revisionNumber.value = slider.value;
  clearTimeout(state.slideSoon);
  state.slideSoon = setTimeout(() => showRevision(slider.value), SLIDE_MS);
}

function onSlid() {
  clearTimeout(state.slideSoon);
  showRevision(slider.value);
}

// -- the event stream ---------------------------------------------------------

function onChange(message) {
  const revision = Number(message.lastEventId);
  log.received.push(revision);
  if (state.lastRevision !== null && revision <= state.lastRevision) return; // never twice
  state.lastRevision = revision;
  state.latest = Math.max(state.latest, revision);
  showSliderRange();
  const event = JSON.parse(message.data);
  addToFeed(event);
  addMark(event);
  applyToTable(event);
  showCount();
  if (!state.summarySoon) {
    state.summarySoon = setTimeout(() => {
      state.summarySoon = null;
      refreshSummary();
    }, 1000);
  }
}

async function onGap(message) {
  const gap = JSON.parse(message.data);
  log.gaps.push(gap);
  state.lastRevision = gap.revision;
  addNote("gap", `gap: ${gap.message}; the entries are read again at revision ${gap.revision}`);
  await reload();
}

async function onLost(message) {
  const lost = JSON.parse(message.data);
  log.lost.push(lost);
  addNote("lost", lost.message);
  state.latest = 0; // its revisions start again
  if (state.viewRevision !== null) await goLive();
  else await reload();
}

async function reload() {
  try {
    await loadEntries();
  } catch (error) {
    setStatus(status, error.message, "error");
  }
}

function connect(since) {
  if (state.source) state.source.close();
  const { pattern, tag } = state.filter;
  const source = new EventSource(`${base}/events?${query({ since, pattern, tag })}`);
  state.source = source;
  source.addEventListener("message", onChange);
  source.addEventListener("gap", onGap);
  source.addEventListener("lost", onLost);
  source.addEventListener("open", () => {
    log.opened += 1;
    setStatus(status, "live");
  });
  source.addEventListener("error", () => {
    if (state.source !== source) return;
    setStatus(status, "reconnecting…", "busy");
    if (source.readyState === EventSource.CLOSED) {
      // Refused for good (not a network break, which EventSource retries by itself):
      // open a new one from the last revision seen.
      setTimeout(() => {
        if (state.source === source) connect(state.lastRevision ?? state.tableRevision);
      }, RECONNECT_MS);
    }
  });
}

// -- writes (only with --allow-writes) ------------------------------------------

function closeEditor() {
  document.getElementById("editor-slot").replaceChildren();
  state.editing = null;
}

async function openEditor(key) {
  let answer;
  try {
    answer = await api(`${base}/entry?${query({ key, full: 1 })}`);
  } catch (error) {
    setStatus(status, error.message, "error");
    return;
  }
  const entry = answer.entry;
  const message = el("div", { cls: "editor-message" });
  const version = el("input", { attrs: { type: "hidden", name: "if_version", value: entry.version } });
  const heading = el("h2", { text: `Set ${key} (version ${entry.version})` });
  const text = el("textarea", { attrs: { name: "value", rows: 12, spellcheck: "false" } });
  text.value = JSON.stringify(entry.value, null, 2);
  const form = el(
    "form",
    { attrs: { id: "editor-form" } },
    el("input", { attrs: { type: "hidden", name: "csrf_token", value: state.config.csrf_token } }),
    version,
    el("p", { cls: "muted", text: `The value as JSON. It is set only if the entry is still at version ${entry.version}.` }),
    text,
    el("p", {}, el("button", { text: "save", attrs: { type: "submit" } }), " ", el("button", { text: "close", attrs: { type: "button" }, on: { click: closeEditor } })),
    message,
  );
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    let value;
    try {
      value = JSON.parse(text.value);
    } catch (error) {
      message.replaceChildren(el("p", { cls: "error", text: `not JSON: ${error.message}` }));
      return;
    }
    const token = form.elements.csrf_token.value;
    if (!token) return; // no write without the CSRF token
    const ifVersion = Number(version.value);
    try {
      const saved = await api(`${base}/entry?${query({ key })}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify({ value, if_version: ifVersion }),
      });
      version.value = String(saved.entry.version);
      heading.textContent = printable(`Set ${key} (version ${saved.entry.version})`);
      message.replaceChildren(el("p", { cls: "saved", text: `saved: ${key} is at version ${saved.entry.version}` }));
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        const current = error.body.current;
        const now = current ? `it is at version ${current.version}, set by ${current.source}` : "it was removed";
        message.replaceChildren(
          el("p", { cls: "conflict", text: `conflict: ${key} changed since version ${ifVersion}: ${now}. Your value was not written. The value now:` }),
          current ? jsonView(current.value, 2) : el("p", { text: "(none)" }),
        );
      } else {
        message.replaceChildren(el("p", { cls: "error", text: error.message }));
      }
    }
  });
  const section = el("section", { attrs: { id: "editor" } }, heading, form);
  document.getElementById("editor-slot").replaceChildren(section);
  state.editing = key;
  text.focus();
}

// -- start ------------------------------------------------------------------------

async function refreshSummary() {
  try {
    const summary = await api(base);
    syncClock(summary.now);
    state.count = summary.entries;
    const drops = summary.drops_at === null ? "never dropped" : `dropped in ${formatSpan(summary.drops_at - serverNow())}`;
    document.getElementById("summary").textContent = printable(
      `${summary.entries} entries · ${formatBytes(summary.bytes)} · revision ${summary.revision} · ${drops}`,
    );
    showCount();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      document.getElementById("summary").textContent = "the session no longer exists";
    }
  }
}

function readFilter() {
  const params = new URLSearchParams(location.search);
  state.filter = { pattern: params.get("pattern") || "*", tag: params.get("tag") || "" };
  const form = document.getElementById("filter");
  form.elements.pattern.value = state.filter.pattern;
  const revision = params.get("revision");
  return revision !== null && /^\d+$/.test(revision) ? Number(revision) : null;
}

async function start() {
  document.getElementById("session-id").textContent = printable(sessionId);
  document.title = `sharedctx: ${printable(sessionId)}`;
  const asked = readFilter();
  try {
    state.config = await api("/api/config");
    await loadEntries();
  } catch (error) {
    setStatus(status, error.message, "error");
    return;
  }
  if (asked !== null) await showRevision(asked); // an address with ?revision=REV
  if (state.config.allow_writes) {
    document.querySelector("#entries thead tr").append(el("th", {}));
  }
  loadTags().catch(() => {});
  refreshSummary();
  connect(Math.max(0, state.tableRevision - HISTORY));

  document.getElementById("filter").addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const form = submitted.target;
    state.filter = { pattern: form.elements.pattern.value || "*", tag: form.elements.tag.value };
    state.after = null;
    updateLocation();
    const last = state.lastRevision ?? state.tableRevision;
    try {
      await loadEntries();
      connect(last); // the stream marks which changes fit the new filter
    } catch (error) {
      setStatus(status, error.message, "error");
    }
  });
  document.getElementById("next").addEventListener("click", () => {
    state.after = state.next;
    reload();
  });
  document.getElementById("first").addEventListener("click", () => {
    state.after = null;
    reload();
  });
  slider.addEventListener("input", onSlide);
  slider.addEventListener("change", onSlid);
  slider.addEventListener("pointerdown", () => {
    state.sliding = true;
  });
  document.addEventListener("pointerup", () => {
    state.sliding = false;
  });
  revisionNumber.addEventListener("change", () => showRevision(revisionNumber.value));
  document.getElementById("revision").addEventListener("submit", (submitted) => {
    submitted.preventDefault(); // (Enter in the number)
    showRevision(revisionNumber.value);
  });
  liveButton.addEventListener("click", () => goLive());
  document.getElementById("timeline").addEventListener("click", (clicked) => {
    // A mark on the timeline: the session just after that change.
    const target = clicked.target.closest ? clicked.target.closest(".mark") : null;
    if (target) showRevision(Number(target.getAttribute("data-revision")));
  });
  document.getElementById("timeline").addEventListener("mouseover", onHover);
  document.getElementById("timeline").addEventListener("mouseleave", () => {
    tooltip.hidden = true;
  });
  setInterval(tick, 250);
  setInterval(refreshSummary, 5000);
  // Redrawn at most twice a second (and every second, as time moves on).
  let drawn = 0;
  setInterval(() => {
    const now = Date.now();
    if (state.timelineDirty || now - drawn >= 1000) {
      drawTimeline();
      drawn = now;
    }
  }, 500);
}

start();
