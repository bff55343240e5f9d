"""A Redis ACL user limited to one namespace: ``sharedctx acl NAMESPACE`` prints its
rule, with it the user works on its namespace (sealed or not, on a server and on a
cluster), and on any other namespace it gets one line of ``AccessDeniedError``."""

from __future__ import annotations

import uuid

import pytest
import redis

from sharedctx import AccessDeniedError, KeyRing, RedisBackend, SharedContext

from ..._cluster import LocalCluster
from ...cli._run import one_error_line, sharedctx
from ...conftest import RedisServer

pytestmark = pytest.mark.redis

NAMESPACE = "tenant-a"


def _rule(user: str) -> list[str]:
    """The rule that `sharedctx acl` prints, as arguments (password set to ours)."""
    done = sharedctx("acl", NAMESPACE, "--user", user)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    return [word if not word.startswith(">") else ">secret" for word in words]


def test_acl_prints_a_rule_that_limits_a_user_to_one_namespace() -> None:
    words = _rule("tenant")
    assert words[:3] == ["ACL", "SETUSER", "tenant"]
    assert "reset" in words
    assert "on" in words
    assert ">secret" in words
    assert f"~{NAMESPACE}:*" in words
    assert f"&{NAMESPACE}:*" in words
    assert not [word for word in words if word.startswith(("~*", "&*", "+@", "allkeys"))]
    bad = sharedctx("acl", "no space")
    assert bad.returncode == 2
    assert "namespace" in one_error_line(bad)


def _workload(backend: RedisBackend) -> None:
    """Every kind of call a pipeline makes: reads, writes, a watch, a lease, admin."""
    session = f"acl-{uuid.uuid4().hex[:8]}"
    with (
        SharedContext(session, backend=backend) as ctx,
        SharedContext(session, backend=backend) as other,
    ):
        ctx.set("a", {"n": 1}, tags=["t"])
        assert other.get("a") == {"n": 1}
        assert ctx.get_or_set("lazy", lambda: 2) == 2
        with other.watch("b*") as watch:
            ctx.set("b", 3)
            assert watch.get(timeout=5).key == "b"
        assert ctx.expire("b", 60)
        assert [entry.key for entry in ctx.find_by_tag("t")] == ["a"]
        assert ctx.delete("a")
        if backend.keyring is not None:
            assert ctx.rekey() is False
            assert ctx.rotate_data_key() == 2
            assert backend.rekey_session(session) is False
        assert backend.has_session(session)
        summary = backend.session_summary(session)
        assert summary is not None
        assert summary.entries == 2
    assert backend.drop_session(session)


def _denied_elsewhere(url: str, **options: object) -> None:
    other = RedisBackend(url, namespace="tenant-b", **options)  # type: ignore[arg-type]
    try:
        with pytest.raises(AccessDeniedError) as denied:
            SharedContext("s", backend=other)
        message = str(denied.value)
        assert "\n" not in message
        assert "sharedctx acl" in message
        with pytest.raises(AccessDeniedError):
            other.drop_session("s")
    finally:
        other.close()


@pytest.fixture
def limited_server(private_redis) -> tuple[RedisServer, str]:  # type: ignore[no-untyped-def]
    server = private_redis()
    admin = redis.Redis(port=server.port)
    admin.execute_command(*_rule("tenant"))
    admin.close()
    # The function library is loaded by an admin: the user may not load one.
    with SharedContext("load", backend=RedisBackend(server.url, namespace=NAMESPACE)):
        pass
    return server, f"redis://tenant:secret@127.0.0.1:{server.port}/0"


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_a_limited_user_works_on_its_namespace_and_is_denied_elsewhere(
    limited_server: tuple[RedisServer, str], sealed: bool
) -> None:
    _, url = limited_server
    ring = KeyRing({"k": KeyRing.generate_key()}) if sealed else None
    backend = RedisBackend(url, namespace=NAMESPACE, keyring=ring)
    try:
        _workload(backend)
    finally:
        backend.close()
    _denied_elsewhere(url)


def test_the_cli_gives_a_denied_user_one_line_and_status_2(
    limited_server: tuple[RedisServer, str],
) -> None:
    _, url = limited_server  # the CLI's namespace is "sharedctx": not the user's
    done = sharedctx("inspect", "s", "--backend", url)
    assert done.returncode == 2
    line = one_error_line(done)
    assert "denied" in line
    assert "Traceback" not in done.stderr


@pytest.mark.cluster
def test_a_limited_user_works_on_a_cluster(redis_cluster: LocalCluster) -> None:
    user = f"tenant{uuid.uuid4().hex[:6]}"
    for node in redis_cluster.nodes:  # ACLs are each node's own
        redis_cluster.admin(node).execute_command(*_rule(user))
    try:
        nodes = ",".join(node.name for node in redis_cluster.nodes)
        done = sharedctx("acl", NAMESPACE, "--load-library", "--backend", redis_cluster.url)
        assert done.returncode == 0, done.stderr
        url = f"redis+cluster://{nodes}"
        options = {"username": user, "password": "secret"}
        backend = RedisBackend(
            url, namespace=NAMESPACE, keyring=KeyRing({"k": KeyRing.generate_key()}), **options
        )
        try:
            _workload(backend)
        finally:
            backend.close()
        _denied_elsewhere(url, **options)
    finally:
        for node in redis_cluster.nodes:
            redis_cluster.admin(node).execute_command("ACL", "DELUSER", user)
