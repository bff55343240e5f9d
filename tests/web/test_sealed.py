"""Sealed sessions in the web view, on memory and on Redis, in a real chromium: served
with the key ring (``create_app(url, keyring=...)``) the page shows their values;
without it, ``(sealed)`` where each value would be, in the page, the API and the event
stream, live: never an error page, never the value."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from sharedctx import InvalidArgumentError, KeyRing, MemoryBackend, SharedContext
from sharedctx.web import WebServer, create_app

from .test_api import call, read_stream
from .test_pages import row, wait_for_row

RING = KeyRing({"k1": KeyRing.generate_key()})
SECRET = "private-notes-5e1f"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest) -> str:
    """``"memory"`` (this process's sessions) or the test session's Redis server."""
    if request.param == "memory":
        return "memory"
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture
def sealed(url: str) -> Iterator[SharedContext]:
    """A sealed session holding the secret, destroyed afterwards."""
    with SharedContext(f"web-sealed-{uuid.uuid4().hex[:8]}", backend=url, keyring=RING) as context:
        context.set("notes", {"text": SECRET}, source="intake", tags=["person"])
        yield context
        context.destroy()


def test_the_page_shows_sealed_values_with_the_key_ring_and_sealed_without(
    url: str, sealed: SharedContext, page: Page
) -> None:
    session = quote(sealed.session_id, safe="")
    with (
        WebServer(create_app(url, keyring=RING), port=0) as opened,
        WebServer(create_app(url, allow_writes=True), port=0) as locked,
    ):
        page.goto(f"{opened.url}sessions/{session}")
        wait_for_row(page, "notes")
        assert SECRET in row(page, "notes")["value"]

        page.goto(f"{locked.url}sessions/{session}")
        wait_for_row(page, "notes")
        cells = row(page, "notes")
        assert (cells["value"], cells["source"], cells["tags"]) == ("(sealed)", "intake", "person")
        assert page.locator("#entries td.value .error").count() == 0
        assert page.locator('#entries tr[data-key="notes"] button.edit').is_disabled()
        # A change heard live, through the event stream, stays sealed too.
        sealed.set("notes", {"text": SECRET + "-2"}, source="intake", tags=["person"])
        page.wait_for_function(
            """() => document.querySelector('#entries tr[data-key="notes"] .version')
                .textContent === '2'"""
        )
        assert row(page, "notes")["value"] == "(sealed)"
        assert SECRET not in page.content()

        # The API says so, as JSON, and holds no value.
        entries = call(locked.url, f"/api/sessions/{session}/entries")
        whole = call(locked.url, f"/api/sessions/{session}/entry?key=notes&full=1")
        for answer in (entries, whole):
            assert answer.status == 200
            assert SECRET.encode() not in answer.body
        [listed] = entries.json()["entries"]
        assert (listed["sealed"], listed["value"], listed["version"]) == (True, None, 2)
        assert whole.json()["entry"]["sealed"] is True
        events = read_stream(locked.url, f"/api/sessions/{session}/events?since=0&follow=0")
        assert [message["data"]["sealed"] for message in events] == [True, True]
        # A write from the page needs the ring: a 400 that says so; nothing written.
        token = call(locked.url, "/api/config").json()["csrf_token"]
        refused = call(
            locked.url,
            f"/api/sessions/{session}/entry?key=notes",
            method="PUT",
            body={"value": "overwritten", "if_version": 2},
            headers={"X-CSRF-Token": token},
        )
        assert refused.status == 400
        assert "sealed" in refused.json()["error"]
        assert sealed.get("notes") == {"text": SECRET + "-2"}
        # With the ring, the API holds the value.
        shown = call(opened.url, f"/api/sessions/{session}/entry?key=notes&full=1").json()
        assert shown["entry"]["value"] == {"text": SECRET + "-2"}
        assert "sealed" not in shown["entry"]


def test_a_key_ring_goes_with_a_url_a_backend_object_takes_its_own() -> None:
    with pytest.raises(InvalidArgumentError, match="give a Backend object its own"):
        create_app(MemoryBackend(), keyring=RING)


def test_a_past_revision_of_a_sealed_session_is_sealed_without_the_key_ring(
    url: str, page: Page
) -> None:
    """The revision slider reads past versions through the app's key ring: their values
    with it, ``(sealed)`` without it; never the value."""
    session = f"web-sealed-{uuid.uuid4().hex[:8]}"
    with SharedContext(session, backend=url, keyring=RING, history_versions=2) as context:
        then = context.set("notes", {"text": SECRET}, source="intake").revision
        context.set("notes", {"text": "later"}, source="review")
        path = f"/api/sessions/{quote(session, safe='')}"
        with (
            WebServer(create_app(url, keyring=RING), port=0) as opened,
            WebServer(create_app(url), port=0) as locked,
        ):
            shown = call(opened.url, f"{path}/entries?revision={then}").json()
            assert [entry["value"] for entry in shown["entries"]] == [{"text": SECRET}]
            for route in (f"entries?revision={then}", f"entry?key=notes&full=1&revision={then}"):
                answer = call(locked.url, f"{path}/{route}")
                assert answer.status == 200, answer.body
                assert SECRET.encode() not in answer.body
            [entry] = call(locked.url, f"{path}/entries?revision={then}").json()["entries"]
            assert (entry["sealed"], entry["version"], entry["source"]) == (True, 1, "intake")
            page.goto(f"{locked.url}sessions/{quote(session, safe='')}?revision={then}")
            expect(page.locator("#entries")).to_have_attribute("data-shown", str(then))
            assert row(page, "notes")["value"] == "(sealed)"
            assert SECRET not in page.content()
        context.destroy()
