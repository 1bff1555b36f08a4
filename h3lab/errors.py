"""HTTP errors as values: raise one anywhere, the client gets it as JSON."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class HTTPError(Exception):
    """An error that becomes the response ``{"status", "message", "data"}``.

    ``unhandled`` marks errors the framework made out of an unexpected
    exception: their message is replaced by a generic one so that no internal
    detail (or traceback) ever reaches the client, and their JSON says
    ``"unhandled": true`` (as h3 v2's), so a client can tell a crash from a
    deliberate 500.

    ``headers`` are sent with the error response (``WWW-Authenticate`` on a
    401, ``Retry-After`` on a 503...). ``cause`` is the exception this error
    stands for: it is chained (``__cause__``) for logs and debuggers, and never
    sent to the client.
    """

    def __init__(
        self,
        status: int = 500,
        message: str | None = None,
        data: Any = None,
        *,
        headers: dict[str, str] | None = None,
        cause: BaseException | None = None,
        unhandled: bool = False,
    ) -> None:
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be an int in 400..599, got {status!r}")
        self.status = status
        self.message = message if message is not None else status_phrase(status)
        self.data = data
        self.headers = headers or {}
        self.unhandled = unhandled
        super().__init__(self.message)
        if cause is not None:
            self.__cause__ = cause

    def to_json(self) -> dict[str, Any]:
        body = {"status": self.status, "message": self.message, "data": self.data}
        if self.unhandled:
            body["unhandled"] = True
        return body

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r})"
