"""Smoke tests of the Redis Cluster test fixtures (tests/_cluster.py), on real servers.

They prove the fixtures, not sharedctx: the cluster serves redis-py's cluster client,
spreads hash-tagged keys over every master, moves a slot under the client's feet, and
survives the loss of a master.
"""

from __future__ import annotations

import pytest
from redis.exceptions import AskError, MovedError

from .._cluster import LocalCluster, MigrationStep, PrivateClusterFactory, executables

pytestmark = pytest.mark.cluster


def test_the_cluster_serves_reads_and_writes(redis_cluster: LocalCluster) -> None:
    assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")
    assert len(redis_cluster.startup_nodes) == 6
    masters = redis_cluster.masters()
    assert len(masters) == 3
    assert all(len(redis_cluster.replicas_of(master)) == 1 for master in masters)
    with redis_cluster.client(decode_responses=True) as client:
        assert client.set("smoke:greeting", "hello")
        assert client.get("smoke:greeting") == "hello"
        assert client.incr("smoke:counter") >= 1
        assert client.delete("smoke:greeting") == 1


def test_hash_tagged_keys_spread_over_every_master(redis_cluster: LocalCluster) -> None:
    keys = [f"{{s{i}}}:x" for i in range(300)]
    owners = redis_cluster.slot_owners()
    with redis_cluster.client(decode_responses=True) as client:
        for key in keys:
            client.set(key, key)
        holders = {owners[redis_cluster.slot_of(key)].port for key in keys}
        assert holders == {master.port for master in redis_cluster.masters()}
        for key in keys[::25]:  # each key is on the node the helper says, and only there
            node = redis_cluster.node_for_key(key)
            assert redis_cluster.admin(node).get(key) == key
        assert client.delete(*keys[:1]) == 1
        for key in keys[1:]:
            client.delete(key)


def test_a_slot_migration_moves_keys_the_client_follows(redis_cluster: LocalCluster) -> None:
    keys = [f"{{migrating}}:{i}" for i in range(25)]
    slot = redis_cluster.slot_of(keys[0])
    source = redis_cluster.node_for_slot(slot)
    target = next(master for master in redis_cluster.masters() if master is not source)
    steps: list[int] = []
    with redis_cluster.client(decode_responses=True) as client:
        for key in keys:
            client.set(key, key)

        def half_migrated(step: MigrationStep) -> None:
            steps.append(step.batch)
            if step.moved:  # the source now answers ASK for a moved key; the client follows
                with pytest.raises(AskError):
                    redis_cluster.admin(source).get(step.moved[0])
            assert [client.get(key) for key in keys] == keys
            assert client.set(f"{{migrating}}:new-{step.batch}", "new")  # ASK: on the target

        moved = redis_cluster.migrate_slot(slot, target, keys_batch=10, between_steps=half_migrated)

        assert steps == [0, 1, 2, 3]
        assert moved == len(keys)  # the keys created meanwhile went to the target (ASK)
        assert redis_cluster.node_for_slot(slot) is target
        with pytest.raises(MovedError):
            redis_cluster.admin(source).get(keys[0])
        assert redis_cluster.admin(target).get(keys[0]) == keys[0]
        assert [client.get(key) for key in keys] == keys  # MOVED, followed
        assert client.get("{migrating}:new-3") == "new"
        client.delete(*keys)


@pytest.mark.slow
def test_a_failover_promotes_a_replica_and_the_client_works_again(
    private_cluster: PrivateClusterFactory,
) -> None:
    cluster = private_cluster(masters=3, replicas=2)
    key = "{failover}:value"
    slot = cluster.slot_of(key)
    master = cluster.node_for_slot(slot)
    replicas = cluster.replicas_of(master)
    assert len(replicas) == 2
    with cluster.client(decode_responses=True) as client:
        # Write on the master and WAIT on the same connection: both replicas have it.
        with cluster.admin(master).pipeline(transaction=False) as pipe:
            pipe.set(key, "before")
            pipe.wait(2, 5000)
            assert pipe.execute() == [True, 2]
        assert client.get(key) == "before"

        assert cluster.kill_master_of_slot(slot) is master
        promoted = cluster.wait_for_failover(slot, timeout=60)

        assert promoted in replicas
        assert cluster.replicas_of(promoted) == [r for r in replicas if r is not promoted]
        assert client.get(key) == "before"  # the stale route fails, the client reinitializes
        assert client.set(key, "after")
        assert cluster.admin(promoted).get(key) == "after"


def test_a_failed_start_leaves_no_process_behind() -> None:
    server, cli = executables()
    cluster = LocalCluster(3, 0, server=server, cli=cli, extra_options=["--no-such-option", "1"])
    with pytest.raises(RuntimeError, match="no-such-option"):
        cluster.start()
    assert cluster.nodes
    assert not any(node.running for node in cluster.nodes)
    assert cluster.directory is not None
    assert not cluster.directory.exists()
