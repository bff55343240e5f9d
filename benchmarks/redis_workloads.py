"""The Redis workloads: sharedctx on its Redis backend against raw redis-py, on one server.

Both talk to a ``redis-server`` started for the run (``servers.redis_server``). Raw
redis-py reads and writes the value pre-encoded as JSON bytes; sharedctx encodes and
decodes it on every call, which is part of its cost.

- **Latency per call** (:func:`run_latency`): every call timed on its own, in
  interleaved blocks (``harness.sample_calls``), so that p50, p90, p99 and max are
  reported. ``get`` and ``get_entry`` are compared with ``GET``, ``set`` with ``SET``,
  ``delete`` with ``DEL`` of an existing key: before each timed delete, the key is
  written again outside the timed part (for sharedctx with ``set``, for redis-py
  with ``SET``), so that the delete always removes something and its own cost is
  what is measured (timing a set+delete pair instead would hide a slow delete
  behind a fast set). ``set_multiple``/``get_multiple`` of 1000 keys are compared
  with a ``MULTI``/``EXEC`` pipeline of 1000 ``SET``s/``GET``s (and, for scale, with
  one ``MSET``/``MGET``). The server's own time per call (``INFO commandstats``) is
  kept beside each: what is left is the client and the round trip.
- **Notifications across processes** (:func:`run_notifications`): this process
  writes, a listener process receives (see ``processes.py``); one-way latency from
  just before the write to the moment the listener has the change, on the
  machine-wide monotonic clock.
- **Operations per second** with 1, 4 and 16 client processes
  (:func:`run_processes`), and the first round's workload with threads
  (:func:`run_threads`, kept so that its figures can be compared).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from harness import (
    CallCase,
    CallSettings,
    Case,
    Latency,
    Log,
    Settings,
    compare,
    per_call,
    sample_calls,
    summarize,
)
from processes import Worker, workers
from servers import SHAREDCTX_COMMAND
from workloads import VALUE, threaded_case

from sharedctx import SharedContext

__all__ = [
    "BATCH",
    "CLIENT_COUNTS",
    "NOTIFIED_BY",
    "OPERATIONS",
    "NotificationSettings",
    "RedisResults",
    "ThroughputSettings",
    "run_clients",
    "run_latency",
    "run_notifications",
    "run_processes",
    "run_threads",
    "server_version",
]

KEYS = 1000
"""Keys the latency and throughput workloads cycle through."""
BATCH = 1000
"""Keys of one ``set_multiple``/``get_multiple`` (and of their raw equivalents)."""
CLIENT_COUNTS = (1, 4, 16)
OPERATIONS = {
    "get": "GET",
    "get_entry": "GET",
    "set": "SET",
    "delete": "DEL (key re-created untimed)",
    f"set_multiple({BATCH})": f"MULTI/EXEC of {BATCH} SETs",
    f"get_multiple({BATCH})": f"MULTI/EXEC of {BATCH} GETs",
}
"""Each sharedctx operation and the raw redis-py baseline it is compared with."""
NOTIFIED_BY = {
    "redis-py": "raw PUBLISH -> SUBSCRIBE listener",
    "subscribe callback": "set -> subscribe() callback",
    "wait_for": "set -> wait_for(since=...) returns",
}
"""How a listener process learns of a write, and what that is."""
_SESSION = "bench-redis"


@dataclass
class RedisResults:
    """What the Redis workloads measured on one server."""

    server: str
    """The server's version."""
    latency: dict[str, dict[str, Latency]] = field(default_factory=dict)
    """Operation -> system (``sharedctx``, ``redis-py``, extra raw variants) -> µs per call."""
    server_us: dict[str, dict[str, float]] = field(default_factory=dict)
    """Operation -> system -> the server's µs per call (``INFO commandstats``)."""
    notifications: dict[str, Latency] = field(default_factory=dict)
    """How (``NOTIFIED_BY``) -> one-way latency from writer to listener process."""
    notification_losses: dict[str, dict[str, int]] = field(default_factory=dict)
    """How -> ``lost`` (no answer in 5 s) and ``discarded`` (the listener was not
    waiting yet when the write was made: not a measurement of a waiting listener)."""
    processes_ops_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """System -> client processes -> operations per second (median of the rounds)."""
    threads_ops_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """System -> client threads -> operations per second (the first round's workload)."""


