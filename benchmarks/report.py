"""The results of a run, the issue's targets judged on them, and their three outputs:
a text report, ``results.json`` and a log-log chart (``benchmark.png``).

Every ratio is computed from this run's medians; nothing here knows a result in
advance. Two targets are stated loosely in the issue and made precise here:
"flat" means the cost at the largest size is at most ``FLAT`` times the cost at the
smallest, and "O(expired log n)" means the purge cost per expired entry grows from
the smallest to the largest size by at most ``LOG_SLACK`` times as much as log n.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from redis_workloads import BATCH, RedisResults
from workloads import MATCHES, PATTERN, SUBSCRIPTIONS, SYSTEMS, TAG, THREAD_COUNTS, ExpiryResults

__all__ = [
    "Results",
    "Target",
    "draw_chart",
    "format_machine",
    "format_report",
    "targets",
    "write_json",
]

TARGET_SIZE = 100_000
"""The size of the get and set targets."""
FLAT = 2.0
LOG_SLACK = 2.0
LATENESS_MS = 100.0

_TITLES = {
    "get": "get (hit)",
    "set": "set (existing key)",
    "find_by_pattern": f"find_by_pattern({PATTERN!r}), {MATCHES} results",
    "find_by_tag": f"find_by_tag({TAG!r}), {MATCHES} results",
}


@dataclass
class Results:
    """Everything one run measured; what was not run stays empty."""

    machine: dict[str, str | int]
    config: dict[str, object]
    sized: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    """Workload -> system -> entries -> median µs/op."""
    purge_us: dict[int, float] = field(default_factory=dict)
    """Entries -> median µs per expired entry of ``purge_expired()``."""
    subscriptions: dict[str, dict[str, float]] = field(default_factory=dict)
    """System -> subscriptions -> median µs per ``set``."""
    memory_bytes: dict[str, float] = field(default_factory=dict)
    """System -> bytes per entry, holding ``memory_entries`` entries."""
    memory_entries: int = 0
    expiry: ExpiryResults | None = None
    threads_ops_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    """System -> threads -> operations per second."""
    redis: RedisResults | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """Workload -> why it was not measured."""
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0
    """Wall-clock duration of the run."""


@dataclass(frozen=True)
class Target:
    """One target of the issue, judged on this run."""

    goal: str
    measured: str
    status: str
    """``PASS``, ``MISS`` or ``skipped``."""


def _judge(goal: str, value: float, limit: float, *, at_least: bool = False) -> Target:
    met = value >= limit if at_least else value <= limit
    return Target(goal, f"{_number(value)}x", "PASS" if met else "MISS")


def targets(results: Results) -> list[Target]:
    """The issue's targets that this run has the numbers for."""
    found = [*_store_targets(results), *_query_targets(results), *_other_targets(results)]
    return found + _redis_targets(results)


def _store_targets(results: Results) -> Iterable[Target]:
    for workload in ("get", "set"):
        costs = results.sized.get(workload, {})
        if TARGET_SIZE not in costs.get("sharedctx", {}):
            continue
        mine = costs["sharedctx"][TARGET_SIZE]
        where = f"{_TITLES[workload]}, N={_size(TARGET_SIZE)}"
        ttl_cache = costs["cachetools+lock"][TARGET_SIZE]
        yield _judge(f"{where}: sharedctx / cachetools+lock <= 1", mine / ttl_cache, 1.0)
        locked = costs["dict+lock"][TARGET_SIZE]
        yield _judge(f"{where} (stretch): sharedctx / dict+lock <= 3", mine / locked, 3.0)


def _query_targets(results: Results) -> Iterable[Target]:
    for workload in ("find_by_pattern", "find_by_tag"):
        costs = results.sized.get(workload, {})
        mine = costs.get("sharedctx", {})
        if not mine:
            continue
        small, large = min(mine), max(mine)
        speedup = costs["reference"][large] / mine[large]
        yield _judge(
            f"{workload}, N={_size(large)}: reference / sharedctx >= 1000",
            speedup,
            1000,
            at_least=True,
        )
        yield _judge(
            f"{workload} flat: sharedctx N={_size(large)} / N={_size(small)} <= {FLAT:g}",
            mine[large] / mine[small],
            FLAT,
        )


