"""The tables of a run, as text for the terminal and as Markdown for the docs' benchmarks page.

Each section builds :class:`Table` objects from :class:`results.Results`; the same
tables are printed by ``run.py`` and written into ``docs/benchmarks.md`` by ``publish.py``, so
the two never disagree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

from harness import Latency
from peer_sequence import MEMORIES, USERS, WEIGHTS
from peer_workloads import ALL, IN_PROCESS, SHARED, PeerResults
from redis_workloads import NOTIFIED_BY, OPERATIONS
from results import Results
from workloads import MATCHES, PATTERN, TAG

__all__ = [
    "CLOCK_NOTE",
    "CORES_NOTE",
    "Table",
    "cores_note",
    "disturbance_note",
    "format_machine",
    "format_report",
    "markdown",
    "number",
    "run_table",
    "size_label",
    "tables",
    "text",
]

TITLES = {
    "get": "get (hit)",
    "set": "set (existing key, random keys)",
    "set_hot": "set (one hot key)",
    "find_by_pattern": f"find_by_pattern({PATTERN!r}), {MATCHES} results",
    "find_by_tag": f"find_by_tag({TAG!r}), {MATCHES} results",
}
CLOCK_NOTE = (
    "Notification latency is one-way, from just before the write in process A to the "
    "moment process B has the change, both read with time.monotonic_ns(): "
    "CLOCK_MONOTONIC, one clock for the whole machine on Linux."
)
CORES_NOTE = (
    "On this machine every cluster node, the single server and the client processes "
    "share the same {cores} cores: spreading sessions over {masters} masters cannot add "
    "CPU here, so the cluster's ops/s show what routing costs and that the load is "
    "spread (sessions and calls per master), not what {masters} machines would give."
)


@dataclass(frozen=True)
class Table:
    """A titled table: ``header`` names every column, the first labels the rows."""

    title: str
    header: list[str]
    rows: list[list[str]]


def number(value: float) -> str:
    """A figure with three significant digits, or thousands separators above 1000."""
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def size_label(size: int) -> str:
    exponent = round(math.log10(size))
    return f"1e{exponent}" if 10**exponent == size else f"{size:,}"


def format_machine(machine: dict[str, str | int]) -> str:
    """One line naming the machine."""
    return (
        f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['python']} (GIL {machine['gil']}), {machine['platform']}, "
        f"sharedctx {machine['sharedctx']}"
    )


def tables(results: Results) -> list[Table]:
    """Every table of the run, in the order they are shown."""
    return [
        *_import_tables(results),
        *_memory_tables(results),
        *_redis_tables(results),
        *_cluster_tables(results),
        *_history_tables(results),
        *_web_tables(results),
        *_telemetry_tables(results),
        *_peer_tables(results.peers),
    ]


def _peer_tables(peers: PeerResults | None) -> Iterator[Table]:
    if peers is None:
        return
    mix = ", ".join(f"{share}% {kind}" for kind, share in WEIGHTS.items())
    work = f"{USERS * (MEMORIES + 1):,} items of {USERS} users; calls: {mix}"
    kinds = [ALL, *WEIGHTS]
    if peers.in_process:
        mine, theirs = (peers.in_process[system] for system in reversed(IN_PROCESS))
        yield Table(
            f"LangGraph stores in process, the same random sequence ({work}): µs per call",
            ["call", "InMemoryStore p50", "p99", "mean", "SharedContextStore p50", "p99",
             "mean", "x InMemoryStore (p50)", "x InMemoryStore (mean)"],
            [
                [
                    kind,
                    *(number(getattr(theirs[kind], name)) for name in ("p50", "p99", "mean")),
                    *(number(getattr(mine[kind], name)) for name in ("p50", "p99", "mean")),
                    f"{mine[kind].p50 / theirs[kind].p50:.2f}",
                    f"{mine[kind].mean / theirs[kind].mean:.2f}",
                ]
                for kind in kinds
                if kind in mine and kind in theirs
            ],
        )  # fmt: skip
    if not peers.shared_ops_per_s:
        return
    mine_ops, theirs_ops = (peers.shared_ops_per_s[system] for system in SHARED)
    yield Table(
        f"LangGraph stores shared by client processes, each its own random sequence: "
        f"SharedContextStore on Redis against PostgresStore ({peers.servers}): ops/s",
        ["client processes", "SharedContextStore", "PostgresStore", "x PostgresStore"],
        [
            [str(count), f"{mine_ops[count]:,.0f}", f"{theirs_ops[count]:,.0f}",
             f"{mine_ops[count] / theirs_ops[count]:.2f}"]
            for count in sorted(mine_ops)
        ],
    )  # fmt: skip
    mine_calls, theirs_calls = (peers.shared[system] for system in SHARED)
    yield Table(
        "LangGraph stores shared: µs per call (p50, p99) by client processes",
        ["call", "processes", "SharedContextStore p50", "p99", "PostgresStore p50", "p99"],
        [
            [kind, str(count),
             number(mine_calls[count][kind].p50), number(mine_calls[count][kind].p99),
             number(theirs_calls[count][kind].p50), number(theirs_calls[count][kind].p99)]
            for kind in kinds
            for count in sorted(mine_calls)
            if kind in mine_calls[count] and kind in theirs_calls[count]
        ],
    )  # fmt: skip


def _telemetry_tables(results: Results) -> Iterator[Table]:
    measured = results.telemetry
    if measured is None or not measured.us:
        return
    modes = list(next(iter(measured.us.values())))
    rows = []
    for case, us in measured.us.items():
        row = [case, *(number(us[mode]) for mode in modes)]
        if "before" in us:
            row += [f"{us[mode] / us['before']:.3f}" for mode in modes if mode != "before"]
        rows.append(row)
    ratios = [f"{mode} / before" for mode in modes if mode != "before" and "before" in modes]
    yield Table(
        f"Telemetry: µs per call (median), each configuration in a process of its own; "
        f"before = {measured.before_source.removeprefix('commit ')}",
        ["call", *modes, *ratios],
        rows,
    )


def target_table(results: Results) -> Table:
    return Table(
        "Targets",
        ["status", "issue", "goal", "measured"],
        [[t.status, t.issue, t.goal, t.measured] for t in results.targets],
    )


def regression_table(results: Results) -> Table:
    return Table(
        f"The first round's figures (from {results.round1_source}) and this run's",
        ["figure", "scale", "round 1", "this run", "change", ""],
        [
            [
                r.figure,
                r.scale,
                number(r.round1),
                number(r.now),
                f"{r.change:+.0%} {'slower' if r.change > 0 else 'faster'}",
                "SLOWER" if r.slower else "not judged" if r.tolerance is None else "",
            ]
            for r in results.regressions
        ],
    )


DISTURBED = 0.10
"""Share of the machine's CPU taken by others above which a workload is flagged."""


