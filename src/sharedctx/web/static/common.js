// What both pages share: safe text, DOM building, the API, formats, the JSON view.
//
// Session data (ids, keys, sources, tags, values) is untrusted. It only ever enters
// the page as text: through textContent (el's `text`), never innerHTML, and after
// printable(), which shows control characters, bidi overrides and other invisible
// characters as escapes (\x1b, \u202e...) instead of letting them act, as the
// terminal views do (sharedctx.terminal.printable).

// What Python's str.isprintable() calls not printable: the categories Other (Cc,
// Cf, Cs, Co, Cn) and Separator (Zl, Zp, and Zs but the ASCII space).
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu;
const NAMED = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

function escapeChar(char) {
  if (NAMED[char]) return NAMED[char];
  const code = char.codePointAt(0);
  const hex = code.toString(16);
  if (code < 0x100) return "\\x" + hex.padStart(2, "0");
  if (code < 0x10000) return "\\u" + hex.padStart(4, "0");
  return "\\U" + hex.padStart(8, "0");
}

/** `text` with every non-printable character escaped, as Python's repr does. */
export function printable(text) {
  return String(text).replace(NOT_PRINTABLE, escapeChar);
}

/** A new element: `tag` with `options` {cls, text, title, attrs, on} and children.
 *  Text goes in through textContent only, after printable(). */
export function el(tag, options = {}, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  if (options.cls) node.setAttribute("class", options.cls);
  if (options.text !== undefined && options.text !== null) {
    node.textContent = printable(options.text);
  }
  if (options.title !== undefined) node.setAttribute("title", printable(options.title));
  for (const [name, value] of Object.entries(options.attrs || {})) {
    node.setAttribute(name, String(value));
  }
  for (const [name, handler] of Object.entries(options.on || {})) {
    node.addEventListener(name, handler);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** A path segment for a session id or key: percent-encoded (the server decodes it
 *  exactly). */
export function segment(text) {
  return encodeURIComponent(text);
}

/** The session id of a session page's address (/sessions/<percent-encoded id>). */
export function sessionIdOfPage() {
  const path = location.pathname;
  return decodeURIComponent(path.slice(path.indexOf("/sessions/") + "/sessions/".length));
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** GET (or `options.method`) `path` of this server; the parsed JSON answer, or an
 *  ApiError carrying the server's message. */
export async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, body);
  }
  return body;
}

/** The server's clock, from the `now` of its last answer. */
let clockOffset = 0;
export function syncClock(serverNow) {
  if (typeof serverNow === "number") clockOffset = serverNow - Date.now() / 1000;
}
export function serverNow() {
  return Date.now() / 1000 + clockOffset;
}

export function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} kB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export function formatClock(seconds) {
  const date = new Date(seconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function formatSpan(seconds) {
  seconds = Math.max(0, seconds);
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** Compare two strings by code point (as Python sorts keys), not by UTF-16 unit. */
export function compareKeys(a, b) {
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  const left = Array.from(a);
  const right = Array.from(b);
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const diff = left[i].codePointAt(0) - right[i].codePointAt(0);
    if (diff) return diff;
  }
  return left.length - right.length;
}

function scalar(value) {
  if (value === null) return el("span", { cls: "json-null", text: "null" });
  if (typeof value === "string") return el("span", { cls: "json-string", text: JSON.stringify(value) });
  if (typeof value === "number") return el("span", { cls: "json-number", text: String(value) });
  if (typeof value === "boolean") return el("span", { cls: "json-bool", text: String(value) });
  return el("span", { text: String(value) });
}

function outline(value) {
  if (Array.isArray(value)) return `[${value.length} items]`;
  const keys = Object.keys(value);
  const shown = keys.slice(0, 3).map((key) => JSON.stringify(key)).join(", ");
  return `{${shown}${keys.length > 3 ? `, … ${keys.length} keys` : ""}}`;
}

/** A value as a collapsible JSON tree (details/summary), all of it text. Levels
 *  below `open` start folded. */
export function jsonView(value, open = 1) {
  if (value === null || typeof value !== "object") return scalar(value);
  const entries = Array.isArray(value) ? value.map((item, i) => [i, item]) : Object.entries(value);
  const details = el("details", { cls: "json" }, el("summary", { text: outline(value) }));
  if (open > 0) details.open = true;
  const list = el("ul");
  for (const [name, item] of entries) {
    const label = Array.isArray(value) ? `${name}: ` : `${JSON.stringify(name)}: `;
    list.append(el("li", {}, el("span", { cls: "json-key", text: label }), jsonView(item, open - 1)));
  }
  details.append(list);
  return details;
}

/** Set a status line's text and kind (ok, busy, error). */
export function setStatus(node, text, kind = "ok") {
  node.textContent = printable(text);
  node.setAttribute("data-kind", kind);
}
