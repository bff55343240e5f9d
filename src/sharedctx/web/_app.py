"""The web view as an ASGI app (Starlette): its pages, and the JSON API they read.

Routes (``{id}`` is the session id, percent-encoded; it is decoded exactly from the
raw path, so that an id holding ``/``, ``?``, ``%`` or any other character is itself):

- ``GET /`` the sessions page; ``GET /sessions/{id}`` a session's page;
  ``GET /static/...`` their scripts and styles (shipped in the package)
- ``GET /api/config``: what the page needs to know (writes allowed, CSRF token)
- ``GET /api/sessions``: every session, with its revision and its rate of changes
- ``GET /api/sessions/{id}``: one session
- ``GET /api/sessions/{id}/entries?pattern=&tag=&limit=&after=[&revision=REV]``: a
  page of entries (with ``revision``: as the session was just after REV, read from its
  history by ``snapshot``; a revision it no longer keeps is a 410 naming the oldest
  one it does, a revision after its last a 400)
- ``GET /api/sessions/{id}/entry?key=K[&full=1][&revision=REV]``: one entry (its whole
  value with full; as it was at REV with revision)
- ``GET /api/sessions/{id}/tags``: the tags of the live entries, with their counts
- ``GET /api/sessions/{id}/events?since=REV[&follow=0]``: the changes, as SSE
- ``PUT /api/sessions/{id}/entry?key=K`` (only with ``allow_writes``): set a value
  if its version is still the one given; a CSRF token in ``X-CSRF-Token``

Every other path, and every write without ``allow_writes``, is a 404. The backend's
blocking calls (listing sessions, opening a watch) run on worker threads; reads use
the contexts' awaitable twins.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib.resources
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from sharedctx import (
    KEEP_TTL,
    BackendUnavailableError,
    ContextEntry,
    ContextError,
    HistoryCompactedError,
    InvalidArgumentError,
    KeyProvider,
    SharedContext,
    VersionConflictError,
    __version__,
)
from sharedctx.backends import Backend, SessionAdmin, compile_glob, open_backend
from sharedctx.telemetry import exposition
from sharedctx.web._data import EventMatcher, WriteRates, entry_row, summary_row
from sharedctx.web._guard import Guard
from sharedctx.web._stream import EventStream, OpenWatches, session_events

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "WEB_SOURCE", "create_app"]

DEFAULT_LIMIT = 100
"""Entries in a page when ``limit`` is not given."""
MAX_LIMIT = 1000
WEB_SOURCE = "web"
"""The source of the values set from the page."""

_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

Handler = Callable[[Request, str], Awaitable[Response]]


class BadRequest(Exception):
    """A request with a bad argument: a 400 naming it."""


class NotFound(Exception):
    """Nothing at this address: a 404 saying what."""


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package."""
    folder = importlib.resources.files("sharedctx.web").joinpath("static")
    files = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _STATIC_TYPES:
            files[item.name] = (item.read_bytes(), _STATIC_TYPES[suffix])
    return files


