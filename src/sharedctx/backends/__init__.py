"""Where a context's data lives: in this process (``memory``) or on a server."""
