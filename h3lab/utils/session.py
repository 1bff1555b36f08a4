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
  creation, or ``idle_timeout`` seconds after it was last resealed) or
  foreign cookie -- sealed under another name or a retired password -- gives
  a *fresh* session: never an error, and nothing of the rejected cookie is
  kept.
* ``idle_timeout`` (h3's ``idleTimeout``): a sliding lifetime. Each seal
  stamps ``last_seen_at`` into the cookie, and reading a session from its
  cookie reseals it once more than half the window has passed (so an active
  user stays signed in, an idle one is signed out between ``idle_timeout / 2``
  and ``idle_timeout`` after the last request). ``max_age`` stays an absolute
  cap on top of it; the cookie expires at whichever comes first. A session
  sent in the header is never resealed, so it ends ``idle_timeout`` after its
  seal.
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
# Fraction of the idle window used up before reading a session reseals it.
_SLIDE_THRESHOLD = 0.5
_CONTEXT_KEY = "sessions"

Update = Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any] | None] | None


class _Config:
    __slots__ = (
        "chunk_max_length",
        "cookie",
        "generate_id",
        "header",
        "idle_timeout",
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
        idle_timeout: float | None = None,
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
        if idle_timeout is not None and (
            isinstance(idle_timeout, bool)
            or not isinstance(idle_timeout, int | float)
            or not idle_timeout > 0
        ):
            raise ValueError(
                f"idle_timeout must be None or a number > 0 (seconds), got {idle_timeout!r}"
            )
        self.name = name
        self.max_age = max_age
        self.idle_timeout = idle_timeout
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

    __slots__ = ("_config", "_event", "_owner", "created_at", "data", "id", "last_seen_at")

    def __init__(self, event: H3Event, config: _Config, owner: dict[str, Session]) -> None:
        self._event = event
        self._config = config
        self._owner = owner  # this request's session table (see _check_live)
        self.id: str | None = None
        self.created_at = 0.0  # seconds since the epoch; max_age counts from here
        self.last_seen_at: float | None = None  # the last seal (idle_timeout only)
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
        self.last_seen_at = None
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
        self.last_seen_at = None
        self.data = {}

    def _save(self) -> None:
        from h3lab.utils.seal import seal

        config = self._config
        payload: dict[str, Any] = {"id": self.id, "created_at": self.created_at, "data": self.data}
        if config.idle_timeout is not None:
            # Stamped only with an idle window, so the default payload is unchanged (h3).
            self.last_seen_at = payload["last_seen_at"] = round(time.time(), 3)
        sealed = seal(payload, config.passwords, context=config.name)
        options = dict(config.cookie)
        ends = []
        if config.max_age is not None:
            ends.append(self.created_at + config.max_age)
        if config.idle_timeout is not None:
            ends.append((self.last_seen_at or self.created_at) + config.idle_timeout)
        if ends:
            options["expires"] = datetime.fromtimestamp(min(ends), UTC)
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
        last_seen_at = payload.get("last_seen_at")
        if isinstance(last_seen_at, bool) or not isinstance(last_seen_at, int | float):
            last_seen_at = None  # sealed before idle_timeout was set: created_at counts
        now = time.time()
        if config.max_age is not None and now - created_at > config.max_age:
            return False
        if config.idle_timeout is not None and now - (last_seen_at or created_at) > (
            config.idle_timeout
        ):
            return False
        self.id = session_id
        self.created_at = float(created_at)
        self.last_seen_at = None if last_seen_at is None else float(last_seen_at)
        self.data = data
        return True

    def _should_slide(self) -> bool:
        """Reseal on read to move the idle window? Once half of it is used (h3's
        ``shouldSlide``): a seal per request would cost more than the window gains."""
        idle = self._config.idle_timeout
        if idle is None:
            return False
        return time.time() - (self.last_seen_at or self.created_at) > idle * _SLIDE_THRESHOLD

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
    idle_timeout: float | None = None,
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
    cookie is refused even if the browser kept it. ``idle_timeout``
    (seconds) ends a session that saw no request for that long (see the
    module docstring).
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
    config = _Config(
        password,
        name,
        max_age,
        cookie,
        session_header,
        chunk_max_length,
        generate_id,
        idle_timeout,
    )
    session = Session(event, config, sessions)
    sealed = event.headers.get(config.header) if config.header else None
    from_cookie = not sealed
    if from_cookie:
        sealed = get_chunked_cookie(event, name)
    if not (sealed and session._load(sealed)):
        session._start()
        session._save()
    elif from_cookie and session._should_slide():
        session._save()  # slide the idle window (h3 reseals cookie sessions only)
    sessions[name] = session
    return session
