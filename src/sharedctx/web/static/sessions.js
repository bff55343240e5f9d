// The sessions page: every session of the backend, refreshed every two seconds.
import { api, el, formatBytes, formatSpan, printable, segment, serverNow, setStatus, syncClock } from "/static/common.js";

const REFRESH_MS = 2000;
const body = document.querySelector("#sessions tbody");
const status = document.getElementById("status");

// For the tests and the benchmarks: what the page last drew.
window.sharedctxSessions = { refreshed: 0, sessions: [] };

function ago(seconds) {
  return seconds === null ? "–" : `${formatSpan(serverNow() - seconds)} ago`;
}

function dropped(seconds) {
  return seconds === null ? "never" : `in ${formatSpan(seconds - serverNow())}`;
}

function rate(row) {
  if (row.rate === null) return "–";
  return row.rate < 10 ? row.rate.toFixed(1) : String(Math.round(row.rate));
}

function draw(rows) {
  const lines = rows.map((row) =>
    el(
      "tr",
      { attrs: { "data-session": row.session } },
      el("td", {}, el("a", { text: row.session, attrs: { href: `/sessions/${segment(row.session)}` } })),
      el("td", { cls: "num", text: String(row.entries) }),
      el("td", { cls: "num", text: formatBytes(row.bytes) }),
      el("td", { cls: "num", text: row.revision === null ? "–" : String(row.revision) }),
      el("td", { text: ago(row.last_write) }),
      el("td", { text: dropped(row.drops_at) }),
      el("td", {
        cls: "num rate",
        text: rate(row),
        title: row.rate_window === null ? "measured after two readings" : `over the last ${Math.round(row.rate_window)} s`,
      }),
    ),
  );
  body.replaceChildren(...lines);
  document.getElementById("empty").hidden = rows.length > 0;
}

async function refresh() {
  try {
    const answer = await api("/api/sessions");
    syncClock(answer.now);
    if (!answer.listed) {
      const message = document.getElementById("message");
      message.textContent = printable(answer.message);
      message.hidden = false;
    }
    draw(answer.sessions);
    window.sharedctxSessions = { refreshed: window.sharedctxSessions.refreshed + 1, sessions: answer.sessions };
    setStatus(status, `live · ${answer.sessions.length} sessions · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus(status, `cannot reach the server: ${error.message}`, "error");
  }
  setTimeout(refresh, REFRESH_MS);
}

async function start() {
  try {
    const config = await api("/api/config");
    document.getElementById("backend").textContent = printable(`backend ${config.backend} · sharedctx ${config.version}`);
  } catch (error) {
    setStatus(status, error.message, "error");
  }
  refresh();
}

start();
