"""The Redis backend's I/O-free parts: arguments, replies, retries, keys, URLs.

No server here: these are the rules the sync and asyncio shells share.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from sharedctx import (
    KEEP_TTL,
    BackendUnavailableError,
    CapacityError,
    InvalidArgumentError,
    OutcomeUnknownError,
    VersionConflictError,
)
from sharedctx._codec import MSGPACK
from sharedctx._glob import compile_glob
from sharedctx.backends import Page
from sharedctx.backends.ops import Write
from sharedctx.backends.redis import keys, retry, urls
from sharedctx.backends.redis import operations as protocol

PACK = msgspec.msgpack.encode


def meta(version: int = 1, revision: int = 7, ttl: int = -1, expires: int = -1) -> bytes:
    return PACK([version, revision, 1_000, 2_000, ttl, expires, "mind:tim", ["t"]])


def reply(status: bytes, *result: object, events: list[object] | None = None) -> protocol.Reply:
    raw = [status, b"1.5", events or [], 0, *result]
    return protocol.reply_of(raw)  # type: ignore[arg-type]


def test_a_sessions_keys_share_its_hash_tag_and_escape_braces() -> None:
    names = keys.session_keys("ns", "a{b}%")
    assert names[0] == b"ns:{a%7Bb%7D%25}:meta"
    assert all(key.startswith(b"ns:{a%7Bb%7D%25}:") for key in names)
    assert names[-1].endswith(b":channel")
    assert len(names) == len(keys.SUFFIXES)


@pytest.mark.parametrize("session", ["plain", "a}b{c", "%7B", "%257B", "x:{}:meta", "é"])
def test_a_session_id_is_read_back_from_its_meta_key(session: str) -> None:
    meta_key = keys.session_keys("ns", session)[0]
    assert keys.session_of_meta_key("ns", meta_key) == session


@pytest.mark.parametrize("key", [b"ns:{a}:entries", b"other:{a}:meta", b"ns:{a}b}:meta", b"ns:{}"])
def test_other_keys_are_not_taken_for_sessions(key: bytes) -> None:
    assert keys.session_of_meta_key("ns", key) is None


def test_every_call_sends_the_store_prefix_then_the_operations_arguments() -> None:
    settings = protocol.Settings(100, None, "lru", 30.0, 60.0, 120.0, 8, 90.0)
    names = keys.session_keys("ns", "s")
    prefix = protocol.prefix(b"lib", names, settings)
    write = protocol.Write(Write("k", b"\x01", 2.5, None, ("a", "b"), 3, "h"), None, "s")
    argv = protocol.arguments(write, "e", 5, b"req", b"dk")
    plain = [
        b"write",
        "e",
        5,
        b"req",
        b"dk",
        "k",
        b"\x01",
        2500,
        3,
        protocol.KEEP,
        "h",
        2,
        "a",
        "b",
    ]
    settings_args = [b"100", b"-1", b"lru", b"30000", b"60000", b"120000", b"8", b"90000", b"0"]
    expected = protocol.pack(b"FCALL", b"lib", len(names), *names, *settings_args, *plain)
    assert prefix.command(argv) == expected
    assert prefix.route == names[0]
    keep = protocol.Write(Write("k", b"\x01", KEEP_TTL, "src", None, None, None), 10, "s")
    assert prefix.command(keep.arguments()) == protocol.pack(
        b"FCALL", b"lib", len(names), *names, *settings_args, "k", b"\x01", -2, -1, "src", "",
        protocol.KEEP,
    )  # fmt: skip
    writes = [Write(f"k{i}", b"v" * i, None, None, ("t",) * (i % 2), None, None)
              for i in range(3)]  # fmt: skip
    many = protocol.WriteMany(writes, None, "s")
    assert prefix.command(many.arguments()) == protocol.pack(
        b"FCALL", b"lib", len(names), *names, *settings_args,
        "k0", b"", -1, -1, protocol.KEEP, "", 0,
        "k1", b"v", -1, -1, protocol.KEEP, "", 1, "t",
        "k2", b"vv", -1, -1, protocol.KEEP, "", 0,
    )  # fmt: skip
    assert write.writes
    assert not protocol.Get("k").writes


def test_commands_are_packed_as_the_redis_protocol_says() -> None:
    assert protocol.pack(b"SET", "k", 10) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n"
    assert protocol.pack("é") == b"*1\r\n$2\r\n\xc3\xa9\r\n"  # lengths in bytes


def test_a_written_entry_is_built_from_its_metadata() -> None:
    write = protocol.Write(Write("k", b"\xa1x", None, None, None, None, None), None, "s")
    entry = write.parse(reply(b"ok", meta(version=3)), protocol.Reader(MSGPACK))
    assert (entry.key, entry.value, entry.version, entry.revision) == ("k", "x", 3, 7)
    assert (entry.source, entry.tags, entry.ttl, entry.expires) == ("mind:tim", ("t",), None, None)
    assert (entry.created, entry.updated) == (1.0, 2.0)


def test_conflicts_and_full_sessions_become_errors_naming_the_key() -> None:
    write = protocol.Write(Write("k", b"\x01", None, None, None, 2, None), 5, "s")
    with pytest.raises(VersionConflictError, match="'k' is at version 4"):
        write.parse(reply(b"conflict", 4), protocol.Reader(MSGPACK))
    with pytest.raises(CapacityError, match="holds 5 of at most 5"):
        write.parse(reply(b"full", 5), protocol.Reader(MSGPACK))


def test_reads_count_hits_and_misses_in_the_tally() -> None:
    tally = protocol.Reader(MSGPACK)
    blob = b"%08d" % len(meta()) + meta() + b"\xa1v"
    assert protocol.Get("k").parse(reply(b"ok", blob), tally) is not None
    assert protocol.Get("k").parse(reply(b"ok", b""), tally) is None
    found = protocol.GetMany(["a", "b", "c"]).parse(reply(b"ok", [b"a", blob]), tally)
    assert list(found) == ["a"]
    assert (tally.hits, tally.misses) == (2, 3)


def message(*changes: tuple[Any, ...]) -> bytes:
    # Packed as the script's cmsgpack packs a Lua string: a msgpack str, whatever its
    # bytes (msgspec packs bytes as bin; both headers are read). A sixth field is a
    # traced change's traceparent.
    return msgspec.msgpack.encode(
        [[rev, action.decode(), key.decode(), *rest] for rev, action, key, *rest in changes]
    )


def test_a_change_reads_the_same_from_a_reply_and_from_a_channel_message() -> None:
    packed = meta()
    [from_message] = protocol.changes_of_message(message((7, b"set", b"k:1", packed, b"\xa1v")))
    from_reply = protocol.change_of_reply([b"7", b"set", b"k:1", packed, b"\xa1v"])
    assert from_message == from_reply
    event = protocol.event_of("s", from_message, MSGPACK)
    assert (event.action, event.key, event.revision, event.entry.value) == ("set", "k:1", 7, "v")
    assert event.traceparent is None


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_traced_change_carries_its_traceparent_in_a_reply_and_a_channel_message() -> None:
    packed = meta()
    [from_message] = protocol.changes_of_message(
        message((7, b"set", b"k:1", packed, b"\xa1v", TRACEPARENT), (8, b"set", b"k", packed, b""))
    )[:1]
    from_reply = protocol.change_of_reply(
        [b"7", b"set", b"k:1", packed, b"\xa1v", TRACEPARENT.encode()]
    )
    assert from_message == from_reply == (7, b"set", b"k:1", packed, b"\xa1v", TRACEPARENT)
    assert protocol.event_of("s", from_reply, MSGPACK).traceparent == TRACEPARENT


def test_a_traced_write_sends_its_traceparent_after_its_request_id() -> None:
    write = Write("k", b"\xa1v", None, "unknown", (), traceparent=TRACEPARENT)
    traced = protocol.arguments(protocol.Write(write, None, "s"), "e", -1, b"r" * 32)
    assert traced[3] == b"r" * 32 + b" " + TRACEPARENT.encode()
    plain = protocol.Write(Write("k", b"\xa1v", None, "unknown", ()), None, "s")
    assert protocol.arguments(plain, "e", -1, b"r" * 32)[3] == b"r" * 32


def test_a_message_carries_every_change_of_its_call_in_order() -> None:
    # Short and long strings and bytes: every msgpack header of a string.
    parts = [
        (9, b"set", b"a\n1", meta(), b"\xa3x\ny"),
        (10, b"delete", b"k" * 40, meta(), b""),
        (11, b"set", "é".encode() * 200, meta(), b"\xc4" + b"\xff" * 70_000),
    ]
    assert protocol.changes_of_message(message(*parts)) == [(*part, None) for part in parts]


def test_binary_strings_as_the_script_packs_them_are_read_intact() -> None:
    # cmsgpack packs the metadata and value (not UTF-8) as msgpack str: fixstr, str 8,
    # str 16 and str 32 headers.
    def lua_string(data: bytes) -> bytes:
        n = len(data)
        if n < 32:
            return bytes([0xA0 | n]) + data
        if n < 256:
            return b"\xd9" + n.to_bytes(1, "big") + data
        if n < 65536:
            return b"\xda" + n.to_bytes(2, "big") + data
        return b"\xdb" + n.to_bytes(4, "big") + data

    values = [b"\xff\xfe", b"\x80" * 200, b"\xc1" * 1000, b"\x00\xff" * 40_000]
    payload = bytes([0x90 | len(values)])  # a fixarray of the changes
    for rev, value in enumerate(values, 1):
        payload += b"\x95" + bytes([rev]) + lua_string(b"set") + lua_string(b"k")
        payload += lua_string(meta()) + lua_string(value)
    changes = protocol.changes_of_message(payload)
    assert [change[4] for change in changes] == values
    assert [change[0] for change in changes] == [1, 2, 3, 4]


def test_a_removal_event_has_no_value() -> None:
    change = protocol.change_of_reply([b"8", b"delete", b"k", meta(), b""])
    event = protocol.event_of("s", change, MSGPACK)
    assert event.action == "delete"
    assert not event.entry.has_value
    assert event.entry.value is None


def test_a_pattern_reads_only_its_prefix_range_from_the_page_start() -> None:
    assert protocol.page_range(compile_glob("a:*"), Page()) == (b"[a:", b"[a:\xff")
    assert protocol.page_range(compile_glob("a:*"), Page(after="a:5")) == (b"(a:5", b"[a:\xff")
    assert protocol.page_range(compile_glob("a:*"), Page(after="0")) == (b"[a:", b"[a:\xff")
    assert protocol.page_range(compile_glob("*"), Page(after="m")) == (b"(m", b"+")
    assert protocol.page_range(compile_glob("lit"), Page()) == (b"[lit", b"[lit")


def test_a_general_pattern_filters_its_range_then_reads_the_entries_at_one_revision() -> None:
    steps = protocol.find(compile_glob("a:*:x"), Page(limit=2))
    keys = next(steps)
    assert isinstance(keys, protocol.Keys)
    find_keys = steps.send((["a:1:x", "a:1:y", "a:2:x", "a:3:x"], b"9"))
    assert isinstance(find_keys, protocol.FindKeys)
    assert find_keys.arguments() == [b"9", "a:1:x", "a:2:x"]
    with pytest.raises(StopIteration) as done:
        steps.send([])
    assert done.value.value == []


def test_a_lost_reply_is_sent_again_until_the_deadline_then_outcome_unknown() -> None:
    write = protocol.Write(Write("plan", b"\x01", None, None, None, None, None), None, "s")
    attempts = retry.Attempts(write, deadline=10.0, where="redis://h")
    assert attempts.failed(ConnectionError("reset"), sent=True, now=0.0) == 0.0
    assert attempts.failed(ConnectionError("refused"), sent=False, now=1.0) > 0
    with pytest.raises(OutcomeUnknownError) as caught:
        attempts.failed(TimeoutError("slow"), sent=True, now=10.0)
    assert caught.value.key == "plan"
    assert "may or may not have been applied" in str(caught.value)


def test_a_call_that_never_got_through_is_unavailable_and_fails_fast() -> None:
    attempts = retry.Attempts(
        protocol.KeyFlag(b"delete", "k", writes=True), deadline=10.0, where="redis://h"
    )
    assert attempts.failed(ConnectionError("stale connection"), sent=False, now=0.0) == 0.0
    with pytest.raises(BackendUnavailableError) as caught:
        attempts.failed(ConnectionError("refused"), sent=False, now=0.0)
    assert not isinstance(caught.value, OutcomeUnknownError)


def test_a_read_that_was_sent_and_timed_out_is_unavailable_not_unknown() -> None:
    attempts = retry.Attempts(protocol.Get("k"), deadline=1.0, where="redis://h")
    with pytest.raises(BackendUnavailableError) as caught:
        attempts.failed(TimeoutError("slow"), sent=True, now=1.0)
    assert not isinstance(caught.value, OutcomeUnknownError)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("redis://h/0?password=pw&x=1", "redis://h/0?password=***&x=1"),
        ("redis://:pw@[::1/0", "redis://:***@[::1/0"),
        ("redis://user@h/0", "redis://user@h/0"),
    ],
)
def test_passwords_are_redacted(url: str, shown: str) -> None:
    assert urls.redact(url) == shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://h:p/0", "Port"),
        ("redis://:pw@[::1/0", "IPv6"),
        ("redis://h/abc", "database must be a number"),
        ("redis:///0", "no host"),
        ("http://h", "redis://"),
        ("unix://", "no socket path"),
    ],
)
def test_bad_urls_are_refused_naming_the_bad_part(url: str, problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem) as caught:
        urls.check_url(url)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("url", ["redis://h", "redis://h:6380/2", "rediss://u:p@h/0", "unix:///s"])
def test_good_urls_pass(url: str) -> None:
    assert urls.check_url(url) == urls.Target(False, url, [], {})


def test_a_cluster_url_names_its_startup_nodes_and_credentials() -> None:
    target = urls.check_url("rediss+cluster://user:p%40w@h1:7000,[::1]:7001/0")
    assert target.cluster
    assert target.nodes == [("h1", 7000), ("::1", 7001)]
    assert target.options == {"ssl": True, "username": "user", "password": "p@w"}
    assert urls.redact("redis+cluster://:pw@h1:1,h2:2") == "redis+cluster://:***@h1:1,h2:2"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://h1:1,h2", "host:port"),
        ("redis+cluster://h1:x", "host:port"),
        ("redis+cluster://h1:1/2", "database 0 only"),
        ("redis+cluster://h1:1?db=2", "no query"),
    ],
)
def test_bad_cluster_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem):
        urls.check_url(url)
