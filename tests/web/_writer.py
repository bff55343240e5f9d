"""Writes to a Redis session from another OS process, for the web view's tests.

    python -m tests.web._writer URL SESSION OPERATIONS_JSON

``OPERATIONS_JSON`` is a list of ``["set", key, value, {options}]``,
``["delete", key]``, ``["steady", prefix, count, seconds]`` (count writes spread
over that many seconds) or ``["sleep", seconds]``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from sharedctx import SharedContext


def main(url: str, session: str, operations: list[list[Any]]) -> None:
    with SharedContext(session, backend=url) as context:
        run_operations(context, operations)


def run_operations(context: SharedContext, operations: list[list[Any]]) -> None:
    """Do ``operations`` (see the module docstring) in ``context``."""
    for operation in operations:
        name, *arguments = operation
        if name == "set":
            key, value, options = arguments
            context.set(key, value, **options)
        elif name == "delete":
            context.delete(arguments[0])
        elif name == "steady":
            prefix, count, seconds = arguments
            started = time.monotonic()
            for n in range(count):
                time.sleep(max(0.0, started + n * seconds / count - time.monotonic()))
                context.set(f"{prefix}{n}", {"n": n}, source="writer")
        elif name == "sleep":
            time.sleep(arguments[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