def server_version(url: str) -> str:
    with redis.Redis.from_url(url) as client:
        return str(client.info("server")["redis_version"])


# -- latency per call ------------------------------------------------------------------


def run_latency(
    url: str, single: CallSettings, batch: CallSettings, results: RedisResults, log: Log
) -> None:
    """Every call's duration of each operation, sharedctx against redis-py."""
    payload = json.dumps(VALUE).encode()
    raw_keys = [f"raw:{i:04d}" for i in range(KEYS)]
    raw_batch = {f"raw:batch:{i:04d}": payload for i in range(BATCH)}
    keys = [f"bench:{i:04d}" for i in range(KEYS)]
    batch_values = {f"bench:batch:{i:04d}": VALUE for i in range(BATCH)}
    client = redis.Redis.from_url(url)
    context = SharedContext(_SESSION, backend=url)
    try:
        client.mset({**dict.fromkeys(raw_keys, payload), **raw_batch})
        context.set_multiple(dict.fromkeys(keys, VALUE))
        context.set_multiple(batch_values)

        def multi_set(_: str) -> object:
            pipe = client.pipeline(transaction=True)
            for key, data in raw_batch.items():
                pipe.set(key, data)
            return pipe.execute()

        def multi_get(_: str) -> object:
            pipe = client.pipeline(transaction=True)
            for key in raw_batch:
                pipe.get(key)
            return pipe.execute()

        def put(key: str) -> object:
            return context.set(key, VALUE)

        def put_raw(key: str) -> object:
            return client.set(key, payload)

        raw_batch_keys = list(raw_batch)
        batch_keys = list(batch_values)
        groups: dict[str, tuple[CallSettings, dict[str, CallCase], dict[str, str]]] = {
            "get": (
                single,
                {
                    "sharedctx": per_call(context.get, keys),
                    "redis-py": per_call(client.get, raw_keys),
                },
                {"sharedctx": SHAREDCTX_COMMAND, "redis-py": "get"},
            ),
            "get_entry": (
                single,
                {
                    "sharedctx": per_call(context.get_entry, keys),
                    "redis-py": per_call(client.get, raw_keys),
                },
                {"sharedctx": SHAREDCTX_COMMAND, "redis-py": "get"},
            ),
            "set": (
                single,
                {"sharedctx": per_call(put, keys), "redis-py": per_call(put_raw, raw_keys)},
                {"sharedctx": SHAREDCTX_COMMAND, "redis-py": "set"},
            ),
            "delete": (
                single,
                {
                    "sharedctx": per_call(context.delete, keys, before=put),
                    "redis-py": per_call(client.delete, raw_keys, before=put_raw),
                },
                {},  # the untimed re-creations run on the server too
            ),
            f"set_multiple({BATCH})": (
                batch,
                {
                    "sharedctx": per_call(lambda _: context.set_multiple(batch_values), [""]),
                    "redis-py": per_call(multi_set, [""]),
                    "redis-py MSET": per_call(lambda _: client.mset(raw_batch), [""]),
                },
                {"sharedctx": SHAREDCTX_COMMAND, "redis-py": "exec", "redis-py MSET": "mset"},
            ),
            f"get_multiple({BATCH})": (
                batch,
                {
                    "sharedctx": per_call(lambda _: context.get_multiple(batch_keys), [""]),
                    "redis-py": per_call(multi_get, [""]),
                    "redis-py MGET": per_call(lambda _: client.mget(raw_batch_keys), [""]),
                },
                {"sharedctx": SHAREDCTX_COMMAND, "redis-py": "exec", "redis-py MGET": "mget"},
            ),
        }
        for operation, (settings, cases, commands) in groups.items():
            client.config_resetstat()
            durations = sample_calls(cases, settings)
            stats = client.info("commandstats")
            results.latency[operation] = {name: summarize(d) for name, d in durations.items()}
            results.server_us[operation] = {
                name: float(stats[f"cmdstat_{command}"]["usec_per_call"])
                for name, command in commands.items()
                if f"cmdstat_{command}" in stats
            }
            log(f"redis latency: {operation} done")
    finally:
        client.close()
        context.destroy()


