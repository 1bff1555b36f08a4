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

Who calls them: the built-in server around serving (``Server.start`` before
it listens, ``Server.shutdown`` after the last connection; every worker with
``--workers N``), and the ASGI adapter through the ASGI lifespan protocol
(``lifespan.startup.failed`` / ``lifespan.shutdown.failed`` carry the message).
"""

from __future__ import annotations

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


async def run_startup(app: H3) -> None:
    """Every startup hook in order; ``StartupFailed`` at the first that raises."""
    for owner in _apps(app):
        for fn in owner.startup_hooks:
            try:
                await _call(fn, owner)
            except Exception as exc:
                logger.debug("startup hook %s failed", _name(fn), exc_info=exc)
                detail = str(exc).strip().splitlines()
                reason = f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
                raise StartupFailed(f"startup hook {_name(fn)} failed: {reason}") from exc


async def run_shutdown(app: H3) -> list[str]:
    """Every shutdown hook, in reverse; the failures as one-line messages."""
    failures: list[str] = []
    for owner in reversed(list(_apps(app))):
        for fn in reversed(owner.shutdown_hooks):
            try:
                await _call(fn, owner)
            except Exception as exc:
                logger.error("shutdown hook %s failed", _name(fn), exc_info=exc)
                failures.append(f"shutdown hook {_name(fn)} failed: {type(exc).__name__}: {exc}")
    return failures


__all__ = ["StartupFailed", "check_hook", "run_shutdown", "run_startup"]
