"""The JSON API and the event stream, as curl sees them, on memory and on Redis; the
security rules of every answer."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from sharedctx import MemoryBackend, SharedContext
from sharedctx.web import WebServer, create_app
from sharedctx.web._data import PREVIEW_TEXT
from sharedctx.web._guard import CONTENT_SECURITY_POLICY

from .conftest import Site


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to the app at ``url`` (``path`` as is: already percent-encoded)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    answer = Answer(
        response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    )
    connection.close()
    return answer


def api(site: Site, path: str, **options: Any) -> Any:
    answer = call(site.url, path, **options)
    assert answer.status == 200, answer.body
    return answer.json()


def segment(text: str) -> str:
    return quote(text, safe="")


def read_stream(url: str, path: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The messages of an event stream that ends (``follow=0``), as dicts of fields."""
    answer = call(url, path, headers=headers)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    messages = []
    for block in answer.body.decode().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        if fields and set(fields) != {"retry"}:
            messages.append(fields)
    return messages


def test_the_sessions_with_their_revision_and_rate(site: Site) -> None:
    session = site.new_session()
    context = site.context(session)
    context.set("a", 1, ttl=600)
    context.set("b", 2)
    first = api(site, "/api/sessions")
    assert first["listed"] is True
    row = next(row for row in first["sessions"] if row["session"] == session)
    assert row["entries"] == 2
    assert row["revision"] == 2
    assert row["rate"] is None  # one reading so far
    assert row["last_write"] <= first["now"]
    one = api(site, f"/api/sessions/{segment(session)}")
    assert one["session"] == session
    assert one["revision"] == 2
    assert call(site.url, "/api/sessions/no-such-session").status == 404


def test_entries_come_in_pages_filtered_by_pattern_and_tag(site: Site) -> None:
    session = site.new_session()
    context = site.context(session)
    for n in range(25):
        context.set(f"mind:{n:02}", n, tags=["even"] if n % 2 == 0 else ["odd"])
    context.set("other", 0, tags=["even"])
    base = f"/api/sessions/{segment(session)}/entries"
    page = api(site, f"{base}?pattern=mind:*&limit=10")
    assert [entry["key"] for entry in page["entries"]] == [f"mind:{n:02}" for n in range(10)]
    assert page["next"] == "mind:09"
    assert page["count"] == 26
    assert page["revision"] == 26
    rest = api(site, f"{base}?pattern=mind:*&limit=10&after=mind:19")
    assert [entry["value"] for entry in rest["entries"]] == list(range(20, 25))
    assert rest["next"] is None
    tagged = api(site, f"{base}?tag=even&pattern=mind:*&limit=5")
    evens = [f"mind:{n:02}" for n in range(0, 10, 2)]
    assert [entry["key"] for entry in tagged["entries"]] == evens
    assert api(site, f"{base}?tag=even")["entries"][-1]["key"] == "other"
    assert api(site, f"/api/sessions/{segment(session)}/tags")["tags"] == {"even": 14, "odd": 12}
    for bad in ("limit=0", "limit=x", "limit=1001", "pattern=%5B"):
        answer = call(site.url, f"{base}?{bad}")
        assert answer.status == 400, bad
        assert answer.json()["error"]


def history_context(site: Site, session: str, versions: int) -> SharedContext:
    """A context that keeps ``versions`` past versions of each key, closed (and its
    session destroyed) after the test."""
    site.sessions.add(session)
    context = SharedContext(session, backend=site.backend, history_versions=versions)
    site.contexts.append(context)
    return context