def run_table(results: Results) -> Table:
    """How long each workload took, and the CPU others took from the machine meanwhile."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    return Table(
        "The run: seconds per workload, and the machine's CPU used by others meanwhile",
        ["workload", "seconds", "other processes", "hypervisor (steal)"],
        [
            [name, f"{run.seconds:.0f}", share(run.others_cpu), share(run.steal_cpu)]
            for name, run in results.workloads.items()
        ],
    )


def disturbance_note(results: Results) -> str | None:
    """A warning naming the workloads during which others took much of the machine."""
    disturbed = [
        f"{name} ({run.others_cpu:.0%})"
        for name, run in results.workloads.items()
        if run.others_cpu is not None and run.others_cpu > DISTURBED
    ]
    if not disturbed:
        return None
    return (
        f"Warning: other processes used more than {DISTURBED:.0%} of the machine's CPU "
        f"during {', '.join(disturbed)}; those figures may be disturbed."
    )


def format_report(results: Results) -> str:
    """Every table, the targets and the comparison with the first round, as text."""
    lines: list[str] = []
    for table in tables(results):
        lines += text(table)
    for workload, reason in results.skipped.items():
        lines.append(f"{workload}: skipped ({reason})")
    if results.redis is not None and results.redis.notifications:
        lines += ["", CLOCK_NOTE]
    if results.cluster is not None:
        lines += ["", cores_note(results)]
    if results.regressions:
        lines += text(regression_table(results))
    if results.workloads:
        lines += text(run_table(results))
    lines += text(target_table(results), first_column_right=False)
    note = disturbance_note(results)
    if note is not None:
        lines += ["", note]
    return "\n".join(lines)


def cores_note(results: Results) -> str:
    """What a cluster on this machine can show (its cores in the sentence)."""
    masters = results.cluster.masters if results.cluster is not None else 3
    return CORES_NOTE.format(cores=results.machine["usable_cores"], masters=masters)


def text(table: Table, *, first_column_right: bool = False) -> list[str]:
    """The table as aligned text lines (first column left, the others right)."""
    cells = [table.header, *table.rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(table.header))]
    lines = ["", table.title]
    for row in cells:
        first = f"  {row[0]:>{widths[0]}}" if first_column_right else f"  {row[0]:<{widths[0]}}"
        rest = [f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:], strict=True)]
        if table.title == "Targets":  # long text columns read better left-aligned
            rest = [f"{cell:<{width}}" for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return lines


def markdown(table: Table) -> list[str]:
    """The table in Markdown, with its title in bold above it."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    aligned = ["---"] + ["---:" for _ in table.header[1:]]
    if table.title == "Targets":
        aligned = ["---" for _ in table.header]
    return [
        f"**{table.title}**",
        "",
        line(table.header),
        line(aligned),
        *(line(row) for row in table.rows),
        "",
    ]


