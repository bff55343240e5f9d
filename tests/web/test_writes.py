"""Checkpoints from the page (``allow_writes``), and the token, in a real chromium, on
memory and on Redis."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from .conftest import Site
from .test_pages import ROW, wait_for_row


def open_editor(page: Page, key: str) -> None:
    wait_for_row(page, key)
    page.evaluate(
        """(key) => [...document.querySelectorAll('#entries tbody tr')]
            .find((tr) => tr.getAttribute('data-key') === key)
            .querySelector('button.edit').click()""",
        key,
    )
    expect(page.locator("#editor-form textarea")).to_be_visible()


def test_a_value_set_on_the_page_is_in_the_session_with_the_next_version(
    serve: Callable[..., Site], page: Page
) -> None:
    site = serve(allow_writes=True)
    session = site.new_session()
    context = site.context(session)
    context.set("checkpoint:cp-1", {"decision": "pending"}, tags=["phase:checkpoint"], ttl=600)
    page.goto(site.page_url(session))
    open_editor(page, "checkpoint:cp-1")
    # The form carries the CSRF token; the write is made with it.
    token = page.locator("#editor-form input[name=csrf_token]").input_value()
    assert len(token) > 30
    expect(page.locator("#editor-form textarea")).to_have_value('{\n  "decision": "pending"\n}')
    page.locator("#editor-form textarea").fill('{"decision": "approve", "by": "Ada"}')
    page.locator("#editor-form button[type=submit]").click()
    expect(page.locator("#editor .saved")).to_have_text("saved: checkpoint:cp-1 is at version 2")
    entry = context.get_entry("checkpoint:cp-1")
    assert entry is not None
    assert entry.value == {"decision": "approve", "by": "Ada"}
    assert entry.version == 2
    assert entry.source == "web"
    assert entry.tags == ("phase:checkpoint",)  # kept
    assert entry.ttl == 600  # the expiry is kept
    # The page shows the new version from the stream.
    page.wait_for_function(
        """() => [...document.querySelectorAll('#entries tbody tr')]
            .find((tr) => tr.getAttribute('data-key') === 'checkpoint:cp-1')
            .querySelector('.version').textContent === '2'"""
    )


def test_a_write_that_races_a_concurrent_change_shows_the_conflict(
    serve: Callable[..., Site], page: Page
) -> None:
    site = serve(allow_writes=True)
    session = site.new_session()
    context = site.context(session)
    context.set("checkpoint:cp-1", {"decision": "pending"})
    page.goto(site.page_url(session))
    open_editor(page, "checkpoint:cp-1")  # at version 1
    site.write_elsewhere(
        session,
        [["set", "checkpoint:cp-1", {"decision": "reject", "by": "Bo"}, {"source": "reviewer"}]],
    )
    page.locator("#editor-form textarea").fill('{"decision": "approve"}')
    page.locator("#editor-form button[type=submit]").click()
    conflict = page.locator("#editor .conflict")
    expect(conflict).to_contain_text("changed since version 1: it is at version 2, set by reviewer")
    expect(conflict).to_contain_text("Your value was not written")
    page.locator("#editor .editor-message summary").first.click()
    expect(page.locator("#editor .editor-message")).to_contain_text('"decision": "reject"')
    entry = context.get_entry("checkpoint:cp-1")
    assert entry is not None
    assert entry.value == {"decision": "reject", "by": "Bo"}  # the concurrent value stays
    assert entry.version == 2


def test_a_read_only_view_shows_no_form(site: Site, page: Page) -> None:
    session = site.new_session()
    site.context(session).set("checkpoint:cp-1", {"decision": "pending"})
    page.goto(site.page_url(session))
    expect(page.locator(ROW)).to_have_count(1)
    expect(page.locator("button.edit")).to_have_count(0)
    expect(page.locator("form#editor-form")).to_have_count(0)
    assert page.evaluate("fetch('/api/config').then((r) => r.json())")["csrf_token"] is None


def test_the_token_cookie_from_the_printed_url_opens_the_pages(
    serve: Callable[..., Site], page: Page
) -> None:
    site = serve(token="s3cret-token")
    session = site.new_session()
    site.context(session).set("a", 1)
    refused = page.goto(site.page_url(session))
    assert refused is not None
    assert refused.status == 401
    page.goto(f"{site.url}?token=s3cret-token")
    assert page.url == site.url  # the token left the address
    expect(page.locator(f'#sessions tr[data-session="{session}"]')).to_have_count(1)
    page.goto(site.page_url(session))
    wait_for_row(page, "a")
    page.wait_for_function("() => window.sharedctxPage.opened >= 1")  # the stream too