# -- notifications across processes ----------------------------------------------------


@dataclass(frozen=True)
class NotificationSettings:
    """How many notifications to time, how far apart, and for how long at most."""

    samples: int
    """Notifications per way of listening, if time allows."""
    seconds: float
    """Time for all the ways together: each way starts no further block once it has
    taken its share, so that a slow way gets fewer samples rather than a long run."""
    block: int = 20
    """Notifications in a row for one way, before the next way's turn."""
    gap_s: float = 0.003
    """Pause before each write, plus up to 2 ms at random: the listener is back to
    waiting (a new ``wait_for`` subscribed) well before the next write."""


def run_notifications(
    url: str, settings: NotificationSettings, results: RedisResults, log: Log
) -> None:
    """One-way latency from a write in this process to a listener process, for each
    way of listening (``NOTIFIED_BY``), in interleaved blocks."""
    sessions = {"subscribe callback": "bench-notify-callback", "wait_for": "bench-notify-wait"}
    channel = "bench-notify-raw"
    configs = [
        {"mode": "redis-py", "url": url, "name": channel},
        {"mode": "callback", "url": url, "name": sessions["subscribe callback"]},
        {"mode": "wait_for", "url": url, "name": sessions["wait_for"]},
    ]
    client = redis.Redis.from_url(url)
    contexts = {how: SharedContext(session, backend=url) for how, session in sessions.items()}
    senders: dict[str, Callable[[int, int], object]] = {
        "redis-py": lambda seq, sent: client.publish(channel, f"{seq} {sent}"),
        **{how: _sender(context) for how, context in contexts.items()},
    }
    latencies: dict[str, list[int]] = {how: [] for how in NOTIFIED_BY}
    losses = {how: {"lost": 0, "discarded": 0} for how in NOTIFIED_BY}
    jitter = random.Random(0)
    try:
        with workers("listener", configs) as listeners:
            by_way = dict(zip(NOTIFIED_BY, listeners, strict=True))
            names = list(NOTIFIED_BY)
            sent_count = dict.fromkeys(names, 0)
            spent = dict.fromkeys(names, 0.0)
            budget = settings.seconds / len(names)
            seq = 0
            for round_ in itertools.count():
                active = [
                    how
                    for how in names
                    if sent_count[how] < settings.samples and spent[how] < budget
                ]
                if not active:
                    break
                turn = round_ % len(active)
                for how in active[turn:] + active[:turn]:
                    started = time.monotonic()
                    for _ in range(settings.block):
                        seq += 1
                        sent_count[how] += 1
                        time.sleep(settings.gap_s + jitter.uniform(0, 0.002))
                        sent = time.monotonic_ns()
                        senders[how](seq, sent)
                        answer = _answer_to(by_way[how], seq)
                        if answer is None:
                            losses[how]["lost"] += 1
                        elif answer.get("waiting", 0) > sent:
                            losses[how]["discarded"] += 1
                        else:
                            latencies[how].append(answer["received"] - sent)
                    spent[how] += time.monotonic() - started
            for how in names:
                senders[how](-1, 0)  # ends the listener
    finally:
        client.close()
        for context in contexts.values():
            context.destroy()
    results.notifications = {how: summarize(found) for how, found in latencies.items() if found}
    results.notification_losses = losses
    log("notifications done")


def _sender(context: SharedContext) -> Callable[[int, int], object]:
    """Writes message ``seq``, sent at ``sent``, as the value of key ``n``."""
    return lambda seq, sent: context.set("n", {"seq": seq, "sent": sent})


def _answer_to(listener: Worker, seq: int) -> dict[str, Any] | None:
    """The listener's answer about message ``seq`` (older, late ones are skipped);
    None if none comes within 5 s."""
    deadline = time.monotonic() + 5
    while (left := deadline - time.monotonic()) > 0:
        try:
            answer = listener.receive(left)
        except TimeoutError:
            return None
        if answer["seq"] == seq:
            return answer
    return None


