"""The revision slider of a session's page, in a real headless chromium, on memory and
on Redis: the entries as they were at a past revision (read from the session's
history, paged as the live table is), unchanged by the changes that go on meanwhile;
back to live; the timeline's marks; an address with ``?revision=``; and a revision
the session no longer keeps, shown as a message that names the oldest one it does."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from sharedctx import SharedContext

from .conftest import Site, wait_for_revision
from .test_pages import ROW, row, wait_for_row

NOTE = "#revision-note"
MESSAGE = "#revision-message"


def history_context(site: Site, session: str, versions: int) -> SharedContext:
    """A context that keeps ``versions`` past versions of each key (closed, and its
    session destroyed, after the test)."""
    site.sessions.add(session)
    context = SharedContext(session, backend=site.backend, history_versions=versions)
    site.contexts.append(context)
    return context


def go_to(page: Page, revision: int) -> None:
    """Type a revision in the slider's number box, and press Enter."""
    page.fill("#revision-number", str(revision))
    page.press("#revision-number", "Enter")


def wait_for_shown(page: Page, shown: int | str) -> None:
    """Wait until the table shows revision ``shown`` ("live": the session now)."""
    expect(page.locator("#entries")).to_have_attribute("data-shown", str(shown))


def shown_keys(page: Page) -> list[str]:
    keys: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('#entries tbody tr')]
            .map((tr) => tr.getAttribute('data-key'))"""
    )
    return keys


def test_the_slider_shows_the_session_as_it_was_and_live_changes_leave_it_be(
    site: Site, page: Page
) -> None:
    session = site.new_session()
    context = history_context(site, session, 4)
    first = context.set("profile", {"name": "Ada"}, source="intake").revision  # 1
    context.set("notes", "first notes", source="intake")  # 2
    then = context.revision
    context.set("profile", {"name": "Grace"}, source="review")  # 3
    context.set("validation", {"ok": False}, source="validate")  # 4
    latest = context.revision
    page.goto(site.page_url(session))
    wait_for_shown(page, "live")
    wait_for_row(page, "validation")
    expect(page.locator("#revision-slider")).to_have_attribute("max", str(latest))
    expect(page.locator("#revision-slider")).to_have_value(str(latest))
    expect(page.locator("#revision-live")).to_be_disabled()

    go_to(page, then)
    wait_for_shown(page, then)
    assert shown_keys(page) == ["notes", "profile"]
    cells = row(page, "profile")
    assert '"Ada"' in cells["value"]
    assert (cells["version"], cells["revision"], cells["source"]) == ("1", str(first), "intake")
    expect(page.locator(NOTE)).to_contain_text(f"just after revision {then}")
    expect(page.locator("#count")).to_contain_text(f"at revision {then}")
    expect(page.locator("#revision-slider")).to_have_value(str(then))
    expect(page.locator("#revision-live")).to_be_enabled()
    expect(page.locator("body")).to_have_class(re.compile("past"))
    assert f"revision={then}" in page.url

    # Changes go on: the feed and the slider's end follow them, the table stays.
    site.write_elsewhere(session, [["set", "later", 1, {"source": "writer"}]])
    wait_for_revision(page, latest + 1)
    expect(page.locator("#revision-slider")).to_have_attribute("max", str(latest + 1))
    expect(page.locator("#feed li").first).to_contain_text("later")
    assert shown_keys(page) == ["notes", "profile"]
    assert '"Ada"' in row(page, "profile")["value"]

    # The keyboard moves the slider: Home is revision 0 (nothing), then one by one.
    page.focus("#revision-slider")
    page.keyboard.press("Home")
    wait_for_shown(page, 0)
    expect(page.locator("#revision-number")).to_have_value("0")
    expect(page.locator(ROW)).to_have_count(0)
    expect(page.locator(MESSAGE)).to_be_hidden()
    page.keyboard.press("ArrowRight")
    wait_for_shown(page, 1)
    assert shown_keys(page) == ["profile"]

    # A mark on the timeline shows the session just after that change.
    page.locator(f'#timeline .mark[data-revision="{latest}"]').click()
    wait_for_shown(page, latest)
    assert '"Grace"' in row(page, "profile")["value"]
    assert "later" not in shown_keys(page)

    page.click("#revision-live")
    wait_for_shown(page, "live")
    assert shown_keys(page) == ["later", "notes", "profile", "validation"]
    expect(page.locator(NOTE)).to_contain_text("live")
    expect(page.locator("#revision-slider")).to_have_value(str(latest + 1))
    assert "revision=" not in page.url
    # Live again: a change shows in the table.
    site.write_elsewhere(session, [["set", "after", 2, {}]])
    wait_for_row(page, "after")


def test_a_past_revision_is_paged_like_the_live_table(site: Site, page: Page) -> None:
    session = site.new_session()
    context = history_context(site, session, 2)
    context.set_multiple({f"k:{n:03}": {"round": 1} for n in range(105)})
    then = context.revision
    context.set_multiple({f"k:{n:03}": {"round": 2} for n in range(105)})
    page.goto(f"{site.page_url(session)}?revision={then}")  # the address opens it
    wait_for_shown(page, then)
    expect(page.locator(NOTE)).to_contain_text(f"just after revision {then}")
    expect(page.locator(ROW)).to_have_count(100)
    assert '"round": 1' in row(page, "k:000")["value"]
    page.click("#next")
    expect(page.locator(ROW)).to_have_count(5)
    wait_for_shown(page, then)
    assert shown_keys(page) == [f"k:{n:03}" for n in range(100, 105)]
    assert all('"round": 1' in row(page, key)["value"] for key in shown_keys(page))
    page.click("#first")
    expect(page.locator(ROW)).to_have_count(100)
    # The filter applies at the revision too.
    page.fill("#filter input[name=pattern]", "k:10*")
    page.click("#filter button")
    page.wait_for_function("() => document.querySelectorAll('#entries tbody tr').length === 5")
    wait_for_shown(page, then)
    assert shown_keys(page) == [f"k:{n:03}" for n in range(100, 105)]
    expect(page.locator(NOTE)).to_contain_text(f"just after revision {then}")
    assert '"round": 1' in row(page, "k:104")["value"]


def test_a_revision_no_longer_kept_shows_the_oldest_one_that_is(site: Site, page: Page) -> None:
    session = site.new_session()
    context = history_context(site, session, 1)
    first = context.set("k", "one").revision
    kept = context.set("k", "two").revision
    context.set("k", "three")  # "one" is dropped (one past version kept)
    page.goto(site.page_url(session))
    wait_for_shown(page, "live")
    go_to(page, first)
    message = page.locator(MESSAGE)
    expect(message).to_be_visible()
    expect(message).to_contain_text(f"Revision {first} is no longer kept")
    expect(message).to_contain_text(f"the oldest revision this session can still show is {kept}")
    expect(page.locator(ROW)).to_have_count(0)
    expect(page.locator("#count")).to_contain_text("no longer kept")
    wait_for_shown(page, "none")
    page.click("#revision-oldest")
    wait_for_shown(page, kept)
    expect(message).to_be_hidden()
    assert '"two"' in row(page, "k")["value"]
    expect(page.locator("#revision-number")).to_have_value(str(kept))

    # A session that keeps no history: only its current revision.
    plain = site.new_session()
    without = site.context(plain)
    without.set("k", 1)
    without.set("k", 2)
    page.goto(site.page_url(plain))
    wait_for_shown(page, "live")
    go_to(page, 1)
    expect(message).to_contain_text("keeps no state before its current revision 2")
    expect(page.locator("#revision-oldest")).to_have_count(0)
    page.click("#revision-live")
    wait_for_shown(page, "live")
    expect(message).to_be_hidden()
