"""Many threads at once: no lost update, no stampede, no half-seen batch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

THREADS = 8


def _run_threads(target: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = target(n)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results