# -- operations per second -------------------------------------------------------------


@dataclass(frozen=True)
class ThroughputSettings:
    """How long and how often to count operations."""

    rounds: int
    """Samples per case (the median is reported)."""
    seconds: float
    """Duration of one sample."""


def run_processes(url: str, settings: ThroughputSettings, results: RedisResults, log: Log) -> None:
    """Operations per second of 1, 4 and 16 client processes, sharedctx against
    redis-py, in interleaved rounds. Every client process has its own keys: for
    sharedctx a session of its own (``KEYS`` keys), for redis-py ``KEYS`` keys of its
    own; each alternates a get and a set of them in its own random order."""
    configs = [
        {
            "value": VALUE,
            "keys": KEYS,
            "seed": index,
            "systems": {
                "sharedctx": {
                    "kind": "sharedctx",
                    "url": url,
                    "sessions": [f"bench-clients-{index}"],
                },
                "redis-py": {"kind": "redis-py", "url": url, "prefix": f"raw-clients-{index}"},
            },
        }
        for index in range(max(CLIENT_COUNTS))
    ]
    with workers("clients", configs) as clients:
        counts = run_clients(clients, ["sharedctx", "redis-py"], CLIENT_COUNTS, settings)
    results.processes_ops_per_s = counts
    log("redis client processes done")


def run_clients(
    clients: list[Worker],
    systems: list[str],
    counts: tuple[int, ...],
    settings: ThroughputSettings,
) -> dict[str, dict[int, float]]:
    """Median operations per second of each system with each number of the
    ``clients`` worker processes running at once (the first ones), in interleaved
    rounds. The workers start together, at a moment given in advance."""
    cases = [(system, count) for count in counts for system in systems]
    samples: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    for round_ in range(settings.rounds):
        turn = round_ % len(cases)
        for system, count in cases[turn:] + cases[:turn]:
            start_at = time.monotonic_ns() + 100_000_000  # 0.1 s for the commands to arrive
            for client in clients[:count]:
                client.send({"run": system, "start_at": start_at, "seconds": settings.seconds})
            operations = sum(
                client.receive(settings.seconds + 30)["ops"] for client in clients[:count]
            )
            samples[system, count].append(operations / settings.seconds)
    medians: dict[str, dict[int, float]] = {}
    for (system, count), found in samples.items():
        medians.setdefault(system, {})[count] = sorted(found)[len(found) // 2]
    return medians


def run_threads(url: str, settings: Settings, results: RedisResults, log: Log) -> None:
    """The first round's workload: ops/s of 1, 4 and 16 threads of this process, each
    with its own client (or context) object, alternating a get and a set of the same
    ``KEYS`` existing keys."""
    payload = json.dumps(VALUE).encode()
    raw_keys = [f"raw:{i:04d}" for i in range(KEYS)]
    keys = [f"bench:{i:04d}" for i in range(KEYS)]
    clients: list[redis.Redis] = []
    contexts: list[SharedContext] = []
    cases: dict[tuple[str, int], Case] = {}
    try:
        setup = redis.Redis.from_url(url)
        clients.append(setup)
        setup.mset(dict.fromkeys(raw_keys, payload))
        for count in CLIENT_COUNTS:
            raw = [redis.Redis.from_url(url) for _ in range(count)]
            clients += raw
            cases["redis-py", count] = threaded_case(
                [(client.get, client.set) for client in raw], raw_keys, payload
            )
            mine = [SharedContext(_SESSION, backend=url) for _ in range(count)]
            contexts += mine
            mine[0].set_multiple(dict.fromkeys(keys, VALUE))
            cases["sharedctx", count] = threaded_case(
                [(context.get, context.set) for context in mine], keys, VALUE
            )
        medians = compare({f"{s} | {n}": case for (s, n), case in cases.items()}, settings)
    finally:
        for client in clients:
            client.close()
        for context in contexts:
            context.close()
    for system, count in cases:
        ops_per_s = 1e6 / medians[f"{system} | {count}"]
        results.threads_ops_per_s.setdefault(system, {})[count] = ops_per_s
    log("redis client threads done")
