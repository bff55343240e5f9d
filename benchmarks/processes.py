"""Worker processes for the multi-process workloads, and the parent's handle on them.

A worker is a fresh interpreter running this file (``python benchmarks/processes.py
ROLE CONFIG``): a real OS process with its own GIL, its own connections and, with
sharedctx, its own ``RedisBackend`` and follower thread, as a pipeline's process
would have. It talks to the parent in JSON, one object per line: commands on its
stdin, answers on its stdout (``{"ready": true}`` first, once it is set up); its
stderr is the parent's. The roles:

- ``clients``: holds connections to one or more *systems* (sharedctx on a URL, or
  raw redis-py) with their keys written; on ``{"run": system, "start_at": ns,
  "seconds": s}`` it alternates a ``get`` and a ``set`` of its keys, in its own random
  order, from ``start_at`` (a ``time.monotonic_ns`` value) for ``s`` seconds, and
  answers ``{"ops": n}``.
- ``listener``: receives what a writer in another process sends (a sharedctx
  ``subscribe`` callback, a sharedctx ``wait_for`` returning, or a raw redis-py
  ``SUBSCRIBE``), and answers each message at once with ``{"seq", "sent",
  "received"}``: the writer's and its own ``time.monotonic_ns()``.
- ``writer``: sets ``w:<n>`` to ``n`` for n = 0, 1, 2... until a line arrives on its
  stdin, then answers with every acknowledged ``n`` and when it was acknowledged.
- ``peers``: holds LangGraph stores open (``SharedContextStore`` on Redis,
  ``PostgresStore``) and runs a random sequence of calls through one of them on each
  command, timing every call (``peer_workloads.run_worker``).

``time.monotonic_ns`` reads ``CLOCK_MONOTONIC``, which on Linux is one clock for the
whole machine: a time taken in one process can be subtracted from one taken in
another. (``time.perf_counter_ns`` is ``CLOCK_MONOTONIC`` too on Linux, but Python
does not promise that, so the cross-process times use ``monotonic_ns`` by name.)
"""

from __future__ import annotations

import json
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = ["Worker", "workers"]

Message = dict[str, Any]


# -- the parent's side -----------------------------------------------------------------


class Worker:
    """A worker process (see the module docstring) and its lines of JSON."""

    def __init__(self, role: str, config: Message) -> None:
        self.role = role
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), role, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)  # the worker's stdout closed: it exited

    def send(self, message: Message) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def receive(self, timeout: float) -> Message:
        """The worker's next answer; ``TimeoutError`` if none comes in ``timeout`` s,
        ``RuntimeError`` if the worker exited."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.role} worker: no answer within {timeout} s") from None
        if line is None:
            self._lines.put(None)
            code = self._process.wait()
            raise RuntimeError(f"{self.role} worker exited with status {code}")
        message: Message = json.loads(line)
        return message

    def stop(self, timeout: float = 10.0) -> None:
        """Close its stdin (the signal to finish), wait, and kill it if it does not exit."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            with suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


@contextmanager
def workers(role: str, configs: Sequence[Message], timeout: float = 60.0) -> Iterator[list[Worker]]:
    """Start one worker per config, wait until each is ready, and stop them all at the
    end, whatever happened."""
    with ExitStack() as stack:
        started = []
        for config in configs:
            worker = Worker(role, config)
            stack.callback(worker.stop)
            started.append(worker)
        for worker in started:
            ready = worker.receive(timeout)
            if not ready.get("ready"):
                raise RuntimeError(f"{role} worker: unexpected first answer {ready}")
        yield started


# -- the workers' side -----------------------------------------------------------------


def _answer(message: Message, lock: threading.Lock | None = None) -> None:
    line = json.dumps(message)
    if lock is None:
        print(line, flush=True)
    else:
        with lock:
            print(line, flush=True)


