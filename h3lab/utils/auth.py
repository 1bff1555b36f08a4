"""HTTP Basic authentication (RFC 7617): h3's ``basicAuth`` / ``requireBasicAuth``.

::

    app.use("/admin", basic_auth(username="admin", password=ADMIN_PASSWORD))
    app.get("/report", report, middleware=[basic_auth(validate=check_user)])

* Credentials are compared with ``hmac.compare_digest`` (constant time), and
  both the user name and the password are always compared, so the answer's
  timing does not tell a wrong user from a wrong password.
* A missing, malformed or wrong ``Authorization`` header is a ``401`` with
  ``WWW-Authenticate: Basic realm="...", charset="UTF-8"``; the handler
  never runs.
* Nothing is logged, and the 401 body never repeats what was sent.
* On success ``event.context["basic_auth"]`` holds ``{"username", "realm"}``
  (the password is not kept).

``validate(username, password)`` (sync or async) replaces or adds to the
fixed pair; it must return True to let the request in. With ``validate``,
empty user names and passwords reach it as sent (RFC 7617 allows them);
without it, empty ones are refused.

Basic auth sends the password with every request: serve it over HTTPS only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from h3lab.errors import HTTPError

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = ["basic_auth", "require_basic_auth"]

Validate = Callable[[str, str], bool | Awaitable[bool]]

_CREDENTIALS_RE = re.compile(r"^basic +([A-Za-z0-9+/=._~-]+) *$", re.IGNORECASE)
_REALM_DROP_RE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")


def _challenge(realm: str) -> dict[str, str]:
    quoted = _REALM_DROP_RE.sub("", realm).replace("\\", "\\\\").replace('"', '\\"')
    return {"www-authenticate": f'Basic realm="{quoted}", charset="UTF-8"'}


def _equal(given: str, expected: str) -> bool:
    # compare_digest on bytes: constant time in the length of `given`, and it
    # leaks at most whether the lengths differ (hmac's documented guarantee).
    return hmac.compare_digest(given.encode(), expected.encode())


def _credentials(event: H3Event) -> tuple[str, str] | None:
    header = event.headers.get("authorization")
    if not header:
        return None
    match = _CREDENTIALS_RE.match(header)
    if match is None:
        return None
    token = match.group(1)
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")  # RFC 7617 charset="UTF-8"
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")  # legacy clients
    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    return username, password


class _BasicAuth:
    """One configured check: ``check(event)`` (sync) or ``await require(event)``."""

    __slots__ = ("_challenge", "password", "realm", "username", "validate")

    def __init__(
        self,
        username: str | None,
        password: str | None,
        validate: Validate | None,
        realm: str,
    ) -> None:
        if validate is None and password is None:
            raise ValueError("basic_auth needs password= (with username=) or validate=")
        for field, value in (("username", username), ("password", password), ("realm", realm)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"basic_auth {field} must be a str, got {type(value).__name__}")
        if username is not None and ":" in username:
            raise ValueError("basic_auth username cannot contain ':' (RFC 7617)")
        if validate is not None and not callable(validate):
            raise TypeError("basic_auth validate must be callable(username, password)")
        self.username = username
        self.password = password
        self.validate = validate
        self.realm = realm
        self._challenge = _challenge(realm)

    def _fail(self) -> HTTPError:
        return HTTPError(401, "Authentication required", headers=dict(self._challenge))

    def _check_pair(self, event: H3Event) -> tuple[str, str]:
        credentials = _credentials(event)
        if credentials is None:
            raise self._fail()
        username, password = credentials
        if self.validate is None and (not username or not password):
            raise self._fail()
        # Both comparisons always run: `&` rather than `and`.
        user_ok = self.username is None or _equal(username, self.username)
        password_ok = self.password is None or _equal(password, self.password)
        if not (user_ok & password_ok):
            raise self._fail()
        return username, password

    def _accept(self, event: H3Event, username: str) -> None:
        event.context["basic_auth"] = {"username": username, "realm": self.realm}

    async def require(self, event: H3Event) -> None:
        """Raise the 401 unless ``event`` carries valid credentials."""
        username, password = self._check_pair(event)
        if self.validate is not None:
            verdict: Any = self.validate(username, password)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not True:
                raise self._fail()
        self._accept(event, username)

    def check(self, event: H3Event) -> None:
        """``require`` for a synchronous ``validate`` (or none): no coroutine."""
        username, password = self._check_pair(event)
        if self.validate is not None and self.validate(username, password) is not True:
            raise self._fail()
        self._accept(event, username)

    def __repr__(self) -> str:
        return f"basic_auth(realm={self.realm!r})"  # never the credentials


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - objects with async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def basic_auth(
    *,
    username: str | None = None,
    password: str | None = None,
    validate: Validate | None = None,
    realm: str = "auth",
) -> Callable[[H3Event], Any]:
    """Middleware that lets a request through only with valid Basic credentials.

    A *before* middleware (one argument): it returns None to let the request
    through and raises the 401 otherwise. It is a plain function unless
    ``validate`` is async, so the common case costs no coroutine per request.
    """
    checker = _BasicAuth(username, password, validate, realm)
    if validate is not None and _is_async(validate):

        async def basic_auth_async(event: H3Event) -> None:
            await checker.require(event)

        return basic_auth_async

    def basic_auth_middleware(event: H3Event) -> None:
        checker.check(event)

    return basic_auth_middleware


async def require_basic_auth(
    event: H3Event,
    *,
    username: str | None = None,
    password: str | None = None,
    validate: Validate | None = None,
    realm: str = "auth",
) -> str:
    """Inside a handler: the authenticated user name, or the 401 raised."""
    checker = _BasicAuth(username, password, validate, realm)
    await checker.require(event)
    return event.context["basic_auth"]["username"]
