"""Sessions in a sealed cookie: h3's ``useSession``.

::

    SECRET = os.environ["SESSION_SECRET"]          # >= 32 random characters

    @app.get("/visits")
    async def visits(event):
        session = await use_session(event, password=SECRET, max_age=3600)
        await session.update({"visits": session.data.get("visits", 0) + 1})
        return {"id": session.id, "visits": session.data["visits"]}

The whole session (``id``, ``created_at``, ``data``) lives in the client's
cookie, sealed with AES-256-GCM (``h3lab.utils.seal``): the client can
neither read nor change it. Nothing is stored on the server.

* A missing, tampered, truncated, expired (``max_age`` seconds after
  creation) or foreign cookie -- sealed under another name or a retired
  password -- gives a *fresh* session: never an error, and nothing of the
  rejected cookie is kept.
* As in h3, a fresh session is sealed into the response right away, and
  ``use_session`` called again in the same request returns the same object.
* Key rotation: ``password=[new, old]`` seals with ``new`` and opens cookies
  sealed with either; a cookie opened with ``old`` is resealed on its next
  ``update``.
* A cookie over ``CHUNK_MAX_LENGTH`` characters is split into h3's chunked
  cookies (``h3``, ``h3.1``, ``h3.2``...) and joined back. Browsers send
  all cookies back in one ``Cookie`` line, which the built-in server caps at
  ``limits.max_header_line`` (8 KiB by default; a longer line is a 431):
  raise it for sessions bigger than about 5 KB of data.
* Cookie attributes default to ``HttpOnly; SameSite=Lax; Secure; Path=/``
  (h3's defaults). ``secure=False`` is needed to use sessions over plain
  ``http://`` with clients that honour ``Secure`` strictly (test clients,
  scripts); browsers accept Secure cookies from ``http://localhost``.
* Non-browser clients may send the sealed value in the ``x-<name>-session``
  header instead (h3's ``sessionHeader``); ``session_header=False`` turns
  that off.

Session data must be JSON-serialisable; keep it small (it travels with
every request).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from h3lab.utils.chunked_cookies import (
    CHUNK_MAX_LENGTH,
    delete_chunked_cookie,
    get_chunked_cookie,
    set_chunked_cookie,
)
from h3lab.utils.cookies import serialize_cookie

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = ["Session", "use_session"]

DEFAULT_SESSION_NAME = "h3"
_CONTEXT_KEY = "sessions"

Update = Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any] | None] | None


class _Config:
    __slots__ = (
        "chunk_max_length",
        "cookie",
        "generate_id",
        "header",
        "max_age",
        "name",
        "passwords",
    )

    def __init__(
        self,
        password: str | Sequence[str],
        name: str,
        max_age: int | None,
        cookie: dict[str, Any],
        session_header: str | bool,
        chunk_max_length: int,
        generate_id: Callable[[], str] | None,
    ) -> None:
        from h3lab.utils.seal import check_passwords

        self.passwords = check_passwords(password)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty cookie name, got {name!r}")
        # Fails here, at the first request, on a bad name or attribute --
        # not later on some request that happens to update the session.
        serialize_cookie(name, "", **cookie)
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0
        ):
            raise ValueError(f"max_age must be None or an int > 0 (seconds), got {max_age!r}")
        self.name = name
        self.max_age = max_age
        self.cookie = cookie
        if session_header is True:
            self.header: str | None = f"x-{name.lower()}-session"
        elif session_header is False or session_header is None:
            self.header = None
        elif isinstance(session_header, str) and session_header:
            self.header = session_header.lower()
        else:
            raise ValueError(
                f"session_header must be True, False or a header name, got {session_header!r}"
            )
        self.chunk_max_length = chunk_max_length
        self.generate_id = generate_id


class Session:
    """One request's view of a session: ``id``, ``data``, ``update()``, ``clear()``."""

    __slots__ = ("_config", "_event", "_owner", "created_at", "data", "id")

    def __init__(self, event: H3Event, config: _Config, owner: dict[str, Session]) -> None:
        self._event = event
        self._config = config
        self._owner = owner  # this request's session table (see _check_live)
        self.id: str | None = None
        self.created_at = 0.0  # seconds since the epoch; max_age counts from here
        self.data: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._config.name

    async def update(self, values: Update = None) -> Session:
        """Merge ``values`` (a mapping, or a function of the current data) and reseal.

        After ``clear()``, ``update`` starts a new session.
        """
        self._check_live()
        if self.id is None:
            self._start()
        if callable(values):
            values = values(self.data)
        if values:
            self.data.update(values)
        self._save()
        return self

    async def clear(self) -> Session:
        """Forget the session: empty data, no id, and the cookie (with its chunks) deleted."""
        self._check_live()
        self.id = None
        self.data = {}
        self.created_at = 0.0
        delete_chunked_cookie(self._event, self._config.name, **_cookie_scope(self._config.cookie))
        return self

    def _check_live(self) -> None:
        # Events are pooled: once the request is over, this event may already
        # carry another client's request, and a Set-Cookie written now would
        # land in *their* response. The session table is per request, so its
        # identity tells whether our request is still the one running.
        # A released event refuses every use itself (RuntimeError naming
        # event.wait_until); either way the session says what went wrong.
        try:
            context = self._event._context
        except RuntimeError as released:
            context = None
            cause: BaseException | None = released
        else:
            cause = None
        if context is None or context.get(_CONTEXT_KEY) is not self._owner:
            raise RuntimeError(
                f"session {self._config.name!r} used after its request ended "
                "(update or clear it inside the handler, or keep the request "
                "with event.wait_until)"
            ) from cause

    def _start(self) -> None:
        generate = self._config.generate_id
        self.id = generate() if generate is not None else str(uuid.uuid4())
        self.created_at = round(time.time(), 3)
        self.data = {}

    def _save(self) -> None:
        from h3lab.utils.seal import seal

        config = self._config
        payload = {"id": self.id, "created_at": self.created_at, "data": self.data}
        sealed = seal(payload, config.passwords, context=config.name)
        options = dict(config.cookie)
        if config.max_age is not None:
            options["expires"] = datetime.fromtimestamp(self.created_at + config.max_age, UTC)
        set_chunked_cookie(
            self._event,
            config.name,
            sealed,
            chunk_max_length=config.chunk_max_length,
            **options,
        )

    def _load(self, sealed: str) -> bool:
        """Adopt the session sealed in ``sealed``; False when it is not a valid, live one."""
        from h3lab.utils.seal import unseal

        config = self._config
        payload = unseal(sealed, config.passwords, context=config.name)
        if not isinstance(payload, dict):
            return False
        session_id = payload.get("id")
        created_at = payload.get("created_at")
        data = payload.get("data")
        if (
            not isinstance(session_id, str)
            or not session_id
            or isinstance(created_at, bool)
            or not isinstance(created_at, int | float)
            or not isinstance(data, dict)
        ):
            return False
        if config.max_age is not None and time.time() - created_at > config.max_age:
            return False
        self.id = session_id
        self.created_at = float(created_at)
        self.data = data
        return True

    def __repr__(self) -> str:
        return f"<Session {self._config.name} id={self.id!r} keys={sorted(self.data)}>"


