"""Who may ask the web view anything, and the headers every answer carries.

- With a token, every request must carry it: ``Authorization: Bearer TOKEN``, or the
  cookie that opening ``/?token=TOKEN`` sets (the page then loses the token from its
  address). Without one, the view answers only requests addressed to a loopback name
  (``127.0.0.1``, ``localhost``, ``::1``): a page of another site that points its
  own host name at 127.0.0.1 (DNS rebinding) gets nothing.
- Every answer carries a Content-Security-Policy that allows the view's own scripts,
  styles and connections only (no inline script, no other host), and is never cached
  or framed.
- The write routes check a CSRF token besides (see ``_app``): a page of another site
  can make a browser send a request, not read the token or set the header.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "TOKEN_COOKIE", "Guard", "is_loopback_name"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
TOKEN_COOKIE = "sharedctx_token"
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def is_loopback_name(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port) is this machine's
    loopback: ``localhost`` or an address of 127.0.0.0/8 or ::1."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8765
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """ASGI middleware: the token or the loopback check, and the headers (see the
    module docstring)."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        """The answer to a request that may not go further, or None."""
        if self.token is None:
            host = _host_name(Headers(scope=scope).get("host", ""))
            if is_loopback_name(host):
                return None
            return _error(
                403,
                f"this view answers requests to a loopback name only, not to {host!r}: "
                "serve it with a token (sharedctx serve --token ...) to reach it by "
                "another name",
            )
        connection = HTTPConnection(scope)
        if scope["path"] == "/" and "token" in connection.query_params:
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])
            if self._is_token(given[0]):
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(
                    TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/"
                )
                return response
            return _error(401, "wrong token in the address: open the URL the server printed")
        authorization = connection.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and self._is_token(credentials.strip()):
            return None
        if self._is_token(connection.cookies.get(TOKEN_COOKIE, "")):
            return None
        return _error(
            401,
            "this view needs its token: open the URL the server printed (it ends with "
            "?token=...), or send the header Authorization: Bearer TOKEN",
        )

    def _is_token(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
