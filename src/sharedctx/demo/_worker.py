"""A worker process of ``sharedctx demo --workers N``: ``python -m sharedctx.demo._worker``.

It reads what to do from stdin (one JSON object: the Redis URL, which may hold a
password and so never goes on the command line, the session, the minds with their
delays, the TTL, and on a sealed backend where to read the key ring: its file, or
``$SHAREDCTX_KEYS`` in the environment it inherits, never the keys), delivers those
minds' results into the session, and exits with status 0; on failure it prints one
line on stderr and exits with status 1. The parent starts it in a process group of
its own, so that the terminal's Ctrl-C reaches the parent alone, which then ends its
workers.
"""

from __future__ import annotations

import json
import sys

from sharedctx.demo._pipeline import DemoError, WorkerRing, mind_worker


def main() -> int:
    task = json.load(sys.stdin)
    where = task.get("ring")
    ring = None if where is None else WorkerRing(where["keys_file"], tuple(where["key_ids"]))
    try:
        mind_worker(task["url"], task["session_id"], task["delays"], task["ttl"], ring)
    except DemoError as failed:
        print(failed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