def test_entries_at_a_past_revision_are_the_snapshot_paged_and_filtered(site: Site) -> None:
    session = site.new_session()
    context = history_context(site, session, 4)
    for n in range(6):
        context.set(f"mind:{n}", {"round": 1}, tags=["even"] if n % 2 == 0 else ["odd"])
    then = context.revision
    for n in range(6):
        context.set(f"mind:{n}", {"round": 2})
    context.set("later", 1)
    latest = context.revision
    base = f"/api/sessions/{segment(session)}/entries"
    page = api(site, f"{base}?revision={then}&limit=4")
    assert (page["revision"], page["latest"], page["past"]) == (then, latest, True)
    assert page["count"] is None  # (it would read the whole snapshot)
    assert [entry["key"] for entry in page["entries"]] == [f"mind:{n}" for n in range(4)]
    assert {entry["value"]["round"] for entry in page["entries"]} == {1}
    assert [entry["version"] for entry in page["entries"]] == [1] * 4
    assert page["next"] == "mind:3"
    rest = api(site, f"{base}?revision={then}&limit=4&after=mind:3")
    assert [entry["key"] for entry in rest["entries"]] == ["mind:4", "mind:5"]
    assert rest["next"] is None
    tagged = api(site, f"{base}?revision={then}&tag=even&pattern=mind:*")
    assert [entry["key"] for entry in tagged["entries"]] == ["mind:0", "mind:2", "mind:4"]
    # (the live page is as before: the revision now, its count, not "past")
    live = api(site, f"{base}?pattern=mind:*")
    assert (live["revision"], live["latest"], live["past"], live["count"]) == (
        latest, latest, False, 7
    )  # fmt: skip
    assert {entry["value"]["round"] for entry in live["entries"]} == {2}
    one = f"/api/sessions/{segment(session)}/entry"
    whole = api(site, f"{one}?key=mind:1&full=1&revision={then}")
    assert (whole["entry"]["value"], whole["entry"]["version"]) == ({"round": 1}, 1)
    absent = call(site.url, f"{one}?key=later&revision={then}")
    assert absent.status == 404
    assert f"at revision {then}" in absent.json()["error"]
    for bad in (f"revision={latest + 1}", "revision=-1", "revision=x"):
        for path in (f"{base}?{bad}", f"{one}?key=mind:1&{bad}"):
            answer = call(site.url, path)
            assert answer.status == 400, path
            assert "revision" in answer.json()["error"]


def test_a_revision_no_longer_kept_is_a_410_naming_the_oldest_one_kept(site: Site) -> None:
    session = site.new_session()
    context = history_context(site, session, 1)
    first = context.set("k", 1).revision
    kept = context.set("k", 2).revision
    context.set("k", 3)  # version 1 is dropped: `first` is no longer kept
    latest = context.revision
    for path in (
        f"/api/sessions/{segment(session)}/entries?revision={first}",
        f"/api/sessions/{segment(session)}/entry?key=k&revision={first}",
    ):
        answer = call(site.url, path)
        assert answer.status == 410, path
        body = answer.json()
        assert body["compacted"] == {"revision": first, "oldest": kept, "latest": latest}
        assert f"oldest revision still readable is {kept}" in body["error"]
    shown = api(site, f"/api/sessions/{segment(session)}/entries?revision={kept}")
    assert [entry["value"] for entry in shown["entries"]] == [2]
    # A session that keeps no history shows its current revision only.
    plain = site.new_session()
    without = site.context(plain)
    without.set("k", 1)
    without.set("k", 2)
    answer = call(site.url, f"/api/sessions/{segment(plain)}/entries?revision=1")
    assert answer.status == 410
    assert answer.json()["compacted"] == {"revision": 1, "oldest": 2, "latest": 2}