def create_app(
    backend: Backend | str,
    *,
    allow_writes: bool = False,
    token: str | None = None,
    metrics_registry: Any = None,
    keyring: KeyProvider | None = None,
) -> Starlette:
    """The web view of ``backend``'s sessions, as an ASGI app to serve or mount.

    ``backend`` is a ``Backend`` (a ``MemoryBackend`` shows that process's sessions)
    or a URL for :func:`sharedctx.backends.open_backend` (the app then closes it when
    it shuts down). ``keyring``, with a URL: the ``KeyRing`` of sealed sessions (a
    ``Backend`` object takes its own: ``RedisBackend(url, keyring=...)``); a sealed
    session whose key the app does not hold shows its metadata, and ``(sealed)`` in
    place of each value (``"sealed": true`` in the API). Read-only unless
    ``allow_writes``: the write route does not exist otherwise. With ``token``, every
    request must carry it (a bearer header, or the cookie that ``/?token=TOKEN``
    sets); without one, only requests addressed to a loopback name are answered.
    ``/metrics`` serves the Prometheus metrics of ``metrics_registry`` (default:
    ``prometheus_client``'s registry, where ``Telemetry(metrics=True)`` registers them;
    a 404 naming the ``otel`` extra without it). Raises ``InvalidArgumentError`` for a
    bad URL, an empty token, or a ``keyring`` with a ``Backend`` object.
    """
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise InvalidArgumentError("the token must be a non-empty string")
    resolved, owned = open_backend(backend, keyring=keyring)
    view = _View(resolved, allow_writes=allow_writes, metrics_registry=metrics_registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        view.watches.closing = False  # served (again)
        try:
            yield
        finally:
            view.watches.close_all()
            if owned:
                await anyio.to_thread.run_sync(resolved.close)

    app = Starlette(
        routes=[
            Route("/", view.page("index.html")),
            _PrefixRoute("/sessions/", view.page("session.html")),
            Route("/static/{name}", view.static),
            Route("/api/config", view.config),
            Route("/api/sessions", view.sessions),
            _PrefixRoute("/api/sessions/", view.session_api),
            Route("/metrics", view.metrics),
        ],
        middleware=[Middleware(Guard, token=token)],
        exception_handlers={ContextError: _context_error},
        lifespan=lifespan,
    )
    app.state.sharedctx_watches = view.watches
    return app


class _View:
    """The app's state and its endpoints."""

    def __init__(self, backend: Backend, *, allow_writes: bool, metrics_registry: Any) -> None:
        self.backend = backend
        self.metrics_registry = metrics_registry
        self.admin = backend if isinstance(backend, SessionAdmin) else None
        self.allow_writes = allow_writes
        self.csrf_token = secrets.token_urlsafe(32) if allow_writes else None
        self.files = _static_files()
        self.rates = WriteRates()
        self.watches = OpenWatches()
        reads: dict[str, Handler] = {
            "": self.session,
            "entries": self.entries,
            "entry": self.entry,
            "tags": self.tags,
            "events": self.events,
        }
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", action): handler for action, handler in reads.items()
        }
        if allow_writes:
            self.routes["PUT", "entry"] = self.set_entry

    # -- pages -------------------------------------------------------------------

    def page(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return self._file(name)

        return endpoint

    async def metrics(self, request: Request) -> Response:
        """The Prometheus exposition (never a session id, key or value: see
        ``sharedctx.telemetry``)."""
        try:
            body, content_type = exposition(self.metrics_registry, request.headers.get("accept"))
        except ContextError as error:  # no prometheus_client: say which extra
            return _error(404, str(error))
        return Response(body, media_type=content_type)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name.endswith(".html") or name not in self.files:
            return _error(404, f"no file {name!r}")
        return self._file(name)

    def _file(self, name: str) -> Response:
        content, media_type = self.files[name]
        return Response(content, media_type=media_type)

    async def config(self, request: Request) -> Response:
        return JSONResponse(
            {
                "version": __version__,
                "backend": str(self.backend),
                "allow_writes": self.allow_writes,
                "csrf_token": self.csrf_token,
                "lists_sessions": self.admin is not None,
            }
        )

    # -- sessions ----------------------------------------------------------------

    async def sessions(self, request: Request) -> Response:
        if self.admin is None:
            return JSONResponse(
                {
                    "sessions": [],
                    "listed": False,
                    "message": f"{self.backend} cannot list its sessions: open "
                    "/sessions/<id> with the id of one",
                }
            )
        summaries = await anyio.to_thread.run_sync(self.admin.session_summaries)
        rows = []
        for summary in summaries:
            revision = await self._revision(summary.session_id)
            rate = None if revision is None else self.rates.record(summary.session_id, revision)
            rows.append(summary_row(summary, revision, rate))
        self.rates.forget(summary.session_id for summary in summaries)
        return JSONResponse({"now": _now(), "sessions": rows, "listed": True})

    async def _revision(self, session_id: str) -> int | None:
        try:
            async with SharedContext(session_id, backend=self.backend) as context:
                return await context.arevision()
        except ContextError:  # deleted meanwhile
            return None

    async def session_api(self, request: Request) -> Response:
        """``/api/sessions/{id}[/{action}]``: the session's routes, by action."""
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        parts = raw[len(b"/api/sessions/") :].split(b"/")
        if len(parts) > 2:
            return _error(404, "no such route: the session id must be percent-encoded")
        action = parts[1].decode("latin-1") if len(parts) == 2 else ""
        handler = self.routes.get((request.method, action))
        if handler is None:
            if request.method == "PUT" and not self.allow_writes:
                return _error(404, "no such route: this view is read-only (--allow-writes)")
            return _error(404, f"no such route: {request.method} {request.url.path}")
        try:
            session_id = _decode(parts[0], "session id")
            if self.admin is not None and not await anyio.to_thread.run_sync(
                self.admin.has_session, session_id
            ):
                raise NotFound(f"no session {session_id!r} on {self.backend}")
            return await handler(request, session_id)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))

    async def session(self, request: Request, session_id: str) -> Response:
        summary = None
        if self.admin is not None:
            summary = await anyio.to_thread.run_sync(self.admin.session_summary, session_id)
        if summary is None:
            raise NotFound(f"no session {session_id!r} on {self.backend}")
        revision = await self._revision(session_id)
        rate = None if revision is None else self.rates.record(session_id, revision)
        return JSONResponse({"now": _now(), **summary_row(summary, revision, rate)})

    def _context(self, session_id: str) -> SharedContext:
        return SharedContext(session_id, backend=self.backend)

    async def entries(self, request: Request, session_id: str) -> Response:
        query = request.query_params
        pattern = query.get("pattern") or "*"
        tag = query.get("tag") or None
        after = query.get("after") or None
        limit = _integer(query.get("limit"), "limit", DEFAULT_LIMIT, least=1, most=MAX_LIMIT)
        at = _integer(query.get("revision"), "revision", None, least=0)
        try:
            glob = compile_glob(pattern)
        except ContextError as exc:
            raise BadRequest(str(exc)) from None
        async with self._context(session_id) as context:
            latest = await context.arevision()
            # The session as it is, or as it was at `at` (a snapshot: the same queries).
            source: Any = context if at is None else await context.asnapshot(at)
            try:
                if tag is None:
                    found = await source.afind_by_pattern(pattern, limit=limit + 1, after=after)
                else:
                    found = []
                    cursor = after
                    while len(found) <= limit:
                        page = await source.afind_by_tag(tag, limit=limit + 1, after=cursor)
                        found += [entry for entry in page if glob.match(entry.key)]
                        if len(page) <= limit:
                            break
                        cursor = page[-1].key
            except HistoryCompactedError as exc:
                return _compacted(exc, latest)
            except ContextError as exc:
                raise BadRequest(str(exc)) from None
            # (A past revision's count would read the whole snapshot: not per page.)
            count = await context.acount() if at is None else None
        more = len(found) > limit
        found = found[:limit]
        return JSONResponse(
            {
                "session": session_id,
                "revision": latest if at is None else at,
                "latest": latest,
                "past": at is not None,
                "count": count,
                "now": _now(),
                "entries": [entry_row(entry) for entry in found],
                "next": found[-1].key if more and found else None,
            }
        )

    async def entry(self, request: Request, session_id: str) -> Response:
        key = _key(request)
        full = request.query_params.get("full") in ("1", "true", "yes")
        at = _integer(request.query_params.get("revision"), "revision", None, least=0)
        found: ContextEntry | None
        async with self._context(session_id) as context:
            if at is None:
                found = await context.aget_entry(key)
            else:
                try:
                    found = await context.aget_entry(key, revision=at)
                except HistoryCompactedError as exc:
                    return _compacted(exc, await context.arevision())
                except InvalidArgumentError as exc:
                    raise BadRequest(str(exc)) from None
        if found is None:
            when = "" if at is None else f" at revision {at}"
            raise NotFound(f"no entry {key!r} in session {session_id!r}{when}")
        return JSONResponse({"now": _now(), "entry": entry_row(found, full=full)})

    async def tags(self, request: Request, session_id: str) -> Response:
        async with self._context(session_id) as context:
            counts = await context.atags()
        return JSONResponse({"tags": counts})

    async def events(self, request: Request, session_id: str) -> Response:
        query = request.query_params
        last = request.headers.get("last-event-id")
        since = (
            _integer(last, "Last-Event-ID", None, least=0)
            if last
            else _integer(query.get("since"), "since", None, least=0)
        )
        pattern = query.get("pattern") or None
        try:
            glob = None if pattern is None else compile_glob(pattern)
        except ContextError as exc:
            raise BadRequest(str(exc)) from None
        matches = EventMatcher(glob, query.get("tag") or None)
        follow = query.get("follow", "1") not in ("0", "false", "no")
        context = self._context(session_id)
        stream = session_events(
            context, since, matches=matches, follow=follow, watches=self.watches
        )
        return _Streaming(EventStream(stream))

    # -- writes ------------------------------------------------------------------

    async def set_entry(self, request: Request, session_id: str) -> Response:
        """Set a value with ``if_version``; 409 with the entry as it is on a conflict."""
        refusal = self._csrf_refusal(request)
        if refusal is not None:
            return refusal
        key = _key(request)
        value, if_version = await _write_body(request)
        async with self._context(session_id) as context:
            current = await context.aget_entry(key)
            if (0 if current is None else current.version) != if_version:
                return _conflict(key, if_version, current)
            try:
                written = await context.aset(
                    key,
                    value,
                    if_version=if_version,
                    source=WEB_SOURCE,
                    tags=() if current is None else current.tags,
                    ttl=None if current is None else KEEP_TTL,
                )
            except VersionConflictError:
                return _conflict(key, if_version, await context.aget_entry(key))
            except ContextError as exc:  # too large, not serializable...
                raise BadRequest(str(exc)) from None
        return JSONResponse({"now": _now(), "entry": entry_row(written)})

    def _csrf_refusal(self, request: Request) -> Response | None:
        assert self.csrf_token is not None
        given = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(given.encode(), self.csrf_token.encode()):
            return _error(403, "missing or wrong CSRF token (X-CSRF-Token): reload the page")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers['host']}":
            return _error(403, f"a write from another origin ({origin}) is refused")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "a write sends JSON: Content-Type: application/json")
        return None