def _commands() -> Iterator[Message]:
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def run_clients(config: Message) -> None:
    """The ``clients`` role (see the module docstring)."""
    import redis

    from sharedctx import RedisBackend, SharedContext

    value = config["value"]
    keys_per_target: int = config["keys"]
    order = random.Random(config["seed"])
    loops: dict[str, Callable[[int], int]] = {}
    with ExitStack() as stack:
        for name, system in config["systems"].items():
            if system["kind"] == "redis-py":
                client = redis.Redis.from_url(system["url"])
                stack.callback(client.close)
                payload = json.dumps(value).encode()
                raw_keys = [f"{system['prefix']}:{i:05d}" for i in range(keys_per_target)]
                client.mset(dict.fromkeys(raw_keys, payload))
                order.shuffle(raw_keys)
                raw_pairs = [(client.get, client.set, key) for key in raw_keys]
                loops[name] = _alternate(raw_pairs, payload)
            else:
                backend = RedisBackend(system["url"])
                stack.callback(backend.close)
                pairs = []
                for session in system["sessions"]:
                    context = stack.enter_context(SharedContext(session, backend=backend))
                    keys = [f"k:{i:05d}" for i in range(keys_per_target)]
                    context.set_multiple(dict.fromkeys(keys, value))
                    pairs += [(context.get, context.set, key) for key in keys]
                order.shuffle(pairs)
                loops[name] = _alternate(pairs, value)
        _answer({"ready": True})
        for command in _commands():
            start_at: int = command["start_at"]
            end_at = start_at + int(command["seconds"] * 1e9)
            while time.monotonic_ns() < start_at:
                time.sleep(0.0005)
            _answer({"ops": loops[command["run"]](end_at)})


def _alternate(
    pairs: Sequence[tuple[Callable[[str], object], Callable[[str, Any], object], str]],
    value: Any,
) -> Callable[[int], int]:
    """A loop of ``get(key)`` then ``set(key, value)`` over ``pairs`` until a
    monotonic time; it returns how many operations it completed."""
    position = 0

    def run(end_at: int) -> int:
        nonlocal position
        operations = 0
        clock = time.monotonic_ns
        while clock() < end_at:
            get, put, key = pairs[position]
            get(key)
            put(key, value)
            operations += 2
            position = (position + 1) % len(pairs)
        return operations

    return run


def run_listener(config: Message) -> None:
    """The ``listener`` role (see the module docstring). A message with ``seq`` -1
    ends it."""
    mode, url, name = config["mode"], config["url"], config["name"]
    clock = time.monotonic_ns
    if mode == "redis-py":
        import redis

        with redis.Redis.from_url(url) as client, client.pubsub() as pubsub:
            pubsub.subscribe(name)
            pubsub.get_message(timeout=5)  # the subscription's confirmation
            _answer({"ready": True})
            for message in pubsub.listen():
                received = clock()
                if message["type"] != "message":
                    continue
                seq, sent = map(int, message["data"].split())
                if seq < 0:
                    return
                _answer({"seq": seq, "sent": sent, "received": received})
        return

    from sharedctx import ContextEvent, SharedContext

    with SharedContext(name, backend=url) as context:
        if mode == "callback":
            done = threading.Event()
            lock = threading.Lock()

            def on_change(event: ContextEvent) -> None:
                received = clock()
                if event.action != "set":
                    return
                seq, sent = event.entry.value["seq"], event.entry.value["sent"]
                if seq < 0:
                    done.set()
                    return
                _answer({"seq": seq, "sent": sent, "received": received}, lock)

            context.subscribe("n", on_change)
            _answer({"ready": True})
            done.wait()
            return
        since = context.revision
        _answer({"ready": True})
        while True:
            waiting = clock()
            entry = context.wait_for("n", since=since, timeout=60)[0]
            received = clock()
            since = entry.revision
            seq, sent = entry.value["seq"], entry.value["sent"]
            if seq < 0:
                return
            _answer({"seq": seq, "sent": sent, "received": received, "waiting": waiting})


def run_writer(config: Message) -> None:
    """The ``writer`` role (see the module docstring)."""
    from sharedctx import BackendUnavailableError, RedisBackend, SharedContext

    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    backend = RedisBackend(
        config["url"], durability=config["durability"], socket_timeout=config["socket_timeout"]
    )
    acked: list[int] = []
    acked_at: list[int] = []
    failed: dict[str, int] = {}
    with SharedContext(config["session"], backend=backend) as context:
        context.set("w:start", 0)
        _answer({"ready": True})
        threading.Thread(target=wait_for_stop, daemon=True).start()
        written = 0
        while not stop.is_set():
            try:
                context.set(f"w:{written:08d}", written)
            except BackendUnavailableError as error:  # OutcomeUnknownError too: not acked
                failed[type(error).__name__] = failed.get(type(error).__name__, 0) + 1
            else:
                acked.append(written)
                acked_at.append(time.monotonic_ns())
            written += 1
    backend.close()
    _answer({"acked": acked, "acked_at": acked_at, "attempts": written, "failed": failed})


def run_peers(config: Message) -> None:
    """The ``peers`` role (see the module docstring)."""
    from peer_workloads import run_worker

    run_worker(config, _answer, _commands())


ROLES: dict[str, Callable[[Message], None]] = {
    "clients": run_clients,
    "listener": run_listener,
    "writer": run_writer,
    "peers": run_peers,
}


if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
