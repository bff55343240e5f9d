"""The pages, in a real headless chromium, on memory and on Redis: what they show, live."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from sharedctx.terminal import printable

from .conftest import Site, revisions, wait_for_revision

ROW = "#entries tbody tr"


def row(page: Page, key: str) -> dict[str, str]:
    """The cells of the row of ``key`` (found by its exact key), as text, or {}."""
    found: dict[str, str] = page.evaluate(
        """(key) => {
            const row = [...document.querySelectorAll('#entries tbody tr')]
                .find((tr) => tr.getAttribute('data-key') === key);
            if (!row) return {};
            const cells = {};
            for (const cell of row.querySelectorAll('td')) {
                cells[cell.className.split(' ').pop() || 'edit'] = cell.textContent;
            }
            return cells;
        }""",
        key,
    )
    return found


def wait_for_row(page: Page, key: str, present: bool = True) -> None:
    page.wait_for_function(
        """([key, present]) => [...document.querySelectorAll('#entries tbody tr')]
            .some((tr) => tr.getAttribute('data-key') === key) === present""",
        arg=[key, present],
    )


def test_a_seeded_session_shows_every_entry_with_its_value_and_ttl(site: Site, page: Page) -> None:
    session = site.new_session()
    context = site.context(session)
    for n in range(12):
        context.set(
            f"analysis:mind:{n:02}",
            {"score": n / 10, "mind": f"m{n}"},
            source=f"mind:{n % 3}",
            tags=["phase:analysis", f"group:{n % 2}"],
            ttl=600 if n % 2 else None,
        )
    page.goto(site.page_url(session))
    expect(page.locator(ROW)).to_have_count(12)
    for n in range(12):
        cells = row(page, f"analysis:mind:{n:02}")
        assert cells["key"] == f"analysis:mind:{n:02}"
        assert cells["version"] == "1"
        assert cells["source"] == f"mind:{n % 3}"
        assert cells["tags"] == f"phase:analysisgroup:{n % 2}"
        assert '"score"' in cells["value"]
        assert '"mind"' in cells["value"]
        if n % 2:
            assert re.fullmatch(r"(59\d|600)\.\d s|\d+ min \d+ s", cells["ttl"]), cells["ttl"]
        else:
            assert cells["ttl"] == "never"
    # The TTL counts down on the page.
    first = row(page, "analysis:mind:01")["ttl"]
    page.wait_for_function(
        """(first) => [...document.querySelectorAll('#entries tbody tr')]
            .find((tr) => tr.getAttribute('data-key') === 'analysis:mind:01')
            .querySelector('.ttl').textContent !== first""",
        arg=first,
    )
    # The value opens as a JSON tree.
    page.locator(ROW).first.locator("td.value summary").click()
    expect(page.locator(ROW).first.locator("td.value li")).to_have_count(2)
    expect(page.locator(ROW).first.locator("td.value")).to_contain_text('"mind": "m0"')


def test_the_sessions_page_lists_every_session_live(site: Site, page: Page) -> None:
    first, second = site.new_session("list"), site.new_session("list")
    site.context(first).set("a", 1)
    page.goto(site.url)
    expect(page.locator(f'#sessions tr[data-session="{first}"]')).to_have_count(1)
    cells = page.locator(f'#sessions tr[data-session="{first}"] td')
    expect(cells.nth(1)).to_have_text("1")  # entries
    expect(cells.nth(3)).to_have_text("1")  # revision
    site.write_elsewhere(second, [["set", "b", 2, {}], ["set", "c", 3, {"ttl": 600}]])
    row_ = page.locator(f'#sessions tr[data-session="{second}"] td')
    expect(row_.nth(1)).to_have_text("2")
    expect(row_.nth(3)).to_have_text("2")
    expect(row_.nth(5)).to_have_text("never")
    page.locator(f'#sessions tr[data-session="{second}"] a').click()
    expect(page.locator(ROW)).to_have_count(2)


def test_a_write_from_another_writer_appears_without_a_reload(site: Site, page: Page) -> None:
    session = site.new_session()
    site.context(session).set("seed", 0)
    page.goto(site.page_url(session))
    expect(page.locator(ROW)).to_have_count(1)
    loads = page.evaluate("window.sharedctxPage.loaded")
    site.write_elsewhere(
        session,
        [["set", "written:elsewhere", {"from": "elsewhere"}, {"source": "other-process"}]],
    )
    wait_for_row(page, "written:elsewhere")
    assert row(page, "written:elsewhere")["source"] == "other-process"
    expect(page.locator("#feed li.event.set .key").first).to_have_text("written:elsewhere")
    site.write_elsewhere(session, [["delete", "seed"]])
    wait_for_row(page, "seed", present=False)
    expect(page.locator("#feed li.event").first).to_have_class(re.compile("delete"))
    assert page.evaluate("window.sharedctxPage.loaded") == loads  # never reloaded


def test_the_stream_resumes_after_a_cut_with_every_revision_once(site: Site, page: Page) -> None:
    session = site.new_session()
    context = site.context(session)
    context.set("seed", 0)
    page.goto(site.page_url(session))
    page.wait_for_function("() => window.sharedctxPage.opened === 1")
    done = site.write_in_background(session, [["steady", "k", 240, 4.0]])
    wait_for_revision(page, 20)
    site.restart()  # the app goes away mid-run and comes back: the page reconnects
    page.wait_for_function("() => window.sharedctxPage.opened >= 2", timeout=20_000)
    done()
    final = context.revision
    wait_for_revision(page, final)
    received = revisions(page)
    assert received == list(range(1, final + 1))  # contiguous, each once, in order
    assert page.evaluate("window.sharedctxPage.gaps") == []
    # The table holds its page: the first 100 keys, as the server sorts them, once each.
    shown = page.evaluate(
        "() => [...document.querySelectorAll('#entries tbody tr')].map((tr) => tr.dataset.key)"
    )
    assert shown == context.keys(limit=100)
    expect(page.locator("#next")).to_be_visible()


def test_an_entry_that_expires_disappears_with_an_expire_mark(site: Site, page: Page) -> None:
    session = site.new_session()
    context = site.context(session)
    context.set("stays", 1, source="keeper")
    context.set("fleeting", 2, ttl=1.5, source="timer")
    page.goto(site.page_url(session))
    wait_for_row(page, "fleeting")
    wait_for_row(page, "fleeting", present=False)
    expect(page.locator("#timeline rect.mark.expire")).to_have_count(1)
    expect(page.locator("#feed li.event.expire .key")).to_have_text(["fleeting"])
    assert row(page, "stays")["key"] == "stays"


def test_hovering_a_timeline_mark_shows_its_event(site: Site, page: Page) -> None:
    session = site.new_session()
    context = site.context(session)
    context.set("plan", {"step": 1}, source="orchestrator")
    context.set("analysis:mind:tim", {"score": 0.9}, source="mind:tim")
    page.goto(site.page_url(session))
    lanes = page.locator("#timeline text.lane-label")
    expect(lanes).to_have_text(["mind:tim", "orchestrator"])
    page.locator("#timeline rect.mark").nth(1).hover()
    expect(page.locator("#tooltip")).to_be_visible()
    expect(page.locator("#tooltip")).to_contain_text("#2 set analysis:mind:tim v1 from mind:tim")


HOSTILE = "<img src=x onerror=alert(1)></script><script>alert(2)</script>\u202eevil\x1b[31m\x00\n"


def test_hostile_data_is_shown_as_text(site: Site, page: Page, watched: object) -> None:
    session = site.new_session(HOSTILE)
    context = site.context(session)
    key, source, tag = f"key{HOSTILE}", f"source{HOSTILE}", f"tag{HOSTILE}"
    value = {HOSTILE: [HOSTILE, f"javascript:alert(3){HOSTILE}"]}
    context.set(key, value, source=source, tags=[tag])
    page.goto(site.url)
    link = page.locator("#sessions tbody a").filter(has_text=printable(session))
    expect(link).to_have_text(printable(session))
    link.click()
    expect(page.locator(ROW)).to_have_count(1)
    expect(page.locator("#session-id")).to_have_text(printable(session))
    cells = row(page, key)
    assert cells["key"] == printable(key)
    assert cells["source"] == printable(source)
    assert cells["tags"] == printable(tag)
    page.locator(ROW).first.locator("td.value summary").first.click()
    page.locator(ROW).first.locator("td.value summary").nth(1).click()
    shown = page.locator(ROW).first.locator("td.value").text_content()
    assert printable(json.dumps(HOSTILE, ensure_ascii=False)) in (shown or "")
    assert "\u202e" not in (shown or "")
    assert "\x1b" not in (shown or "")
    expect(page.locator("#feed li.event .source")).to_have_text([printable(source)])
    page.locator("#timeline rect.mark").first.hover()
    expect(page.locator("#tooltip")).to_contain_text(printable(key))
    # Nothing of it became markup: no image, no script but the page's own.
    assert page.locator("img").count() == 0
    assert page.evaluate("[...document.scripts].map((s) => s.src)") == [
        f"{site.url}static/session.js"
    ]


def test_the_page_escapes_as_the_terminal_does(site: Site, page: Page) -> None:
    """The page's printable() agrees with sharedctx.terminal.printable on the control,
    format, separator and private-use characters, and on plain text."""
    samples = [chr(code) for code in [*range(0, 0x370), *range(0x2000, 0x2070), 0xFEFF, 0xE000]]
    samples += ["plain text", "tab\tand\nnew line", "\U0001f600 emoji", "\U000e0001 tag char"]
    page.goto(site.url)
    shown = page.evaluate(
        """async (texts) => {
            const common = await import('/static/common.js');
            return texts.map((text) => common.printable(text));
        }""",
        samples,
    )
    assert shown == [printable(text) for text in samples]


def test_entries_are_filtered_and_paged_on_the_server(site: Site, page: Page) -> None:
    session = site.new_session()
    context = site.context(session)
    context.set_multiple({f"a:{n:03}": n for n in range(130)}, tags=["bulk"])
    context.set_multiple({f"b:{n:03}": n for n in range(5)})
    context.set("b:tagged", 1, tags=["special"])
    page.goto(site.page_url(session))
    expect(page.locator(ROW)).to_have_count(100)
    expect(page.locator(ROW).last).to_have_attribute("data-key", "a:099")
    page.locator("#next").click()
    expect(page.locator(ROW)).to_have_count(36)
    expect(page.locator(ROW).first).to_have_attribute("data-key", "a:100")
    expect(page.locator("#next")).to_be_hidden()
    page.locator("#first").click()
    expect(page.locator(ROW).first).to_have_attribute("data-key", "a:000")
    # A glob pattern, then a tag, as the server reads them.
    page.locator("#filter input[name=pattern]").fill("b:*")
    page.locator("#filter button").click()
    expect(page.locator(ROW)).to_have_count(6)
    assert "pattern=b%3A*" in page.url
    page.locator("#filter select[name=tag]").select_option("special")
    page.locator("#filter button").click()
    expect(page.locator(ROW)).to_have_count(1)
    expect(page.locator(ROW).first).to_have_attribute("data-key", "b:tagged")
    # Live changes respect the filter: another key does not join the table.
    site.write_elsewhere(
        session, [["set", "b:other", 2, {}], ["set", "b:more", 3, {"tags": ["special"]}]]
    )
    wait_for_row(page, "b:more")
    expect(page.locator(ROW)).to_have_count(2)
    assert row(page, "b:other") == {}