class _PrefixRoute(BaseRoute):
    """Every path under ``prefix``, whatever it holds: Starlette's ``{name:path}``
    would not match a session id with a line break in it (its pattern is ``.*``)."""

    def __init__(self, prefix: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.prefix = prefix
        self.endpoint = endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)


class _Streaming(Response):
    """A Response that hands the ASGI call to an ``EventStream``."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.stream(scope, receive, send)


def _compacted(error: HistoryCompactedError, latest: int) -> Response:
    """A revision the session no longer keeps: 410, with the oldest one it does (the
    page offers to show that one instead)."""
    return JSONResponse(
        {
            "error": str(error),
            "compacted": {"revision": error.revision, "oldest": error.oldest, "latest": latest},
        },
        status_code=410,
    )


def _conflict(key: str, if_version: int, current: Any) -> Response:
    now = "absent" if current is None else f"at version {current.version}"
    return JSONResponse(
        {
            "error": f"{key!r} changed: it is {now}, not at version {if_version}; "
            "nothing was written",
            "current": None if current is None else entry_row(current),
            "now": _now(),
        },
        status_code=409,
    )


async def _write_body(request: Request) -> tuple[Any, int]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict) or "value" not in body or "if_version" not in body:
        raise BadRequest('the body must be {"value": ..., "if_version": VERSION}')
    version = body["if_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise BadRequest(f"if_version must be a version (an int >= 0), not {version!r}")
    return body["value"], version


def _decode(segment: bytes, what: str) -> str:
    """A percent-encoded path segment, decoded exactly (UTF-8)."""
    try:
        text = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"the {what} is not percent-encoded UTF-8") from None
    if not text:
        raise BadRequest(f"the {what} is empty")
    return text


def _key(request: Request) -> str:
    key = request.query_params.get("key")
    if not key:
        raise BadRequest("give the entry's key: ?key=KEY (percent-encoded)")
    return key


def _integer(
    text: str | None, name: str, default: Any, *, least: int, most: int | None = None
) -> Any:
    if text is None or text == "":
        return default
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or number < least or (most is not None and number > most):
        bounds = f"an integer >= {least}" + ("" if most is None else f" and <= {most}")
        raise BadRequest(f"{name} must be {bounds}, not {text!r}")
    return number


def _now() -> float:
    return time.time()


async def _context_error(request: Request, exc: Exception) -> Response:
    """A backend that failed (unreachable, or an error it raised): its message, as
    JSON, with 503 when it could not be reached."""
    return _error(503 if isinstance(exc, BackendUnavailableError) else 500, str(exc))


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