def _other_targets(results: Results) -> Iterable[Target]:
    prefixed = f"{SUBSCRIPTIONS} prefixed"
    if results.subscriptions:
        mine = results.subscriptions["sharedctx"]
        yield _judge(
            f"set with {prefixed} non-matching subscriptions / with none <= 2",
            mine[prefixed] / mine["none"],
            2.0,
        )
    if results.memory_bytes:
        memory = results.memory_bytes
        yield _judge(
            "bytes per entry: sharedctx / reference <= 2",
            memory["sharedctx"] / memory["reference"],
            2,
        )
    if results.expiry is not None:
        expiry = results.expiry
        latest = expiry.lateness_ms.get("max", math.inf)
        met = expiry.received == expiry.keys and latest <= LATENESS_MS
        yield Target(
            f"expiry of {expiry.keys:,} keys in 1 s: every event <= {LATENESS_MS:g} ms late",
            f"max {_number(latest)} ms, {expiry.received:,}/{expiry.keys:,} events",
            "PASS" if met else "MISS",
        )
    if len(results.purge_us) > 1:
        purge = results.purge_us
        small, large = min(purge), max(purge)
        limit = LOG_SLACK * math.log(large) / math.log(small)
        yield _judge(
            f"purge per expired entry, N={_size(small)} -> {_size(large)}: growth <= "
            f"{LOG_SLACK:g} x log-n growth (= {limit:.2g})",
            purge[large] / purge[small],
            limit,
        )
    if results.threads_ops_per_s:
        ops = results.threads_ops_per_s["sharedctx"]
        few, many = THREAD_COUNTS[0], THREAD_COUNTS[-1]
        yield _judge(
            f"ops/s: sharedctx {many} threads / {few} thread >= 1",
            ops[many] / ops[few],
            1.0,
            at_least=True,
        )


def _redis_targets(results: Results) -> list[Target]:
    if results.redis is None and "redis" not in results.skipped:
        return []  # not selected
    latency = {} if results.redis is None else results.redis.latency_us
    batch = f"set {BATCH} keys"
    goals = [
        ("get", "sharedctx", "redis-py", "Redis get: sharedctx / redis-py GET <= 1.5"),
        ("set", "sharedctx", "redis-py", "Redis set: sharedctx / redis-py SET <= 1.5"),
        (
            batch,
            "sharedctx set_multiple",
            "redis-py MULTI/EXEC",
            f"Redis set_multiple({BATCH}), one round trip: sharedctx / redis-py MULTI/EXEC <= 1.5",
        ),
    ]
    found = []
    for operation, mine, baseline, goal in goals:
        costs = latency.get(operation, {})
        if mine in costs:
            found.append(_judge(goal, costs[mine] / costs[baseline], 1.5))
        else:
            found.append(Target(goal, "-", "skipped"))
    return found


# -- text ------------------------------------------------------------------------------


def format_machine(machine: dict[str, str | int]) -> str:
    """One line naming the machine."""
    return (
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['python']} (GIL {machine['gil']}), {machine['platform']}, "
        f"sharedctx {machine['sharedctx']}"
    )


def format_report(results: Results) -> str:
    """The tables of medians and the targets, as text."""
    lines: list[str] = []
    for workload in [name for name in _TITLES if name in results.sized]:
        costs = results.sized[workload]
        sizes = sorted({size for by_size in costs.values() for size in by_size})
        rows = [[system] + [_number(costs[system][size]) for size in sizes] for system in costs]
        lines += _table(f"{_TITLES[workload]}: µs/op", [f"N={_size(n)}" for n in sizes], rows)
    if results.purge_us:
        purge = results.purge_us
        row = ["sharedctx"] + [_number(purge[size]) for size in sorted(purge)]
        header = [f"N={_size(size)}" for size in sorted(purge)]
        lines += _table("purge_expired(): µs per expired entry", header, [row])
    if results.subscriptions:
        variants = list(results.subscriptions["sharedctx"])
        rows = [
            [system] + [_with_ratio(costs[variant], costs["none"]) for variant in variants]
            for system, costs in results.subscriptions.items()
        ]
        lines += _table("set with non-matching subscriptions: µs/op (x none)", variants, rows)
    if results.memory_bytes:
        rows = [[system, f"{size:,.0f}"] for system, size in results.memory_bytes.items()]
        title = f"memory: bytes per entry, N={_size(results.memory_entries)}"
        lines += _table(f"{title} (tracemalloc)", ["bytes"], rows)
    if results.expiry is not None:
        lines += _expiry_table(results.expiry)
    if results.threads_ops_per_s:
        lines += _ops_table("threads: ops/s (get+set)", results.threads_ops_per_s, "threads")
    if results.redis is not None:
        lines += _redis_tables(results.redis)
    for workload, reason in results.skipped.items():
        lines.append(f"{workload}: skipped ({reason})")
    lines += ["", "Targets (ratios of this run's medians)"]
    width = max((len(target.goal) for target in results.targets), default=0)
    for target in results.targets:
        lines.append(f"  {target.status:<7} {target.goal:<{width}}  {target.measured}")
    return "\n".join(lines)


