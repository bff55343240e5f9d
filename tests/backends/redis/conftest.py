"""Fixtures of the Redis backend's tests: TLS, unix-socket and TLS-cluster servers
(``_tls.py``)."""

from ._tls import tls_cluster, tls_files, tls_server, unix_server  # noqa: F401