def _cookie_scope(cookie: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a deletion must repeat for the browser to match the cookie."""
    return {k: cookie[k] for k in ("path", "domain", "secure") if k in cookie}


async def use_session(
    event: H3Event,
    *,
    password: str | Sequence[str],
    name: str = DEFAULT_SESSION_NAME,
    max_age: int | None = None,
    secure: bool = True,
    httponly: bool = True,
    samesite: str | None = "lax",
    path: str = "/",
    domain: str | None = None,
    session_header: str | bool = True,
    chunk_max_length: int = CHUNK_MAX_LENGTH,
    generate_id: Callable[[], str] | None = None,
) -> Session:
    """The session of this request: loaded from its sealed cookie, or a fresh one.

    ``password`` is a secret of at least 32 characters, or a list of them
    (the first seals, all unseal). ``max_age`` (seconds) bounds the
    session's life from its creation, on the server side too: an older
    cookie is refused even if the browser kept it.
    """
    sessions = event.context.get(_CONTEXT_KEY)
    if sessions is None:
        sessions = event.context[_CONTEXT_KEY] = {}
    existing = sessions.get(name)
    if existing is not None:
        if existing.id is None:  # cleared earlier in this request: start anew (h3)
            existing._start()
            existing._save()
        return existing
    cookie = {"secure": secure, "httponly": httponly, "samesite": samesite, "path": path}
    if domain is not None:
        cookie["domain"] = domain
    config = _Config(password, name, max_age, cookie, session_header, chunk_max_length, generate_id)
    session = Session(event, config, sessions)
    sealed = event.headers.get(config.header) if config.header else None
    if not sealed:
        sealed = get_chunked_cookie(event, name)
    if not (sealed and session._load(sealed)):
        session._start()
        session._save()
    sessions[name] = session
    return session