# -- in process ------------------------------------------------------------------------


def _import_tables(results: Results) -> Iterator[Table]:
    imported = results.import_time
    if imported is not None:
        yield Table(
            "import, in a fresh interpreter: ms (python -X importtime)",
            ["system", "median", "best", "interpreters"],
            [
                [
                    system,
                    number(imported.median(system)),
                    number(imported.best(system)),
                    str(len(samples)),
                ]
                for system, samples in imported.samples_ms.items()
            ],
        )


def _memory_tables(results: Results) -> Iterator[Table]:
    for workload in [name for name in TITLES if name in results.sized]:
        costs = results.sized[workload]
        sizes = sorted({size for by_size in costs.values() for size in by_size})
        yield Table(
            f"In process, {TITLES[workload]}: µs/op (median)",
            ["system", *(f"N={size_label(n)}" for n in sizes)],
            [[system] + [number(costs[system][size]) for size in sizes] for system in costs],
        )
    if results.purge_us:
        purge = results.purge_us
        yield Table(
            "In process, purge_expired(): µs per expired entry (median)",
            ["system", *(f"N={size_label(size)}" for size in sorted(purge))],
            [["sharedctx", *(number(purge[size]) for size in sorted(purge))]],
        )
    if results.subscriptions:
        variants = list(results.subscriptions["sharedctx"])
        yield Table(
            "In process, set with non-matching subscriptions: µs/op (x none)",
            ["system", *variants],
            [
                [system]
                + [
                    f"{number(c[variant])} ({number(c[variant] / c['none'])}x)"
                    for variant in variants
                ]
                for system, c in results.subscriptions.items()
            ],
        )
    if results.memory_bytes:
        yield Table(
            f"In process, bytes per entry at N={size_label(results.memory_entries)} (tracemalloc)",
            ["system", "bytes"],
            [[system, f"{size:,.0f}"] for system, size in results.memory_bytes.items()],
        )
    if results.expiry is not None:
        expiry = results.expiry
        late = expiry.lateness_ms
        header = ["keys", "events", "min", "p50", "p99", "max"]
        yield Table(
            "In process, expire events: ms after the deadline",
            header,
            [
                [f"{expiry.keys:,}", f"{expiry.received:,}"]
                + [number(late[name]) if name in late else "-" for name in header[2:]]
            ],
        )
    if results.threads_ops_per_s:
        yield _ops_table(
            "In process, threads: ops/s (get+set)", results.threads_ops_per_s, "threads"
        )


