"""Everything one run measured, and the targets judged on it: the shape of ``results.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
from cluster_workloads import ClusterResults, FailoverResults
from history_workloads import HistoryResults
from import_time import ImportResults
from load_workloads import LoadResults
from peer_workloads import PeerResults
from redis_workloads import RedisResults
from sealed_workloads import SealedResults
from telemetry_workloads import TelemetryResults
from web_workloads import WebResults
from workloads import ExpiryResults

__all__ = ["Regression", "Results", "Target", "WorkloadRun", "read_json", "write_json"]


@dataclass(frozen=True)
class Target:
    """One target of an issue, judged on this run."""

    issue: str
    """Which issue set it (``round 1``, ``Performance 2``, ``Redis Cluster``)."""
    goal: str
    measured: str
    status: str
    """``met``, ``missed``, ``reported`` (a measurement with no goal) or ``skipped``."""


@dataclass(frozen=True)
class Regression:
    """One figure of the first round's run, then and now, on the same scale."""

    figure: str
    scale: str
    """What the figure is relative to (a same-run baseline, or absolute units)."""
    round1: float
    now: float
    higher_is_better: bool
    tolerance: float | None
    """Relative change allowed for noise before it counts as slower; None: shown but
    not judged (no tolerance would separate a change from this figure's noise)."""

    @property
    def change(self) -> float:
        """How much slower now (0.1: 10% slower; negative: faster)."""
        if self.higher_is_better:
            return self.round1 / self.now - 1
        return self.now / self.round1 - 1

    @property
    def slower(self) -> bool:
        return self.tolerance is not None and self.change > self.tolerance


@dataclass(frozen=True)
class WorkloadRun:
    """One workload's run: its duration, and the machine's CPU that others took."""

    seconds: float
    """Wall-clock duration (servers started included)."""
    others_cpu: float | None
    """Share of all cores used by processes outside this run (None: not known)."""
    steal_cpu: float | None
    """Share of all cores taken by the hypervisor (None: not known)."""


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
    cluster: ClusterResults | None = None
    failover: FailoverResults | None = None
    load: LoadResults | None = None
    sealed: SealedResults | None = None
    """Sealed against plain ``get`` and ``set``, and the CPU of a seal and an open."""
    web: WebResults | None = None
    import_time: ImportResults | None = None
    """Milliseconds of ``import sharedctx`` and of the reference's, per fresh interpreter."""
    telemetry: TelemetryResults | None = None
    history: HistoryResults | None = None
    """Writes with history on and off, and reads at a revision (in process, Redis)."""
    peers: PeerResults | None = None
    """sharedctx's LangGraph store against InMemoryStore and PostgresStore."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Workload -> why it was not measured."""
    targets: list[Target] = field(default_factory=list)
    regressions: list[Regression] = field(default_factory=list)
    round1_source: str = ""
    """Where the first round's figures of ``regressions`` come from."""
    seconds: float = 0.0
    """Wall-clock duration of the run."""
    workloads: dict[str, WorkloadRun] = field(default_factory=dict)
    """How long each workload took, and who else used the machine meanwhile."""


def write_json(results: Results, path: Path) -> None:
    """Everything measured (percentiles and histograms included), the machine, the
    settings, the targets and the comparison with the first round, as JSON."""
    data = asdict(results)
    data["regressions"] = [
        {**asdict(regression), "change": regression.change, "slower": regression.slower}
        for regression in results.regressions
    ]
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Results:
    """The :class:`Results` that :func:`write_json` wrote (the keys of JSON objects,
    strings there, become the numbers they were; computed fields are dropped)."""
    return msgspec.convert(json.loads(path.read_text()), Results, strict=False)
