"""Terminal views of a context (rich): its entries, and its events as they happen.

Used by ``sharedctx inspect``, ``sharedctx watch`` and ``sharedctx demo``. Rich
drops colour by itself when the output is not a terminal (a pipe, a file) or when
``NO_COLOR`` is set, so the same code prints plain text there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from sharedctx._types import ContextEntry, ContextEvent

__all__ = ["entries_table", "entry_row", "event_line"]

_ACTION_STYLES = {"set": "green", "delete": "red", "expire": "yellow", "evict": "magenta"}


def _ttl_left(entry: ContextEntry, now: datetime) -> float | None:
    expires = entry.expires_at
    return None if expires is None else max(0.0, (expires - now).total_seconds())


def entry_row(entry: ContextEntry, now: datetime | None = None) -> dict[str, Any]:
    """One entry as plain data: key, version, source, tags, size, ttl_left (seconds)."""
    return {
        "key": entry.key,
        "version": entry.metadata.version,
        "source": entry.metadata.source,
        "tags": list(entry.metadata.tags),
        "size": entry.size,
        "ttl_left": _ttl_left(entry, now or datetime.now(UTC)),
    }


def entries_table(entries: Iterable[ContextEntry], title: str | None = None) -> Table:
    """A table of entries: key, version, source, tags, size, TTL left."""
    table = Table(title=title, title_justify="left")
    table.add_column("key", overflow="fold")
    table.add_column("version", justify="right")
    table.add_column("source")
    table.add_column("tags", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("TTL left", justify="right")
    now = datetime.now(UTC)
    for entry in entries:
        row = entry_row(entry, now)
        ttl = "-" if row["ttl_left"] is None else f"{row['ttl_left']:.0f} s"
        table.add_row(
            row["key"],
            str(row["version"]),
            row["source"],
            ", ".join(row["tags"]),
            f"{row['size']} B",
            ttl,
        )
    return table


def event_line(event: ContextEvent) -> Text:
    """One event as a line: revision, action, key, version and source."""
    line = Text()
    line.append(f"{event.revision:>6} ", style="dim")
    line.append(f"{event.action:<6} ", style=_ACTION_STYLES.get(event.action, ""))
    line.append(event.key, style="bold")
    line.append(f"  v{event.entry.metadata.version} from {event.entry.metadata.source}", "dim")
    return line