def _ops_table(title: str, ops: dict[str, dict[int, float]], unit: str) -> Table:
    counts = sorted({count for by_count in ops.values() for count in by_count})
    header = ["system", *(f"{unit}={count}" for count in counts)]
    return Table(
        title,
        header,
        [
            [system, *(f"{by_count[count]:,.0f}" for count in counts)]
            for system, by_count in ops.items()
        ],
    )


# -- Redis -----------------------------------------------------------------------------


def _latency_header(counted: str) -> list[str]:
    return ["p50", "p90", "p99", "max", "mean", counted]


def _latency_row(label: str, latency: Latency) -> list[str]:
    return [
        label,
        *(number(getattr(latency, name)) for name in ("p50", "p90", "p99", "max", "mean")),
        f"{latency.count:,}",
    ]


def _history_tables(results: Results) -> Iterator[Table]:
    history = results.history
    if history is None:
        return
    base = {"set, history on": "set, history off", "get at a revision": "get", "history": "get"}
    if history.in_process:
        costs = history.in_process
        yield Table(
            "History, in process (1,000 keys, 8 past versions each): µs/op (median)",
            ["case", "µs/op", "x base"],
            [
                [
                    case,
                    number(cost),
                    f"{number(cost / costs[base[case]])}x ({base[case]})" if case in base else "",
                ]
                for case, cost in costs.items()
            ],
        )
    if history.redis:
        calls = history.redis
        yield Table(
            "History on Redis (1,000 keys, 8 past versions each): µs per call",
            ["case", *_latency_header("calls"), "p50 x base"],
            [
                [
                    *_latency_row(case, latency),
                    f"{number(latency.p50 / calls[base[case]].p50)}x" if case in base else "",
                ]
                for case, latency in calls.items()
            ],
        )


def _redis_tables(results: Results) -> Iterator[Table]:
    redis = results.redis
    if redis is None:
        return
    if redis.latency:
        rows = []
        for operation, systems in redis.latency.items():
            server = redis.server_us.get(operation, {})
            for system, latency in systems.items():
                label = f"{operation}: {system}"
                if system == "redis-py":
                    label += f" {OPERATIONS[operation]}"
                rows.append(
                    [
                        *_latency_row(label, latency),
                        number(server[system]) if system in server else "-",
                        number(latency.p50 / systems["redis-py"].p50) + "x",
                    ]
                )
        yield Table(
            f"Redis {redis.server} on loopback: µs per call",
            ["operation: system", *_latency_header("calls"), "server µs", "p50 / redis-py"],
            rows,
        )
    if redis.notifications:
        raw = redis.notifications.get("redis-py")
        rows = []
        for how, latency in redis.notifications.items():
            losses = redis.notification_losses.get(how, {})
            rows.append(
                [
                    *_latency_row(NOTIFIED_BY[how], latency),
                    f"{losses.get('lost', 0)}/{losses.get('discarded', 0)}",
                    f"{number(latency.p50 / raw.p50)}x" if raw is not None else "-",
                ]
            )
        header = ["process A -> process B", *_latency_header("samples"), "lost/discarded"]
        header.append("p50 / raw")
        yield Table("Notifications across processes: µs one way", header, rows)
    if redis.processes_ops_per_s:
        yield _ops_table(
            "Redis ops/s (get+set), client processes, each on its own session or keys",
            redis.processes_ops_per_s,
            "processes",
        )
    if redis.threads_ops_per_s:
        yield _ops_table(
            "Redis ops/s (get+set), client threads of one process",
            redis.threads_ops_per_s,
            "threads",
        )


# -- cluster ---------------------------------------------------------------------------


