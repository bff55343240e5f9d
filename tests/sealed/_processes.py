"""What the sealed tests run in other OS processes: a watcher that opens what it is
sent, a writer that goes on through a rekey and a ring without the old key, and a
writer that starts a new session at the same time as others. Each takes its key ring
from ``SHAREDCTX_KEYS`` (``KeyRing.from_env``)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from sharedctx import KeyRing, RedisBackend, SharedContext


def watch_values(url: str, namespace: str, session: str, count: int) -> None:
    """Print ``ready``, then the sha256 of each of the next ``count`` set values."""
    backend = RedisBackend(url, namespace=namespace, keyring=KeyRing.from_env())
    with SharedContext(session, backend=backend) as ctx, ctx.watch() as watch:
        print("ready", flush=True)
        seen = 0
        while seen < count:
            event = watch.get(timeout=30)
            if event.action == "set":
                print(hashlib.sha256(event.entry.value).hexdigest(), flush=True)
                seen += 1
    backend.close()


def write_through_rekey(url: str, session: str, switch: str, after: int) -> None:
    """Write k0, k1, ... (and read each back) with the ring of ``SHAREDCTX_KEYS``; once
    the file ``switch`` exists, reopen with ``SHAREDCTX_KEYS_NEW`` (the ring without the
    old key) and write ``after`` more. Print the count written and the reads that
    failed, as JSON."""
    written, failures = 0, []
    ring = KeyRing.from_env()
    switched, switched_at = False, 0
    while True:
        backend = RedisBackend(url, keyring=ring)
        with SharedContext(session, backend=backend) as ctx:
            while True:
                ctx.set(f"k{written}", written)
                written += 1
                try:
                    back = ctx.get(f"k{written - 1}")
                    if back != written - 1:
                        failures.append(f"k{written - 1} read back {back!r}")
                except Exception as error:  # a read that fails: what the test counts
                    failures.append(f"{type(error).__name__}: {error}")
                if switched and written >= switched_at + after:
                    break
                if not switched and os.path.exists(switch):
                    break
                time.sleep(0.001)
        backend.close()
        if switched:
            break
        switched, switched_at = True, written
        ring = KeyRing.from_env("SHAREDCTX_KEYS_NEW")
    print(json.dumps({"written": written, "failures": failures}), flush=True)


def write_when_told(url: str, namespace: str, session: str, key: str) -> None:
    """Open ``session`` (which has no data key yet: this process proposes one), print
    ``ready``, and once a line comes on stdin write ``key`` (its own name as value);
    print what it then reads back."""
    backend = RedisBackend(url, namespace=namespace, keyring=KeyRing.from_env())
    with SharedContext(session, backend=backend) as ctx:
        ctx.get(key)
        print("ready", flush=True)
        sys.stdin.readline()
        ctx.set(key, key)
        print(json.dumps(ctx.get(key)), flush=True)
    backend.close()


if __name__ == "__main__":
    function = {
        "watch_values": watch_values,
        "write_through_rekey": write_through_rekey,
        "write_when_told": write_when_told,
    }
    name, *arguments = sys.argv[1:]
    function[name](*(int(a) if a.isdigit() else a for a in arguments))  # type: ignore[operator]