def _expiry_table(expiry: ExpiryResults) -> list[str]:
    lateness = expiry.lateness_ms
    header = ["events", "min", "p50", "p99", "max"]
    row = [f"{expiry.keys:,} keys", f"{expiry.received:,}"]
    row += [_number(lateness[name]) if name in lateness else "-" for name in header[1:]]
    return _table("expire events: ms after the deadline", header, [row])


def _ops_table(title: str, ops: dict[str, dict[int, float]], unit: str) -> list[str]:
    counts = sorted({count for by_count in ops.values() for count in by_count})
    header = [f"{unit}={count}" for count in counts] + [f"{counts[-1]} / {counts[0]}"]
    rows = [
        [system]
        + [f"{by_count[count]:,.0f}" for count in counts]
        + [f"{_number(by_count[counts[-1]] / by_count[counts[0]])}x"]
        for system, by_count in ops.items()
    ]
    return _table(title, header, rows)


def _redis_tables(redis: RedisResults) -> list[str]:
    lines = ["", f"Redis {redis.server} on loopback"]
    if redis.backend_error is not None:
        lines.append("sharedctx Redis backend not available: skipped")
    for operation, costs in redis.latency_us.items():
        rows = [[system, _number(cost)] for system, cost in costs.items()]
        lines += _table(f"Redis {operation}: µs per call", ["µs"], rows)
    if redis.ops_per_s:
        lines += _ops_table("Redis clients: ops/s (get+set)", redis.ops_per_s, "clients")
    return lines


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    cells = [["", *header], *rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    lines = ["", title]
    for row in cells:
        first = f"  {row[0]:<{widths[0]}}"
        lines.append(
            first + "".join(f"  {cell:>{w}}" for cell, w in zip(row[1:], widths[1:], strict=True))
        )
    return lines


def _with_ratio(cost: float, baseline: float) -> str:
    return f"{_number(cost)} ({_number(cost / baseline)}x)"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _size(size: int) -> str:
    exponent = round(math.log10(size))
    return f"1e{exponent}" if 10**exponent == size else f"{size:,}"


# -- files -----------------------------------------------------------------------------


def write_json(results: Results, path: Path) -> None:
    """All medians, ratios, the machine and the settings, as JSON."""
    path.write_text(json.dumps(asdict(results), indent=2) + "\n")


def draw_chart(results: Results, path: Path) -> bool:
    """Cost versus entries, log-log, one panel per sized workload and one line per
    system; False (and no file) if nothing was measured by size."""
    panels = {
        title + ": µs/op": results.sized[name]
        for name, title in _TITLES.items()
        if name in results.sized
    }
    if len(results.purge_us) > 1:
        panels["purge_expired(): µs per expired entry"] = {"sharedctx": results.purge_us}
    if not panels:
        return False
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.2 * columns, 4.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    colors = {system: f"C{index}" for index, system in enumerate(SYSTEMS)}
    for (title, costs), ax in zip(panels.items(), axes, strict=False):
        for system, by_size in costs.items():
            sizes = sorted(by_size)
            medians = [by_size[size] for size in sizes]
            ax.plot(sizes, medians, marker="o", label=system, color=colors[system])
        ax.set(xscale="log", yscale="log", xlabel="entries", ylabel="µs", title=title)
        _label_plainly(ax)
        ax.title.set_fontsize(9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:  # the grid's cells left over
        ax.set_visible(False)
    machine = results.machine
    figure.suptitle(f"sharedctx benchmarks: {machine['cpu']}, {machine['python']}", fontsize=10)
    figure.savefig(path, dpi=110)
    return True


def _label_plainly(ax: Axes) -> None:
    """Label a log y axis with plain numbers (0.5, not 5 x 10^-1); on an axis of less
    than two decades also label some minor ticks (2, 5), which may be the only ones."""

    def minor(value: float, _: int) -> str:
        low, high = ax.get_ylim()
        mantissa = round(value / 10 ** math.floor(math.log10(value)))
        shown = high < 10 * low or (high < 100 * low and mantissa in (2, 5))
        return f"{value:g}" if shown else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