def test_one_entry_whole_or_as_a_preview(site: Site) -> None:
    session = site.new_session()
    context = site.context(session)
    big = {"text": "x" * 5000, "items": list(range(300)), "nan": float("nan"), "huge": 2**60}
    context.set("big", big, source="maker", tags=["t"], ttl=60)
    path = f"/api/sessions/{segment(session)}/entry?key=big"
    preview = api(site, path)["entry"]
    assert preview["truncated"] is True
    assert preview["size"] == context.get_entry("big").size  # type: ignore[union-attr]
    assert preview["value"]["text"] == "x" * PREVIEW_TEXT + "… (5000 characters)"
    assert preview["value"]["items"][-1] == "… 250 more items"
    assert preview["value"]["nan"] == "nan"  # JSON has no NaN
    assert preview["value"]["huge"] == str(2**60)  # beyond a JavaScript number
    whole = api(site, f"{path}&full=1")["entry"]
    assert whole["truncated"] is False
    assert whole["value"]["text"] == "x" * 5000
    assert whole["value"]["items"] == list(range(300))
    metadata = (whole["source"], whole["tags"], whole["ttl"], whole["version"])
    assert metadata == ("maker", ["t"], 60, 1)
    assert call(site.url, f"/api/sessions/{segment(session)}/entry?key=nope").status == 404
    assert call(site.url, f"/api/sessions/{segment(session)}/entry").status == 400


ODD_IDS = [
    "a/b",
    "a%2Fb",
    "100%",
    "what?now#here",
    "plus+space here",
    "ünï©ødé \U0001f600",
    "line\nbreak\ttab",
    "%",
    "...",
]


def test_ids_and_keys_in_urls_are_decoded_exactly(site: Site) -> None:
    for odd in ODD_IDS:
        session = site.new_session(odd)
        site.context(session).set(odd, {"id": odd})
        assert api(site, f"/api/sessions/{segment(session)}")["session"] == session
        entry = api(site, f"/api/sessions/{segment(session)}/entry?key={segment(odd)}")["entry"]
        assert entry["key"] == odd
        assert entry["value"] == {"id": odd}
    assert call(site.url, "/api/sessions/%FF%FE").status == 400  # not UTF-8
    assert call(site.url, "/api/sessions/a/b/entries").status == 404  # a raw / is a separator


def test_the_stream_replays_from_since_and_from_last_event_id(site: Site) -> None:
    session = site.new_session()
    context = site.context(session)
    for n in range(10):
        context.set(f"k{n}", n, source=f"s{n % 2}")
    context.delete("k0")
    base = f"/api/sessions/{segment(session)}/events"
    messages = read_stream(site.url, f"{base}?since=0&follow=0")
    assert [int(message["id"]) for message in messages] == list(range(1, 12))
    assert [message["data"]["revision"] for message in messages] == list(range(1, 12))
    assert messages[1]["data"]["action"] == "set"
    assert messages[1]["data"]["value"] == 1
    assert messages[0]["data"]["has_value"] is False  # k0 was deleted since: its value is gone
    assert messages[-1]["data"]["action"] == "delete"
    assert messages[-1]["data"]["key"] == "k0"
    # A reconnecting browser sends Last-Event-ID, which wins over the URL's since.
    resumed = read_stream(site.url, f"{base}?since=0&follow=0", {"Last-Event-ID": "7"})
    assert [int(message["id"]) for message in resumed] == [8, 9, 10, 11]
    # The filter marks the matching changes.
    marked = read_stream(site.url, f"{base}?since=8&follow=0&pattern=k*&tag=x")
    assert [message["data"]["matches"] for message in marked] == [False, False, False]
    marked = read_stream(site.url, f"{base}?since=8&follow=0&pattern=k9")
    assert [message["data"]["matches"] for message in marked] == [False, True, False]
    assert read_stream(site.url, f"{base}?follow=0") == []  # from now: nothing yet
    for bad in ("since=-1", "since=x", "pattern=%5B"):
        assert call(site.url, f"{base}?{bad}").status == 400, bad
    assert call(site.url, base, headers={"Last-Event-ID": "x"}).status == 400


