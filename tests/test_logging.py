"""The log records: on the documented loggers (``sharedctx``, ``sharedctx.redis``,
``sharedctx.telemetry``), never a value, and a key (only with ``record_keys``) or a
session id escaped as the CLI shows it."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from sharedctx import (
    ContextEvent,
    MemoryBackend,
    SharedContext,
    Telemetry,
    printable,
)
from sharedctx.backends.redis.store import RedisStore

from .conftest import RedisServer

HOSTILE = "\x1b]0;owned\x07\u202e\x1b[2J"
"""Escape sequences and a bidi override: what a terminal would act on."""


def test_a_failing_subscriber_is_logged_at_error_on_sharedctx_by_its_revision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SharedContext("s") as context:

        def broken(event: ContextEvent) -> None:
            raise ValueError(f"bad value {event.entry.value}")

        context.subscribe("*", broken)
        with caplog.at_level(logging.DEBUG, logger="sharedctx"):
            context.set(f"key{HOSTILE}", "the-value")
    [record] = caplog.records
    assert (record.name, record.levelname) == ("sharedctx", "ERROR")
    message = record.getMessage()
    assert message.startswith("sharedctx subscriber sub-")
    assert "failed on the set of revision 1: ValueError" in message
    assert "in broken" in message  # where it was raised
    assert "key" not in message.split("\n")[0]
    assert "the-value" not in message
    assert record.exc_info is None


def test_with_record_keys_the_record_names_the_key_escaped_as_the_cli_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = f"key{HOSTILE}"
    with SharedContext("s", telemetry=Telemetry(record_keys=True)) as context:
        context.subscribe("*", lambda event: 1 / 0)
        with caplog.at_level(logging.ERROR, logger="sharedctx"):
            context.set(key, "the-value")
    message = caplog.records[0].getMessage()
    assert f"failed on the set of '{printable(key)}' (revision 1): ZeroDivisionError" in message
    assert "\x1b" not in message
    assert "\u202e" not in message


def test_lost_changes_of_a_subscriber_are_logged_with_the_session_id_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = f"s{HOSTILE}"
    with SharedContext(session) as listening, SharedContext(session) as destroying:
        listening.subscribe("*", print)
        with caplog.at_level(logging.ERROR, logger="sharedctx"):
            destroying.destroy()
    [record] = caplog.records
    assert record.name == "sharedctx"
    assert printable(session) in record.getMessage()
    assert "\x1b" not in record.getMessage()


@pytest.mark.redis
def test_a_failure_of_the_redis_listener_is_logged_on_sharedctx_redis_session_escaped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = f"redis-{uuid.uuid4().hex[:6]}{HOSTILE}"

    def failing(store: RedisStore, message: bytes) -> None:
        raise RuntimeError("the listener's bug")

    with (
        SharedContext(session, backend=redis_server.url) as listening,
        SharedContext(session, backend=redis_server.url) as writing,
    ):
        listening.subscribe("*", print)
        channel = listening.backend.keys_of(session)[-1]  # type: ignore[attr-defined]
        admin = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 10
        while admin.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1] == 0:
            assert time.monotonic() < deadline, "the listener did not subscribe"
            time.sleep(0.01)
        admin.close()
        monkeypatch.setattr(RedisStore, "receive", failing)
        with caplog.at_level(logging.ERROR, logger="sharedctx.redis"):
            writing.set("k", "the-value")
            deadline = time.monotonic() + 10
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.01)
        monkeypatch.undo()
        writing.destroy()
    record = caplog.records[0]
    assert (record.name, record.levelname) == ("sharedctx.redis", "ERROR")
    assert record.getMessage() == (
        f"sharedctx: receiving changes of session '{printable(session)}' failed"
    )


class _Unanswering(MemoryBackend):
    def session_summary(self, session_id: str) -> Any:
        raise ConnectionError(f"down while reading {session_id}")


def test_a_scrape_that_cannot_read_a_sessions_size_logs_at_debug_on_sharedctx_telemetry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    telemetry = Telemetry(metrics=registry)
    with (
        SharedContext("s", backend=_Unanswering(), telemetry=telemetry),
        caplog.at_level(logging.DEBUG, logger="sharedctx.telemetry"),
    ):
        text = generate_latest(registry).decode()
    assert "sharedctx_operations_total" in text
    [record] = caplog.records
    assert (record.name, record.levelname) == ("sharedctx.telemetry", "DEBUG")
    assert record.getMessage() == (
        "sharedctx: reading the size of a memory session failed: ConnectionError"
    )
