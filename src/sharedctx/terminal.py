"""Terminal views of a context (rich): its entries, and its events as they happen.

Needs the ``cli`` extra (rich). Used by ``sharedctx inspect``, ``sharedctx watch``
and ``sharedctx demo``, and free for a pipeline's own command line. Rich
drops colour by itself when the output is not a terminal (a pipe, a file) or when
``NO_COLOR`` is set, so the same code prints plain text there.

Session data is untrusted: whoever can write to a session chooses its id and its
keys, sources, tags and values. A terminal would act on the escape sequences and
bidi overrides they may hold, and rich would read ``[bold]`` in them as markup. So
every human-readable view passes session data through :func:`printable` (the core's
``sharedctx.printable``, which the log records use too) and puts it
in a rich ``Text`` (never markup); ``--json`` output is exact instead (``json.dumps``
escapes what needs escaping).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from sharedctx import ContextEntry, ContextEvent, printable

if TYPE_CHECKING:
    from sharedctx.backends import SessionSummary

__all__ = [
    "entries_table",
    "versions_table",
    "version_row",
    "sessions_table",
    "summary_row",
    "entry_row",
    "event_line",
    "event_row",
    "print_unsqueezed",
    "printable",
]

_ACTION_STYLES = {"set": "green", "delete": "red", "expire": "yellow", "evict": "magenta"}
_UNLIMITED = 1_000_000


def _text(text: str, style: str = "") -> Text:
    return Text(printable(text), style=style)


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


def version_row(entry: ContextEntry, now: datetime | None = None) -> dict[str, Any]:
    """One version of a key as plain data: :func:`entry_row`'s fields, then revision
    and updated (ISO time)."""
    return {
        **entry_row(entry, now),
        "revision": entry.revision,
        "updated": entry.updated_at.isoformat(timespec="seconds"),
    }


def event_row(event: ContextEvent) -> dict[str, Any]:
    """One event as plain data: revision, action, key, version, source, tags."""
    metadata = event.entry.metadata
    return {
        "revision": event.revision,
        "action": event.action,
        "key": event.key,
        "version": metadata.version,
        "source": metadata.source,
        "tags": list(metadata.tags),
    }


def entries_table(entries: Iterable[ContextEntry], title: str | None = None) -> Table:
    """A table of entries: key, version (v), source, tags, size, TTL left (ttl).

    Keys up to 32 characters and sources up to 16 never fold; on a narrow terminal
    the tags fold first.
    """
    now = datetime.now(UTC)
    rows = [entry_row(entry, now) for entry in entries]
    table = Table(
        title=None if title is None else _text(title),
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    table.add_column("key", overflow="fold", width=_widest(rows, "key", 32))
    table.add_column("v", justify="right")
    table.add_column("source", overflow="fold", width=_widest(rows, "source", 16))
    table.add_column("tags", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("ttl", justify="right", no_wrap=True)
    for row in rows:
        ttl = "-" if row["ttl_left"] is None else f"{row['ttl_left']:.0f} s"
        table.add_row(
            _text(row["key"]),
            Text(str(row["version"])),
            _text(row["source"]),
            _text(", ".join(row["tags"])),
            Text(f"{row['size']} B"),
            Text(ttl),
        )
    return table


def versions_table(entries: Iterable[ContextEntry], title: str | None = None) -> Table:
    """A table of the versions of a key, as ``ctx.history`` gives them (newest first):
    revision (rev), version (v), source, tags, size, when written (updated)."""
    rows = [version_row(entry) for entry in entries]
    table = Table(
        title=None if title is None else _text(title),
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    table.add_column("rev", justify="right")
    table.add_column("v", justify="right")
    table.add_column("source", overflow="fold", width=_widest(rows, "source", 16))
    table.add_column("tags", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    for row in rows:
        table.add_row(
            Text(str(row["revision"])),
            Text(str(row["version"])),
            _text(row["source"]),
            _text(", ".join(row["tags"])),
            Text(f"{row['size']} B"),
            Text(row["updated"]),
        )
    return table


def summary_row(summary: SessionSummary) -> dict[str, Any]:
    """A session as plain data: session, entries, bytes, past_bytes (of the past
    versions it keeps), last_write, drops_at (ISO times, or None)."""
    return {
        "session": summary.session_id,
        "entries": summary.entries,
        "bytes": summary.bytes,
        "past_bytes": summary.past_bytes,
        "last_write": _iso(summary.last_write),
        "drops_at": _iso(summary.drops_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def sessions_table(summaries: Iterable[SessionSummary]) -> Table:
    """A table of sessions: id, live entries, bytes, bytes of past versions (past),
    last write, when the server drops it (``never`` without a ``session_ttl``)."""
    rows = [summary_row(summary) for summary in summaries]
    table = Table(box=None, pad_edge=False)
    table.add_column("session", overflow="fold", width=_widest(rows, "session", 40))
    table.add_column("entries", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("past", justify="right")
    table.add_column("last write", no_wrap=True)
    table.add_column("dropped at", no_wrap=True)
    for row in rows:
        table.add_row(
            _text(row["session"]),
            Text(str(row["entries"])),
            Text(str(row["bytes"])),
            Text(str(row["past_bytes"])),
            Text(row["last_write"] or "-"),
            Text(row["drops_at"] or "never"),
        )
    return table


def _widest(rows: list[dict[str, Any]], field: str, most: int) -> int:
    return min(most, max([len(field), *(cell_len(printable(row[field])) for row in rows)]))


def event_line(event: ContextEvent) -> Text:
    """One event as a line: revision, action, key, version and source."""
    metadata = event.entry.metadata
    line = Text()
    line.append(f"{event.revision:>6} ", style="dim")
    line.append(f"{event.action:<6} ", style=_ACTION_STYLES.get(event.action, ""))
    line.append(printable(event.key), style="bold")
    line.append(f"  v{metadata.version} from {printable(metadata.source)}", style="dim")
    return line


def print_unsqueezed(console: Console, renderable: RenderableType) -> None:
    """Print ``renderable`` fitted to a terminal's width, and elsewhere (a pipe, a
    file) at its natural width, rather than squeezed into rich's default 80 columns."""
    if console.is_terminal:
        console.print(renderable)
        return
    width = Measurement.get(console, console.options.update_width(_UNLIMITED), renderable)
    options = console.options.update_width(max(width.maximum, console.width))
    console.print(Segments(console.render(renderable, options)), crop=False)
