"""An app that shows what the server made of the request (``h3lab serve`` option tests)."""

from __future__ import annotations

from h3lab import H3
from h3lab.event import H3Event

app = H3()


@app.get("/echo")
def echo(event: H3Event) -> dict[str, object]:
    remote = event.remote
    return {
        "client": list(remote) if isinstance(remote, tuple) else remote,
        "scheme": event.context.get("scheme"),
        "root_path": event.context.get("root_path"),
        "path": event.path,
    }
