"""The web view of sessions: a live, replayable page per session, in the browser.

Needs the ``web`` extra (``pip install 'sharedctx[web]'``: Starlette and uvicorn). The
page's HTML, CSS and JavaScript ship in this package (``static/``); it loads nothing
from any other host. ``sharedctx serve --backend URL`` serves it; in your own server,
mount :func:`create_app`; in a process whose memory backend you want to see, serve
it on a thread with :class:`WebServer`::

    from sharedctx import MemoryBackend
    from sharedctx.web import WebServer, create_app

    with WebServer(create_app(MemoryBackend.shared()), port=0) as server:
        print("open", server.url)
        ...  # run the pipeline

The routes and the JSON API are listed in ``sharedctx.web._app``'s docstring and in
``docs/guides/web.md``; the security rules in ``_guard``.
"""

from sharedctx.web._app import WEB_SOURCE, create_app
from sharedctx.web._guard import is_loopback_name
from sharedctx.web._server import WebServer

__all__ = ["WEB_SOURCE", "WebServer", "create_app", "is_loopback_name"]
