"""Startup and shutdown hooks: ``@app.on_startup`` / ``@app.on_shutdown``.

A hook is a function, sync or async, taking no argument or one: the app being
served (under ``h3lab serve --preset ...`` that is the clone the CLI built, not
the module-level app, so state a hook attaches to ``app`` is where handlers
find it through ``event.app``).

Order: startup hooks run in registration order, then those of every mounted
H3 sub-app (in mount order, recursively); shutdown runs the mirror image
(sub-apps first, last mounted first, each app's hooks in reverse), so what
started first stops last.

The first failing startup hook stops startup (``StartupFailed``, one line
naming the hook and the error; no shutdown hook runs, as in Starlette). Every
shutdown hook runs even when one fails; the failures are logged and returned.

A mounted ASGI application (``app.mount("/legacy", starlette_app)``) gets
the ASGI lifespan protocol from its parent: ``lifespan.startup`` right after
the hooks of the app it is mounted in (so a Starlette ``lifespan`` or a
FastAPI startup handler runs), ``lifespan.shutdown`` right before them at
shutdown. A ``lifespan.startup.failed`` stops startup like a failing hook
(the mounted apps already started are shut down first); an app that does not
speak the protocol (it raises or returns at once, as the ASGI spec allows) is
served without it. The ``state`` its lifespan fills is copied into the scope
of each request it gets, as ASGI servers do.

Who calls them: the built-in server around serving (``Server.start`` before
it listens, ``Server.shutdown`` after the last connection; every worker with
``--workers N``), and the ASGI adapter through the ASGI lifespan protocol
(``lifespan.startup.failed`` / ``lifespan.shutdown.failed`` carry the message).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from h3lab.server.core import ServeError

if TYPE_CHECKING:
    from h3lab.app import H3

logger = logging.getLogger("h3lab")

Hook = Callable[..., Any]


class StartupFailed(ServeError):
    """A startup hook raised: the server does not start (one line, exit status 1)."""


def check_hook(fn: Hook, kind: str) -> Hook:
    """``fn`` if it can be called with no argument or with the app."""
    if not callable(fn):
        raise TypeError(f"{kind} hook must be callable, got {fn!r}")
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        try:
            inspect.signature(fn).bind()
        except TypeError:
            raise TypeError(
                f"{kind} hook {_name(fn)} must take no argument or one (the app)"
            ) from None
    except ValueError:  # no signature (a builtin): call it without the app
        pass
    return fn


def _takes_app(fn: Hook) -> bool:
    try:
        inspect.signature(fn).bind(None)
    except (TypeError, ValueError):
        return False
    return True


def _name(fn: Hook) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _apps(app: H3) -> Iterator[H3]:
    """``app``, then its mounted H3 sub-apps depth first, in mount order."""
    yield app
    for sub in app.mounted_apps():
        yield from _apps(sub)


async def _call(fn: Hook, app: H3) -> None:
    result = fn(app) if _takes_app(fn) else fn()
    if inspect.isawaitable(result):
        await result


def _asgi_mounts(app: H3) -> list[Any]:
    """The ASGI applications mounted on ``app`` (``ASGIMount``), in mount order."""
    from h3lab.mount import ASGIMount

    return [route.handler for route in app.routes() if isinstance(route.handler, ASGIMount)]


async def run_startup(app: H3) -> None:
    """Every startup hook in order; ``StartupFailed`` at the first that raises."""
    started: list[ASGILifespan] = []
    try:
        for owner in _apps(app):
            for fn in owner.startup_hooks:
                try:
                    await _call(fn, owner)
                except Exception as exc:
                    logger.debug("startup hook %s failed", _name(fn), exc_info=exc)
                    detail = str(exc).strip().splitlines()
                    reason = f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
                    raise StartupFailed(f"startup hook {_name(fn)} failed: {reason}") from exc
            for mount in _asgi_mounts(owner):
                lifespan = mount.lifespan = ASGILifespan(mount.app, mount.prefix or "/")
                if await lifespan.startup():
                    started.append(lifespan)
    except BaseException:
        # What did start is stopped (no hook of ours runs, as in Starlette).
        for lifespan in reversed(started):
            await lifespan.shutdown()
        raise


async def run_shutdown(app: H3) -> list[str]:
    """Every shutdown hook, in reverse; the failures as one-line messages."""
    failures: list[str] = []
    for owner in reversed(list(_apps(app))):
        for mount in reversed(_asgi_mounts(owner)):
            lifespan, mount.lifespan = mount.lifespan, None
            if lifespan is not None:
                failure = await lifespan.shutdown()
                if failure is not None:
                    failures.append(failure)
        for fn in reversed(owner.shutdown_hooks):
            try:
                await _call(fn, owner)
            except Exception as exc:
                logger.error("shutdown hook %s failed", _name(fn), exc_info=exc)
                failures.append(f"shutdown hook {_name(fn)} failed: {type(exc).__name__}: {exc}")
    return failures


class ASGILifespan:
    """The server's side of the ASGI lifespan protocol, for one mounted ASGI app."""

    # Seconds an app gets to answer lifespan.shutdown (startup waits as long
    # as the app takes, like uvicorn: a stuck startup is the app's bug).
    SHUTDOWN_TIMEOUT = 10.0

    def __init__(self, app: Any, where: str) -> None:
        self.app = app
        self.where = where
        self.state: dict[str, Any] = {}
        self.running = False
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = None

    async def _receive(self) -> dict[str, Any]:
        return await self._to_app.get()

    async def _send(self, message: dict[str, Any]) -> None:
        await self._from_app.put(message)

    async def _answer(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The app's next message; None once it returned (or raised) without one."""
        assert self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        try:
            await asyncio.wait(
                (getter, self._task), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    async def startup(self) -> bool:
        """True when the app started; False when it does not speak lifespan."""
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.ensure_future(self.app(scope, self._receive, self._send))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._answer()
        if message is None:
            error = None if self._task.cancelled() else self._task.exception()
            logger.debug(
                "the ASGI app mounted at %s does not support lifespan", self.where, exc_info=error
            )
            return False
        if message["type"] != "lifespan.startup.complete":
            await self._finish(1.0)
            detail = _last_line(message.get("message", "")) or message["type"]
            raise StartupFailed(f"the ASGI app mounted at {self.where} failed to start: {detail}")
        self.running = True
        return True

    async def shutdown(self) -> str | None:
        """Stop the app; a one-line failure message, or None."""
        if not self.running or self._task is None:
            return None
        self.running = False
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._answer(self.SHUTDOWN_TIMEOUT)
        await self._finish(1.0)
        if message is not None and message["type"] == "lifespan.shutdown.complete":
            return None
        detail = "no answer" if message is None else _last_line(message.get("message", ""))
        failure = f"the ASGI app mounted at {self.where} failed to shut down: {detail}"
        logger.error("%s", failure)
        return failure

    async def _finish(self, timeout: float) -> None:
        """Let the app's lifespan call return (it may re-raise what it reported)."""
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait((task,), timeout=timeout)
        if not done:
            task.cancel()
        elif not task.cancelled() and task.exception() is not None:
            logger.debug(
                "lifespan of the ASGI app at %s raised", self.where, exc_info=task.exception()
            )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


__all__ = ["ASGILifespan", "StartupFailed", "check_hook", "run_shutdown", "run_startup"]
