"""h3lab's own asyncio HTTP/1.1 server (httptools + uvloop)."""

from h3lab.server.core import Server, serve

__all__ = ["Server", "serve"]