def _cluster_tables(results: Results) -> Iterator[Table]:
    cluster = results.cluster
    if cluster is not None:
        rows = [
            [
                *_latency_row(f"{operation} {system}", latency),
                number(latency.p50 / systems["one node"].p50) + "x",
            ]
            for operation, systems in cluster.latency.items()
            for system, latency in systems.items()
        ]
        yield Table(
            f"Redis Cluster ({cluster.masters} masters) vs one node: µs per call",
            ["operation, where", *_latency_header("calls"), "p50 / one node"],
            rows,
        )
        if cluster.ops_per_s:
            calls = sum(cluster.calls_per_master) or 1
            yield Table(
                f"{cluster.sessions} sessions, {cluster.clients} client processes: ops/s (get+set)",
                ["where", "ops/s", "sessions per master", "calls per master"],
                [
                    [
                        f"cluster of {cluster.masters} masters",
                        f"{cluster.ops_per_s['cluster']:,.0f}",
                        " / ".join(map(str, cluster.sessions_per_master)),
                        " / ".join(f"{count / calls:.0%}" for count in cluster.calls_per_master),
                    ],
                    [
                        "one node",
                        f"{cluster.ops_per_s['one node']:,.0f}",
                        str(cluster.sessions),
                        "100%",
                    ],
                ],
            )
    failover = results.failover
    if failover is not None:
        rows = []
        for durability, runs in failover.runs.items():
            for index, run in enumerate(runs):
                lag = run.replication_lag_us
                rows.append(
                    [
                        f"{durability} #{index + 1}",
                        str(failover.replicas[durability]),
                        f"{run.acked:,}",
                        str(run.lost),
                        f"{run.writes_per_s:,.0f}",
                        f"{run.failover_s:.1f}",
                        f"{run.stalled_s:.1f}",
                        number(statistics.median(lag)) if lag else "-",
                        number(max(lag)) if lag else "-",
                    ]
                )
        yield Table(
            "Failover: the session's master SIGKILLed under a writer",
            [
                "durability, run",
                "replicas",
                "acked",
                "lost",
                "writes/s",
                "failover s",
                "stalled s",
                "lag p50 µs",
                "lag max µs",
            ],
            rows,
        )
    load = results.load
    if load is not None:
        yield Table(
            "What one session costs the server",
            ["session", "changes", "script calls", "server ms", "bytes", "wall s"],
            [
                [
                    "demo pipeline (--pace 0, 3 workers)",
                    str(load.demo_changes),
                    str(load.demo_calls),
                    number(load.demo_server_ms),
                    f"{load.demo_bytes:,}",
                    number(load.demo_seconds),
                ],
                [
                    f"idle, open (per second; {load.idle_sessions} sessions)",
                    "0",
                    number(load.idle_calls_per_session_s),
                    number(load.idle_calls_per_session_s * load.idle_server_us_per_call / 1000),
                    "-",
                    "1",
                ],
            ],
        )


def _web_tables(results: Results) -> Iterator[Table]:
    web = results.web
    if web is None:
        return
    yield Table(
        f"The web view: a session of {web.entries:,} entries, time to first render in "
        "headless chromium (ms, from navigation)",
        ["backend", "median", "min", "max", "loads"],
        [
            [
                backend,
                number(statistics.median(times)),
                number(min(times)),
                number(max(times)),
                str(len(times)),
            ]
            for backend, times in web.first_render_ms.items()
        ],
    )
    yield Table(
        f"The web view: {web.rate} writes/s for {web.seconds:g} s from writer processes "
        "(Redis): lag from write to DOM (ms), and the server's CPU",
        ["pages open", "p50", "p90", "p99", "max", "writes shown", "server CPU", "CPU / page"],
        [
            [
                str(pages),
                *(
                    ["-"] * 5
                    if pages not in web.lag
                    else [
                        number(web.lag[pages].p50 / 1000),
                        number(web.lag[pages].p90 / 1000),
                        number(web.lag[pages].p99 / 1000),
                        number(web.lag[pages].max / 1000),
                        f"{web.shown[pages]:.1%}",
                    ]
                ),
                f"{cpu:.1%}",
                "-" if not pages else f"{web.cpu_per_page(pages):.1%}",
            ]
            for pages, cpu in web.server_cpu.items()
        ],
    )
