"""Is a callable asynchronous? One answer for handlers and middleware alike.

``inspect.iscoroutinefunction`` says False for an instance whose ``__call__``
is ``async def`` (``class Auth: async def __call__(self, event)``) and, before
Python 3.12, for a ``functools.partial`` of a coroutine function. Taking such a
callable for a synchronous one turns its coroutine into the response.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["is_async_callable"]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - instances with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)
