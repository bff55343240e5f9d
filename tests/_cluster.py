"""A real Redis Cluster on loopback for the tests: `LocalCluster` and its pytest fixtures.

Every node is a ``redis-server`` started by this module on a free loopback port (never
6379; below 55536 so that the cluster bus port, port + 10000, is valid and free too),
without persistence, in a temporary directory that is removed when the cluster stops.
The cluster is formed by ``redis-cli --cluster create`` and `LocalCluster.start` returns
only once every node agrees on the whole topology, every slot is served and every
replica is in sync with its master.

The helper also drives the failures a cluster backend must survive: killing or pausing a
node, waiting for a replica to be promoted, and moving a slot by hand (the real
``SETSLOT IMPORTING/MIGRATING``, ``GETKEYSINSLOT`` + ``MIGRATE``, ``SETSLOT NODE``
procedure) with a hook between the batches, while the slot is half-migrated.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

HOST = "127.0.0.1"
SLOTS = 16384
BUS_PORT_OFFSET = 10000
FORMATION_NODE_TIMEOUT_MS = 1000
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# --- processes and ports ------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """One redis-server of a `LocalCluster`: its address, directory and process."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""  # the cluster's name for it (CLUSTER MYID), known once started
    paused: bool = False

    host = HOST

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """The process is alive (it may be paused)."""
        return self.process is not None and self.process.poll() is None

    @property
    def serving(self) -> bool:
        """The process is alive and not paused: it answers."""
        return self.running and not self.paused

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def __repr__(self) -> str:
        state = "paused" if self.paused else "up" if self.running else "down"
        return f"<Node {self.name} {self.node_id[:8] or '?'} {state}>"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        candidates = {port, port + BUS_PORT_OFFSET}
        if (
            port + BUS_PORT_OFFSET < 65536
            and port not in (6379, 16379)
            and not candidates & taken
            and _port_free(port + BUS_PORT_OFFSET)
        ):
            taken.update(candidates)
            return port
    raise RuntimeError("found no free loopback port pair for a cluster node")


def executables() -> tuple[str, str]:
    """The paths of redis-server and redis-cli, or skip (fail under CI=true) without them."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        message = (
            "redis-server/redis-cli are not installed: the Redis Cluster tests cannot run "
            "(`make test` installs them with apt-get where it can)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(f"\n{'!' * 70}\n{message}\n{'!' * 70}")
    return server, cli


# Clusters not stopped yet: killed at interpreter exit whatever happened to the test run.
_RUNNING: set[LocalCluster] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_leftover_clusters() -> None:
    with _RUNNING_LOCK:
        leftovers = list(_RUNNING)
    for cluster in leftovers:
        cluster.stop()


# --- views of the cluster ------------------------------------------------------------------


@dataclass(frozen=True)
class NodeEntry:
    """One line of CLUSTER NODES: how one node sees another (or itself)."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    config_epoch: int
    slots: frozenset[int]
    open_slots: tuple[str, ...]  # "[slot->-id]" and "[slot-<-id]" markers of its own

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_cluster_nodes(text: str) -> dict[str, NodeEntry]:
    """Parse the reply of CLUSTER NODES into entries by node id."""
    entries: dict[str, NodeEntry] = {}
    for line in text.strip().splitlines():
        fields = line.split()
        address = fields[1].split("@")[0]
        slots: set[int] = set()
        open_slots: list[str] = []
        for token in fields[8:]:
            if token.startswith("["):
                open_slots.append(token)
            elif "-" in token:
                first, last = token.split("-")
                slots.update(range(int(first), int(last) + 1))
            else:
                slots.add(int(token))
        entries[fields[0]] = NodeEntry(
            node_id=fields[0],
            port=int(address.rsplit(":", 1)[1]) if ":" in address else 0,
            flags=frozenset(fields[2].split(",")),
            master_id=None if fields[3] == "-" else fields[3],
            config_epoch=int(fields[6]),
            slots=frozenset(slots),
            open_slots=tuple(open_slots),
        )
    return entries


