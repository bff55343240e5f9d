"""Session data never drives the terminal: every human-readable output shows it escaped.

Whoever can write to a session chooses its id, keys, values, sources and tags. Here
they hold a screen clear, an OSC window title, a bell, a C1 CSI, a bidi override and
rich markup, written on the Redis test server and read back by real ``sharedctx``
processes, to a pipe and to a terminal. ``--json`` output stays exact.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator

import pytest

from sharedctx import SharedContext
from sharedctx.terminal import printable

from ..conftest import RedisServer
from ._run import on_terminal, sharedctx, start_watch

CLEAR = "\x1b[2J"
TITLE = "\x1b]0;owned\x07"
C1_CSI = "\x9b31m"
RIGHT_TO_LEFT = "\u202e"
# What must never reach a terminal raw (rich's own colour codes may).
RAW = (CLEAR, "\x1b]", "\x07", "\x9b", RIGHT_TO_LEFT, "\r")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("analysis:mind:tim", "analysis:mind:tim"),
        ("café 日本 🙂 [bold]", "café 日本 🙂 [bold]"),  # printable, markup included
        (CLEAR + "k", "\\x1b[2Jk"),
        (TITLE, "\\x1b]0;owned\\x07"),
        ("a\nb\rc\td\x00", "a\\nb\\rc\\td\\x00"),  # one line
        ("\x7f\x85" + C1_CSI, "\\x7f\\x85\\x9b31m"),  # DEL and C1
        ("\u202eevil\u2066\u200b\u2028", "\\u202eevil\\u2066\\u200b\\u2028"),  # bidi, invisible
        ("\U000e0041", "\\U000e0041"),  # a tag character
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).isprintable()


def test_printable_is_the_identity_on_printable_text() -> None:
    text = "".join(chr(code) for code in range(0x20, 0x3000) if chr(code).isprintable())
    assert printable(text) is text


HOSTILE_SESSION = f"evil{TITLE}{RIGHT_TO_LEFT}"
HOSTILE_KEY = f"[bold]job:{CLEAR}{RIGHT_TO_LEFT}"
HOSTILE_SOURCE = f"src{C1_CSI}\r"
HOSTILE_TAGS = ["t\x07", ":warning:", "[red]x[/red]"]
HOSTILE_VALUE = {"text": f"{CLEAR}{TITLE}", "n": 1}


@pytest.fixture
def hostile(redis_server: RedisServer) -> Iterator[str]:
    """A session whose id, key, source, tags and value are hostile; its id."""
    session = f"{HOSTILE_SESSION}-{uuid.uuid4().hex[:6]}"
    with SharedContext(session, backend=redis_server.url) as context:
        context.set(HOSTILE_KEY, HOSTILE_VALUE, source=HOSTILE_SOURCE, tags=HOSTILE_TAGS)
    yield session
    SharedContext(session, backend=redis_server.url).destroy()


def assert_escaped(output: str) -> None:
    output = output.replace("\r\n", "\n")  # a terminal ends its lines so
    for raw in RAW:
        assert raw not in output, (raw, output)


pytestmark = pytest.mark.redis


def test_sessions_and_inspect_show_hostile_data_escaped_in_a_pipe(
    redis_server: RedisServer, hostile: str
) -> None:
    listed = sharedctx("sessions", "--backend", redis_server.url)
    inspected = sharedctx("inspect", hostile, "--backend", redis_server.url)
    for done in (listed, inspected):
        assert done.returncode == 0, done.stderr
        assert_escaped(done.stdout)
        assert printable(hostile) in done.stdout
    assert printable(HOSTILE_KEY) in inspected.stdout  # `[bold]` as it is
    assert printable(HOSTILE_SOURCE) in inspected.stdout
    assert ":warning:, [red]x[/red]" in inspected.stdout  # no emoji, no markup


def test_sessions_and_inspect_show_hostile_data_escaped_on_a_terminal(
    redis_server: RedisServer, hostile: str
) -> None:
    listed = on_terminal("sessions", "--backend", redis_server.url, columns=200)
    inspected = on_terminal("inspect", hostile, "--backend", redis_server.url, columns=200)
    for shown in (listed, inspected):
        assert shown.status == 0, shown.output
        assert_escaped(shown.output)
        assert printable(hostile) in shown.output
    assert printable(HOSTILE_KEY) in "".join(inspected.lines())
    assert "[red]x[/red]" in inspected.output


def test_json_output_is_the_exact_data(redis_server: RedisServer, hostile: str) -> None:
    listed = sharedctx("sessions", "--backend", redis_server.url, "--json")
    assert hostile in [row["session"] for row in json.loads(listed.stdout)]
    inspected = sharedctx("inspect", hostile, "--backend", redis_server.url, "--json")
    [row] = json.loads(inspected.stdout)
    assert (row["key"], row["source"], row["tags"], row["value"]) == (
        HOSTILE_KEY,
        HOSTILE_SOURCE,
        HOSTILE_TAGS,
        HOSTILE_VALUE,
    )
    for done in (listed, inspected):
        assert done.stdout.isascii()  # json.dumps escapes every control character


@pytest.mark.parametrize("as_json", [False, True])
def test_watch_shows_hostile_events_escaped_or_exact(
    redis_server: RedisServer, hostile: str, as_json: bool
) -> None:
    options = ["--json"] if as_json else []
    watcher = start_watch(hostile, "--backend", redis_server.url, *options)
    try:
        assert watcher.stdout is not None
        with SharedContext(hostile, backend=redis_server.url) as context:
            context.set(HOSTILE_KEY, 2, source=HOSTILE_SOURCE, tags=HOSTILE_TAGS)
        line = watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        rest, errors = watcher.communicate(timeout=10)
    finally:
        watcher.kill()
        watcher.wait()
    assert_escaped(line + rest + errors)
    if as_json:
        event = json.loads(line)
        assert (event["key"], event["source"], event["tags"]) == (
            HOSTILE_KEY,
            HOSTILE_SOURCE,
            HOSTILE_TAGS,
        )
    else:
        assert printable(HOSTILE_KEY) in line
        assert printable(HOSTILE_SOURCE) in line


def test_watch_shows_hostile_events_escaped_on_a_terminal(
    redis_server: RedisServer, hostile: str
) -> None:
    done: list[str] = []

    def act(output: str) -> bytes | None:
        if "watching" in output and "written" not in done:
            with SharedContext(hostile, backend=redis_server.url) as context:
                context.set(HOSTILE_KEY, 2, source=HOSTILE_SOURCE)
            done.append("written")
        if " v2 from " in output and "stopped" not in done:
            done.append("stopped")
            return b"\x03"  # Ctrl-C, once
        return None

    watched = on_terminal("watch", hostile, "--backend", redis_server.url, answer=act)
    assert watched.status == 0, watched.output
    assert_escaped(watched.output)
    line = f"{printable(HOSTILE_KEY)}  v2 from {printable(HOSTILE_SOURCE)}"
    assert any(shown.endswith(line) for shown in watched.lines())
