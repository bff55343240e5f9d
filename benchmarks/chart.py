"""The chart of a run (``benchmark.png``): one panel per measurement that has a shape.

- In process: cost against entries, log-log, one line per system (get, set on random
  keys, set on one hot key, the two queries, the sweep).
- Redis: histograms of every call's latency (get and set, sharedctx and redis-py),
  the p50/p90/p99/max of every operation, the notification latency histogram, ops/s
  against client processes.
- Cluster: the call latency histogram against one node, and the replica's lag
  behind its master under a writer (the failover workload's probe).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from harness import Histogram, Latency
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from redis_workloads import NOTIFIED_BY
from report import TITLES
from results import Results
from targets import replication_lag
from workloads import SYSTEMS

__all__ = ["draw_chart"]

Panel = Callable[[Axes], None]


def draw_chart(results: Results, path: Path) -> bool:
    """Draw every panel this run has the numbers for into ``path``; False (and no
    file) if it has none."""
    panels = [*_memory_panels(results), *_redis_panels(results), *_cluster_panels(results)]
    if not panels:
        return False
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.4 * columns, 4.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for panel, ax in zip(panels, axes, strict=False):
        panel(ax)
        ax.title.set_fontsize(9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:  # the grid's cells left over
        ax.set_visible(False)
    machine = results.machine
    figure.suptitle(
        f"sharedctx benchmarks: {machine['cpu']}, {machine['usable_cores']} cores, "
        f"{machine['python']} ({results.config.get('mode', '?')} run)",
        fontsize=10,
    )
    figure.savefig(path, dpi=100)
    return True


# -- in process ------------------------------------------------------------------------

_COLORS = {system: f"C{index}" for index, system in enumerate(SYSTEMS)}


def _memory_panels(results: Results) -> list[Panel]:
    series = {
        f"in process, {title}: µs/op": results.sized[name]
        for name, title in TITLES.items()
        if name in results.sized
    }
    if len(results.purge_us) > 1:
        series["in process, purge_expired(): µs per expired entry"] = {
            "sharedctx": results.purge_us
        }

    def panel(title: str, costs: dict[str, dict[int, float]]) -> Panel:
        def draw(ax: Axes) -> None:
            for system, by_size in costs.items():
                sizes = sorted(by_size)
                ax.plot(
                    sizes,
                    [by_size[size] for size in sizes],
                    marker="o",
                    label=system,
                    color=_COLORS.get(system),
                )
            ax.set(xscale="log", yscale="log", xlabel="entries", ylabel="µs", title=title)
            _label_plainly(ax, "y")

        return draw

    return [panel(title, costs) for title, costs in series.items()]


# -- Redis -----------------------------------------------------------------------------


def _stairs(ax: Axes, histogram: Histogram, label: str, color: str) -> None:
    total = sum(histogram.counts) or 1
    fractions = [count / total for count in histogram.counts]
    ax.stairs(fractions, histogram.edges_us, label=label, color=color)


def _histogram_panel(title: str, series: dict[str, Latency]) -> Panel:
    def draw(ax: Axes) -> None:
        for index, (label, latency) in enumerate(series.items()):
            _stairs(
                ax,
                latency.histogram,
                f"{label}: p50 {_short(latency.p50)}, p99 {_short(latency.p99)}",
                color=f"C{index}",
            )
        ax.set(xscale="log", xlabel="µs (log)", ylabel="fraction of calls", title=title)
        _label_plainly(ax, "x")

    return draw


def _short(microseconds: float) -> str:
    if microseconds >= 1000:
        return f"{microseconds / 1000:.3g} ms"
    return f"{microseconds:.3g} µs"


def _redis_panels(results: Results) -> list[Panel]:
    redis = results.redis
    if redis is None:
        return []
    panels: list[Panel] = []
    calls = {
        f"{operation} {system}": redis.latency[operation][system]
        for operation in ("get", "set")
        if operation in redis.latency
        for system in ("sharedctx", "redis-py")
    }
    if calls:
        panels.append(_histogram_panel("Redis calls: latency histogram", calls))
    if redis.latency:
        panels.append(_percentile_panel(results))
    if redis.notifications:
        panels.append(
            _histogram_panel(
                "notifications, process A -> B: one-way latency",
                {NOTIFIED_BY[how]: latency for how, latency in redis.notifications.items()},
            )
        )
    if redis.processes_ops_per_s:

        def draw(ax: Axes) -> None:
            for system, by_count in redis.processes_ops_per_s.items():
                counts = sorted(by_count)
                ax.plot(counts, [by_count[count] for count in counts], marker="o", label=system)
            ax.set(
                xscale="log",
                xlabel="client processes",
                ylabel="ops/s",
                title="Redis ops/s (get+set) by client processes",
                ylim=(0, None),
            )
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))

        panels.append(draw)
    return panels


def _percentile_panel(results: Results) -> Panel:
    assert results.redis is not None
    latency = results.redis.latency
    markers = {"p50": "o", "p90": "s", "p99": "^", "max": "x"}

    def draw(ax: Axes) -> None:
        operations = list(latency)
        for offset, (system, color) in ((-0.15, ("sharedctx", "C0")), (0.15, ("redis-py", "C1"))):
            for name, marker in markers.items():
                ax.scatter(
                    [index + offset for index in range(len(operations))],
                    [getattr(latency[operation][system], name) for operation in operations],
                    marker=marker,
                    color=color,
                    label=f"{system} {name}",
                    s=18,
                )
        ax.set_xticks(range(len(operations)), operations, rotation=25, fontsize=7, ha="right")
        ax.set(yscale="log", ylabel="µs (log)", title="Redis calls: p50, p90, p99, max")
        _label_plainly(ax, "y")

    return draw


# -- cluster ---------------------------------------------------------------------------


def _cluster_panels(results: Results) -> list[Panel]:
    panels: list[Panel] = []
    cluster = results.cluster
    if cluster is not None and cluster.latency:
        panels.append(
            _histogram_panel(
                f"cluster ({cluster.masters} masters) vs one node: latency",
                {
                    f"{operation} {where}": latency
                    for operation, systems in cluster.latency.items()
                    for where, latency in systems.items()
                },
            )
        )
    failover = results.failover
    runs = [] if failover is None else failover.runs.get("primary", [])
    if any(run.replication_lag_us for run in runs):
        panels.append(
            _histogram_panel(
                "replica lag behind its master, under a writer",
                {"acknowledged SET -> visible on the replica": replication_lag(runs)},
            )
        )
    return panels


def _label_plainly(ax: Axes, which: str) -> None:
    """Label a log axis (``which``: ``"x"`` or ``"y"``) with plain numbers (0.5, not
    5 x 10^-1); on an axis of less than two decades also label some minor ticks (2,
    5), which may be the only ones."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    limits = ax.get_xlim if which == "x" else ax.get_ylim

    def minor(value: float, _: int) -> str:
        low, high = limits()
        mantissa = round(value / 10 ** math.floor(math.log10(value)))
        shown = high < 10 * low or (high < 100 * low and mantissa in (2, 5))
        return f"{value:g}" if shown else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))
