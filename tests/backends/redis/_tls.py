"""Redis servers for the TLS, ACL and unix-socket tests: certificates the test session
makes (with cryptography), a ``redis-server`` with ``--tls-port``, one on a unix socket,
and a TLS Redis Cluster (``tests/_cluster.py``'s ``LocalCluster`` with ``tls=``).

Every server listens on loopback or on a socket in a temporary directory, and is
stopped when its fixture ends.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..._cluster import LocalCluster, executables
from ...conftest import RedisServer, _redis_executable

__all__ = ["TLSFiles", "make_certificates"]


@dataclass(frozen=True)
class TLSFiles:
    """A CA and a server certificate it signed (for 127.0.0.1 and localhost), and
    another CA that signed nothing of these: a client that trusts only it does not
    verify the server."""

    ca: Path
    certificate: Path
    key: Path
    other_ca: Path

    def server_options(self) -> list[str]:
        return [
            "--tls-cert-file", str(self.certificate),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(common_name: str, path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def make_certificates(directory: Path) -> TLSFiles:
    """A test CA, a server certificate it signs, and another CA (see :class:`TLSFiles`)."""
    ca_certificate, ca_key = _ca("sharedctx test CA", directory / "ca.pem")
    _ca("another CA", directory / "other-ca.pem")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "server.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(key, directory / "server-key.pem")
    return TLSFiles(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
        directory / "other-ca.pem",
    )


class TLSRedisServer(RedisServer):
    """A redis-server that speaks TLS only (``--port 0 --tls-port``)."""

    def __init__(self, executable: str, files: TLSFiles, *options: str) -> None:
        super().__init__(executable, *files.server_options(), *options)
        self.files = files

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.files.ca}"

    @property
    def bare_url(self) -> str:
        """The URL without the CA to trust (the system's CAs do not sign this server)."""
        return f"rediss://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", "0",
                "--tls-port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.files.ca))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.process.returncode}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
                ):
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server (TLS) did not answer PING within 10 s")


class UnixRedisServer(RedisServer):
    """A redis-server on a unix socket only (``--port 0``)."""

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(str(self.socket_path))
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server (unix socket) did not answer PING within 10 s")


@pytest.fixture(scope="session")
def tls_files() -> Iterator[TLSFiles]:
    directory = Path(tempfile.mkdtemp(prefix="sharedctx-tls-"))
    try:
        yield make_certificates(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_server(tls_files: TLSFiles) -> Iterator[TLSRedisServer]:
    """A redis-server that speaks TLS only, with the session's certificates."""
    server = TLSRedisServer(_redis_executable(), tls_files)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def unix_server() -> Iterator[UnixRedisServer]:
    """A redis-server on a unix socket."""
    server = UnixRedisServer(_redis_executable())
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def tls_cluster(tls_files: TLSFiles) -> Iterator[LocalCluster]:
    """A Redis Cluster (3 masters, no replica) that speaks TLS only, bus included."""
    server, cli = executables()
    with LocalCluster(3, 0, node_timeout_ms=5000, server=server, cli=cli, tls=tls_files) as cluster:
        yield cluster
