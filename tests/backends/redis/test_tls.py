"""TLS and unix sockets for real: ``rediss://`` and ``rediss+cluster://`` against
servers with certificates the test session made, a certificate that does not verify
(a typed error naming the host; status 2 in the CLI), and ``unix://``."""

from __future__ import annotations

import time
import uuid

import pytest

from sharedctx import BackendUnavailableError, KeyRing, RedisBackend, SharedContext

from ..._cluster import LocalCluster
from ...cli._run import one_error_line, sharedctx
from ._tls import TLSRedisServer, UnixRedisServer

pytestmark = pytest.mark.redis

RING = KeyRing({"k": KeyRing.generate_key()})


def _round_trip(backend: str | RedisBackend, keyring: KeyRing | None = None) -> None:
    """Write, read, watch from a second context, read back sealed or plain."""
    session = f"tls-{uuid.uuid4().hex[:8]}"
    with (
        SharedContext(session, backend=backend, keyring=keyring) as ctx,
        SharedContext(session, backend=backend, keyring=keyring) as other,
        other.watch() as watch,
    ):
        ctx.set("greeting", {"text": "hello"})
        event = watch.get(timeout=5)
        assert event.key == "greeting"
        assert event.entry.value == {"text": "hello"}
        assert other.get("greeting") == {"text": "hello"}
        ctx.destroy()


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_a_rediss_url_works_against_a_tls_server(tls_server: TLSRedisServer, sealed: bool) -> None:
    _round_trip(tls_server.url, RING if sealed else None)


def test_a_certificate_that_does_not_verify_is_a_typed_error_naming_the_host(
    tls_server: TLSRedisServer,
) -> None:
    began = time.monotonic()
    with pytest.raises(BackendUnavailableError) as failed:
        SharedContext("s", backend=tls_server.bare_url)
    message = str(failed.value)
    assert f"127.0.0.1:{tls_server.port}" in message
    assert "certificate does not verify" in message
    assert "ssl_ca_certs" in message
    assert time.monotonic() - began < 2.5  # (not a call tried again: it cannot pass)
    other_ca = f"{tls_server.bare_url}?ssl_ca_certs={tls_server.files.other_ca}"
    with pytest.raises(BackendUnavailableError, match="certificate does not verify"):
        SharedContext("s", backend=other_ca)


def test_the_cli_says_in_one_line_that_a_certificate_does_not_verify(
    tls_server: TLSRedisServer,
) -> None:
    done = sharedctx("sessions", "--backend", tls_server.bare_url)
    assert done.returncode == 2
    line = one_error_line(done)
    assert f"127.0.0.1:{tls_server.port}" in line
    assert "certificate" in line
    good = sharedctx("sessions", "--backend", tls_server.url)
    assert good.returncode == 0, good.stderr


@pytest.mark.cluster
@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_a_rediss_cluster_url_works_against_a_tls_cluster(
    tls_cluster: LocalCluster, sealed: bool
) -> None:
    assert tls_cluster.url.startswith("rediss+cluster://")
    backend = RedisBackend(
        tls_cluster.url,
        keyring=RING if sealed else None,
        ssl_ca_certs=str(tls_cluster.tls.ca),
    )
    try:
        _round_trip(backend)
    finally:
        backend.close()


@pytest.mark.cluster
def test_a_tls_cluster_whose_certificate_does_not_verify_is_a_typed_error(
    tls_cluster: LocalCluster,
) -> None:
    with pytest.raises(BackendUnavailableError, match=r"127\.0\.0\.1"):
        RedisBackend(tls_cluster.url, ssl_ca_certs=str(tls_cluster.tls.other_ca))


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_a_unix_url_works_against_a_real_socket(unix_server: UnixRedisServer, sealed: bool) -> None:
    assert unix_server.socket_path.is_socket()
    _round_trip(unix_server.url, RING if sealed else None)