def parse_cluster_info(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.strip().splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


@dataclass
class MigrationStep:
    """What `LocalCluster.migrate_slot` passes to its hook: the slot is half-migrated."""

    slot: int
    source: Node
    target: Node
    batch: int  # 0 once IMPORTING/MIGRATING are set, then 1, 2, ... after each MIGRATE
    moved: list[str] = field(default_factory=list)  # the keys of this batch
    total_moved: int = 0


class ClusterNotReady(RuntimeError):
    """The cluster did not reach the awaited state in time."""


class NodeExited(RuntimeError):
    """A redis-server exited instead of answering PING (its output is in the message)."""


# --- the cluster ---------------------------------------------------------------------------


class LocalCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on loopback.

    Use it as a context manager, or call `start` and then `stop` (which always kills
    every process and removes the directories, also after a failed start).
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 2000,
        server: str | None = None,
        cli: str | None = None,
        extra_options: Sequence[str] = (),
        tls: Any = None,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        self.master_count = masters
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.server = server or shutil.which("redis-server") or "redis-server"
        self.cli = cli or shutil.which("redis-cli") or "redis-cli"
        self.extra_options = tuple(extra_options)
        # TLS certificates (tests/backends/redis/_tls.py's TLSFiles): every node then
        # speaks TLS only, to clients and on the cluster bus.
        self.tls = tls
        self.directory: Path | None = None
        self.nodes: list[Node] = []
        self.startup_seconds: float | None = None
        self._admins: dict[int, redis.Redis] = {}

    # lifecycle

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start the nodes, form the cluster, and wait until it is fully usable."""
        if self.nodes:
            raise RuntimeError("this cluster was started already")
        began = time.monotonic()
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        try:
            self.directory = Path(tempfile.mkdtemp(prefix="sharedctx-cluster-"))
            taken: set[int] = set()
            for index in range(self.master_count * (1 + self.replica_count)):
                directory = self.directory / f"node-{index}"
                directory.mkdir()
                self.nodes.append(Node(port=_free_cluster_port(taken), directory=directory))
            # Formed with a short node timeout, since redis-cli and the nodes' gossip wait
            # in steps of it, then given the one asked for (tests that kill nodes want it
            # short; the session's cluster, long enough never to fail over under load).
            formation_timeout_ms = min(self.node_timeout_ms, FORMATION_NODE_TIMEOUT_MS)
            for node in self.nodes:
                self._launch(node, formation_timeout_ms)
            for node in self.nodes:
                for attempt in range(3):  # a port may be taken meanwhile: take another
                    try:
                        self._await_ping(node, began + timeout)
                        break
                    except NodeExited:
                        if attempt == 2:
                            raise
                        node.port = _free_cluster_port(taken)
                        self._launch(node, formation_timeout_ms)
            self._create()
            for node in self.nodes:
                node.node_id = str(self.admin(node).execute_command("CLUSTER", "MYID"))
            self.wait_until_ready(max(1.0, timeout - (time.monotonic() - began)))
            for node in self.nodes:
                self.admin(node).config_set("cluster-node-timeout", self.node_timeout_ms)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Kill every node (SIGKILL: nothing is kept) and remove the directories."""
        for client in self._admins.values():
            client.close()
        self._admins.clear()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()  # also ends a paused (SIGSTOPped) process
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie, at worst
                    node.process.wait(10)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        with _RUNNING_LOCK:
            _RUNNING.discard(self)

    def _launch(self, node: Node, node_timeout_ms: int) -> None:
        """Start (or restart) a node's process; its nodes.conf stays in its directory."""
        node.paused = False
        if self.tls is None:
            ports = ["--port", str(node.port)]
        else:
            ports = [
                "--port", "0", "--tls-port", str(node.port), "--tls-cluster", "yes",
                "--tls-replication", "yes", *self.tls.server_options(),
            ]  # fmt: skip
        command = [
            self.server,
            *ports,
            "--bind", HOST,
            "--protected-mode", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node.directory / "nodes.conf"),
            "--cluster-node-timeout", str(node_timeout_ms),
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
            "--dir", str(node.directory),
            "--logfile", str(node.log),
            *self.extra_options,
        ]  # fmt: skip
        # Until it has read its options (and about a bad one) redis-server writes to stdout.
        with (node.directory / "output.log").open("ab") as output:
            node.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )

    def _await_ping(self, node: Node, deadline: float) -> None:
        assert node.process is not None
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise NodeExited(
                    f"redis-server on port {node.port} exited with status "
                    f"{node.process.returncode}:\n{self._log_tail(node)}"
                )
            try:
                with contextlib.ExitStack() as stack:
                    sock = stack.enter_context(socket.create_connection(node.address, timeout=0.2))
                    if self.tls is not None:
                        context = ssl.create_default_context(cafile=str(self.tls.ca))
                        sock = stack.enter_context(context.wrap_socket(sock, server_hostname=HOST))
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"redis-server on port {node.port} did not answer PING in time")

    def _create(self) -> None:
        result = subprocess.run(
            [
                self.cli, "--cluster", "create",
                *(node.name for node in self.nodes),
                *([] if self.tls is None else ["--tls", "--cacert", str(self.tls.ca)]),
                "--cluster-replicas", str(self.replica_count),
                "--cluster-yes",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )

    @staticmethod
    def _log_tail(node: Node, lines: int = 20) -> str:
        tail: list[str] = []
        for path in (node.directory / "output.log", node.log):
            with contextlib.suppress(OSError):
                tail += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(tail) or "(no output)"

    # addresses and clients

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node, as first started."""
        return [node.address for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://host:port,host:port,...``: the form the cluster backend takes."""
        scheme = "redis+cluster://" if self.tls is None else "rediss+cluster://"
        return scheme + ",".join(node.name for node in self.nodes)

    def admin(self, node: Node) -> redis.Redis:
        """A plain client (str replies) to one node, for administration and inspection."""
        client = self._admins.get(node.port)
        if client is None:
            client = redis.Redis(
                host=node.host,
                port=node.port,
                decode_responses=True,
                socket_timeout=5,
                socket_connect_timeout=1,
                **({} if self.tls is None else {"ssl": True, "ssl_ca_certs": str(self.tls.ca)}),
            )
            self._admins[node.port] = client
        return client

    def _drop_admin(self, node: Node) -> None:
        client = self._admins.pop(node.port, None)
        if client is not None:
            client.close()

    def client(self, **options: Any) -> RedisCluster:
        """A new `redis.cluster.RedisCluster` on this cluster (the caller closes it)."""
        startup = [ClusterNode(host, port) for host, port in self.startup_nodes]
        return RedisCluster(startup_nodes=startup, **options)

    def node(self, port: int) -> Node:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def _node_by_id(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    # topology

    def view(self, node: Node) -> dict[str, NodeEntry]:
        """CLUSTER NODES as seen by ``node``."""
        return parse_cluster_nodes(str(self.admin(node).execute_command("CLUSTER", "NODES")))

    def info(self, node: Node) -> dict[str, str]:
        """CLUSTER INFO of ``node``."""
        return parse_cluster_info(str(self.admin(node).execute_command("CLUSTER", "INFO")))

    def _own_entry(self, node: Node) -> NodeEntry:
        return self.view(node)[node.node_id]

    def masters(self) -> list[Node]:
        """The serving nodes that are masters by their own account (by port)."""
        return [node for node in self.nodes if node.serving and self._own_entry(node).is_master]

    def replicas_of(self, master: Node) -> list[Node]:
        """The serving nodes that replicate ``master`` by their own account."""
        return [
            node
            for node in self.nodes
            if node.serving and self._own_entry(node).master_id == master.node_id
        ]

    @staticmethod
    def slot_of(key: str | bytes) -> int:
        """The hash slot of a key (hash tags included), as redis-py computes it."""
        return key_slot(key.encode() if isinstance(key, str) else key)

    def node_for_slot(self, slot: int) -> Node:
        """The master that owns ``slot``: the claim with the highest config epoch wins."""
        best: NodeEntry | None = None
        for node in self.nodes:
            if not node.serving:
                continue
            for entry in self.view(node).values():
                if slot in entry.slots and (best is None or entry.config_epoch > best.config_epoch):
                    best = entry
        if best is None:
            raise LookupError(f"no serving node knows an owner of slot {slot}")
        return self._node_by_id(best.node_id)

    def slot_owners(self) -> dict[int, Node]:
        """Every slot claimed by a serving master in its own view, with that master."""
        owners: dict[int, Node] = {}
        for node in self.nodes:
            if node.serving:
                owners.update(dict.fromkeys(self._own_entry(node).slots, node))
        return owners

    def node_for_key(self, key: str | bytes) -> Node:
        return self.node_for_slot(self.slot_of(key))

    def problems(self) -> list[str]:
        """Why the cluster is not fully usable now; empty when it is.

        Every serving node must report ``cluster_state:ok`` with all slots ok, know every
        node, and share one view of the serving nodes (roles, masters, slots) in which no
        serving node is failing and every slot is owned by a serving node; every serving
        replica must have its replication link up, to the master its view names. Nodes
        stopped, killed or paused on purpose are not required, only not to own slots.
        """
        problems: list[str] = []
        serving = [node for node in self.nodes if node.serving]
        serving_ids = {node.node_id for node in serving}
        views: dict[int, frozenset[tuple[str, bool, str | None, frozenset[int]]]] = {}
        for node in serving:
            try:
                info = self.info(node)
                view = self.view(node)
                replication = self.admin(node).info("replication")
            except redis.RedisError as error:
                problems.append(f"{node.name}: {error}")
                continue
            if info.get("cluster_state") != "ok":
                problems.append(f"{node.name}: cluster_state:{info.get('cluster_state')}")
            if info.get("cluster_slots_ok") != str(SLOTS):
                problems.append(f"{node.name}: cluster_slots_ok:{info.get('cluster_slots_ok')}")
            if int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                problems.append(f"{node.name}: knows {info.get('cluster_known_nodes')} nodes")
            for entry in view.values():
                if entry.node_id in serving_ids and entry.failing:
                    problems.append(f"{node.name} sees {entry.node_id[:8]} as {entry.flags}")
                if entry.slots and entry.node_id not in serving_ids:
                    problems.append(f"{node.name} has slots on non-serving {entry.node_id[:8]}")
            views[node.port] = frozenset(
                (entry.node_id, entry.is_master, entry.master_id, entry.slots)
                for entry in view.values()
                if entry.node_id in serving_ids
            )
            own = view.get(node.node_id)
            if own is not None and not own.is_master:
                master = self._node_by_id(own.master_id or "")
                if replication.get("role") != "slave":
                    problems.append(f"{node.name}: role {replication.get('role')}")
                elif (link := replication.get("master_link_status")) != "up":
                    problems.append(f"{node.name}: master link {link}")
                elif int(replication.get("master_port", 0)) != master.port:
                    problems.append(f"{node.name}: replicates {replication.get('master_port')}")
        if len(set(views.values())) > 1:
            problems.append("the serving nodes disagree on the topology")
        return problems

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Wait until `problems` is empty (raises `ClusterNotReady` with them if not)."""
        self._wait(self.problems, timeout, "the cluster is not ready")

    @staticmethod
    def _wait(problems: Callable[[], list[str]], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            found = problems()
            if not found:
                return
            if time.monotonic() >= deadline:
                raise ClusterNotReady(f"{what} after {timeout} s:\n  " + "\n  ".join(found))
            time.sleep(0.02)

    # failures

    def kill_node(self, node: Node) -> None:
        """SIGKILL one node (no shutdown, nothing saved)."""
        self._drop_admin(node)
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(10)
        node.paused = False

    def kill_master_of_slot(self, slot: int) -> Node:
        """SIGKILL the master that owns ``slot``; returns it."""
        master = self.node_for_slot(slot)
        self.kill_node(master)
        return master

    def wait_for_failover(self, slot: int, timeout: float = 30.0) -> Node:
        """Wait until a serving node was promoted master of ``slot`` and the cluster is ok.

        "ok" is `problems` being empty for the serving nodes: all agree, all report
        ``cluster_state:ok``, and the other replicas follow the new master.
        """

        def problems() -> list[str]:
            try:
                owner = self.node_for_slot(slot)
            except (LookupError, redis.RedisError) as error:
                return [str(error)]
            if not owner.serving:
                return [f"slot {slot} is still owned by {owner.name}, which is down"]
            return self.problems()

        self._wait(problems, timeout, f"no failover of slot {slot}")
        return self.node_for_slot(slot)

    def stop_node(self, node: Node) -> None:
        """Shut one node down gracefully (SIGTERM; SIGKILL after 10 s)."""
        self._drop_admin(node)
        if node.process is not None and node.process.poll() is None:
            if node.paused:
                node.process.send_signal(signal.SIGCONT)
            node.process.terminate()
            try:
                node.process.wait(10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        node.paused = False

    def restart_node(self, node: Node, timeout: float = 10.0) -> None:
        """Start a stopped or killed node again; it rejoins with its saved nodes.conf."""
        if node.running:
            raise RuntimeError(f"{node.name} is running")
        self._launch(node, self.node_timeout_ms)
        self._await_ping(node, time.monotonic() + timeout)

    def pause_node(self, node: Node) -> None:
        """SIGSTOP one node: it stays connected but answers nothing (until `resume_node`)."""
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"{node.name} is not running")
        node.process.send_signal(signal.SIGSTOP)
        node.paused = True

    def resume_node(self, node: Node) -> None:
        """SIGCONT a node paused by `pause_node`."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)
        node.paused = False

    # resharding

    def migrate_slot(
        self,
        slot: int,
        target: Node,
        *,
        keys_batch: int = 100,
        between_steps: Callable[[MigrationStep], None] | None = None,
        migrate_timeout_ms: int = 5000,
        replace: bool = False,
        timeout: float = 30.0,
    ) -> int:
        """Move ``slot`` to the master ``target`` by hand, as redis-cli's reshard does.

        1. ``CLUSTER SETSLOT slot IMPORTING <source-id>`` on the target, then
           ``CLUSTER SETSLOT slot MIGRATING <target-id>`` on the source;
        2. ``CLUSTER GETKEYSINSLOT slot keys_batch`` on the source and
           ``MIGRATE host port "" 0 migrate_timeout_ms [REPLACE] KEYS k...`` until no key
           is left; ``between_steps`` is called once both states are set (batch 0) and
           after each batch, while the slot is half-migrated;
        3. ``CLUSTER SETSLOT slot NODE <target-id>`` on the target, the source and then
           every other master; then waits until every node agrees (`wait_until_ready`).

        Returns the number of keys moved.
        """
        source = self.node_for_slot(slot)
        if source is target:
            raise ValueError(f"slot {slot} is already on {target.name}")
        if not self._own_entry(target).is_master:
            raise ValueError(f"{target.name} is not a master")
        source_admin, target_admin = self.admin(source), self.admin(target)
        target_admin.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        source_admin.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        step = MigrationStep(slot=slot, source=source, target=target, batch=0)
        if between_steps is not None:
            between_steps(step)
        while True:
            keys: list[str] = source_admin.execute_command(
                "CLUSTER", "GETKEYSINSLOT", slot, keys_batch
            )
            if not keys:
                break
            source_admin.execute_command(
                "MIGRATE", target.host, target.port, "", 0, migrate_timeout_ms,
                *(["REPLACE"] if replace else []),
                "KEYS", *keys,
            )  # fmt: skip
            step = MigrationStep(
                slot=slot,
                source=source,
                target=target,
                batch=step.batch + 1,
                moved=list(keys),
                total_moved=step.total_moved + len(keys),
            )
            if between_steps is not None:
                between_steps(step)
        target_admin.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        source_admin.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        for master in self.masters():
            if master not in (source, target):
                self.admin(master).execute_command(
                    "CLUSTER", "SETSLOT", slot, "NODE", target.node_id
                )
        self._wait(
            lambda: self.problems() + self._slot_disagreements(slot, target),
            timeout,
            f"slot {slot} did not settle on {target.name}",
        )
        return step.total_moved

    def _slot_disagreements(self, slot: int, owner: Node) -> list[str]:
        problems = []
        for node in self.nodes:
            if node.serving:
                view = self.view(node)
                if slot not in view[owner.node_id].slots:
                    problems.append(f"{node.name} does not yet see slot {slot} on {owner.name}")
                if any(entry.open_slots for entry in view.values()):
                    problems.append(f"{node.name} still has open slots")
        return problems


# --- pytest fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """The session's shared cluster: 3 masters with 1 replica each. Do not break it."""
    server, cli = executables()
    with LocalCluster(3, 1, node_timeout_ms=5000, server=server, cli=cli) as cluster:
        yield cluster


PrivateClusterFactory = Callable[..., LocalCluster]


@pytest.fixture
def private_cluster() -> Iterator[PrivateClusterFactory]:
    """Start a cluster of the test's own, to kill, pause or reshard at will.

    ``private_cluster(masters=3, replicas=2, node_timeout_ms=1000)`` starts one and
    returns it once ready; all are stopped when the test ends.
    """
    server, cli = executables()
    clusters: list[LocalCluster] = []

    def start(masters: int = 3, replicas: int = 2, **options: Any) -> LocalCluster:
        options.setdefault("node_timeout_ms", 1000)
        cluster = LocalCluster(masters, replicas, server=server, cli=cli, **options)
        clusters.append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()