@contextmanager
def served(backend: Any, **options: Any) -> Iterator[str]:
    with WebServer(create_app(backend, **options), port=0) as server:
        yield server.url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def short_history(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A backend that keeps only the last 5 changes of a session."""
    if request.param == "memory":
        backend: Any = MemoryBackend(history=5)
    else:
        url = request.getfixturevalue("redis_server").url
        from sharedctx.backends.redis import RedisBackend

        backend = RedisBackend(url, stream_max_len=5)
    yield backend
    backend.close()


def test_a_gap_the_session_no_longer_keeps_is_sent_as_such(short_history: Any) -> None:
    with SharedContext("gap-session", backend=short_history) as context:
        for n in range(20):
            context.set(f"k{n}", n)
        with served(short_history) as url:
            messages = read_stream(url, "/api/sessions/gap-session/events?since=2&follow=0")
        context.destroy()
    assert messages[0]["event"] == "gap"
    assert messages[0]["id"] == "20"
    assert messages[0]["data"]["revision"] == 20
    assert "gap-session" in messages[0]["data"]["message"]  # the backend's own words
    assert [message.get("event") for message in messages[1:]] == []  # nothing after: caught up


def test_a_since_after_the_last_change_is_a_gap_back_to_it(site: Site) -> None:
    session = site.new_session()
    site.context(session).set("a", 1)
    messages = read_stream(site.url, f"/api/sessions/{segment(session)}/events?since=9&follow=0")
    assert [(message["event"], message["id"]) for message in messages] == [("gap", "1")]


# -- writes --------------------------------------------------------------------------


def put(site: Site, session: str, key: str, body: Any, **headers: str) -> Answer:
    return call(
        site.url,
        f"/api/sessions/{segment(session)}/entry?key={segment(key)}",
        method="PUT",
        body=body,
        headers=headers,
    )


def test_without_allow_writes_no_route_writes(site: Site) -> None:
    session = site.new_session()
    site.context(session).set("k", 1)
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        answer = call(
            site.url,
            f"/api/sessions/{segment(session)}/entry?key=k",
            method=method,
            body={"value": 2, "if_version": 1},
        )
        assert answer.status == 404, method
    assert site.context(session).get("k") == 1


def test_a_write_needs_the_csrf_token_and_json_from_the_same_origin(
    serve: Callable[..., Site],
) -> None:
    site = serve(allow_writes=True)
    session = site.new_session()
    context = site.context(session)
    context.set("k", 1)
    token = api(site, "/api/config")["csrf_token"]
    body = {"value": 2, "if_version": 1}
    assert put(site, session, "k", body).status == 403  # no token
    assert put(site, session, "k", body, **{"X-CSRF-Token": "guess"}).status == 403
    origin = {"X-CSRF-Token": token, "Origin": "http://evil.example"}
    assert put(site, session, "k", body, **origin).status == 403
    plain = call(
        site.url,
        f"/api/sessions/{segment(session)}/entry?key=k",
        method="PUT",
        body=body,
        headers={"X-CSRF-Token": token, "Content-Type": "text/plain"},
    )
    assert plain.status == 415
    assert context.get_entry("k").version == 1  # type: ignore[union-attr]
    for bad in ({"value": 2}, {"if_version": 1}, {"value": 2, "if_version": -1}, [1]):
        assert put(site, session, "k", bad, **{"X-CSRF-Token": token}).status == 400, bad
    done = put(site, session, "k", body, **{"X-CSRF-Token": token})
    assert done.status == 200
    assert done.json()["entry"]["version"] == 2
    stale = put(site, session, "k", {"value": 3, "if_version": 1}, **{"X-CSRF-Token": token})
    assert stale.status == 409
    assert stale.json()["current"]["value"] == 2
    assert context.get("k") == 2
    created = put(site, session, "new", {"value": [1], "if_version": 0}, **{"X-CSRF-Token": token})
    assert created.status == 200
    assert context.get("new") == [1]


# -- the token, the host and the headers ----------------------------------------------


def test_with_a_token_every_request_carries_it(serve: Callable[..., Site]) -> None:
    site = serve(token="tok-123")
    assert call(site.url, "/api/sessions").status == 401
    assert call(site.url, "/").status == 401
    assert call(site.url, "/static/session.js").status == 401
    wrong = call(site.url, "/api/sessions", headers={"Authorization": "Bearer tok-124"})
    assert wrong.status == 401
    assert "token" in wrong.json()["error"]
    bearer = call(site.url, "/api/sessions", headers={"Authorization": "Bearer tok-123"})
    assert bearer.status == 200
    assert call(site.url, "/?token=nope").status == 401
    opened = call(site.url, "/?token=tok-123")
    assert opened.status == 303
    assert opened.headers["location"] == "/"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    value = cookie.split(";")[0]
    assert call(site.url, "/api/sessions", headers={"Cookie": value}).status == 200


def test_without_a_token_only_loopback_names_are_answered(site: Site) -> None:
    for host in ("evil.example", "evil.example:80", "10.0.0.1", "127.0.0.1.evil.example"):
        answer = call(site.url, "/api/sessions", headers={"Host": host})
        assert answer.status == 403, host
        assert "token" in answer.json()["error"]
    port = urlsplit(site.url).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert call(site.url, "/api/sessions", headers={"Host": host}).status == 200, host


def test_every_answer_carries_the_content_security_policy(site: Site) -> None:
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    session = site.new_session()
    site.context(session).set("k", 1)
    for path in ("/", f"/sessions/{session}", "/static/session.js", "/api/sessions", "/nope"):
        answer = call(site.url, path)
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"


def test_the_page_ships_in_the_package_and_names_no_other_host() -> None:
    static = files("sharedctx.web").joinpath("static")
    names = sorted(item.name for item in static.iterdir())
    assert names == [
        "common.js",
        "icon.svg",
        "index.html",
        "session.html",
        "session.js",
        "sessions.js",
        "style.css",
    ]
    for name in names:
        text = static.joinpath(name).read_text()
        hosts = set(re.findall(r"(?:https?:)?//[\w.-]+", text)) - {"http://www.w3.org"}
        assert not {host for host in hosts if not host.startswith("//")}, (name, hosts)
        # Nothing parses text as markup or code.
        parsing = r"\.(?:inner|outer)HTML|insertAdjacentHTML|document\.write|eval\("
        assert re.findall(parsing, text) == []
        if name.endswith(".html"):
            # No inline script or style: every script has a src, no style attribute.
            assert re.findall(r"<script(?![^>]*\bsrc=)", text) == []
            assert " style=" not in text
            assert re.findall(r"\son[a-z]+=", text) == []  # no inline handler


def test_an_app_takes_a_backend_url_and_refuses_an_empty_token() -> None:
    app = create_app("memory")
    with WebServer(app, port=0) as server:
        assert call(server.url, "/api/config").json()["backend"] == "memory"
    with pytest.raises(Exception, match="token"):
        create_app(MemoryBackend(), token=" ")


@pytest.mark.redis
def test_an_unreachable_backend_is_a_503_naming_it(private_redis: Any) -> None:
    server = private_redis()
    from sharedctx.backends.redis import RedisBackend

    backend = RedisBackend(server.url, socket_timeout=0.5)
    try:
        with served(backend) as url:
            assert call(url, "/api/sessions").status == 200
            server.stop()
            answer = call(url, "/api/sessions")
            assert answer.status == 503
            assert "127.0.0.1" in answer.json()["error"]
    finally:
        backend.close()


def test_metrics_are_served_at_metrics_without_a_key_or_a_value(serve: Callable[..., Site]) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    from sharedctx import Telemetry

    registry = CollectorRegistry()
    site = serve(metrics_registry=registry)
    with SharedContext(
        "metered", backend=site.backend, telemetry=Telemetry(metrics=registry)
    ) as ctx:
        ctx.set("secret-key", "secret-value")
        assert ctx.get("secret-key") == "secret-value"
        answer = call(site.url, "/metrics")
        ctx.destroy()
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.body.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    operations = families["sharedctx_operations"]
    assert {sample.labels["operation"] for sample in operations.samples} >= {"set", "get"}
    assert "secret" not in text
    assert "metered" not in text
    assert "content-security-policy" in answer.headers
