"""One asyncio Task per request, started eagerly: ``start_request_task``.

Every request runs in its own ``asyncio.Task`` and its own copy of the
``contextvars`` context, exactly as under uvicorn: ``asyncio.current_task()``,
``asyncio.timeout``, aiohttp's client and ``ContextVar``s work in handlers,
and a value one request sets is never seen by another.

A task normally takes its first step one event-loop iteration after it is
created. Started *eagerly*, its first step runs at once, inside the call that
creates it: a handler that returns without suspending is answered with no
loop round trip (``task.done()`` is already true), and only a handler that
really waits costs a scheduled step.

* Python 3.12+: ``asyncio.Task(..., eager_start=True)``, the standard eager
  start (it applies while the loop runs; otherwise the task is scheduled).
* Python 3.11 has no eager start. ``asyncio.Task.__init__`` schedules the
  first step with ``loop.call_soon(step, context=...)``; we hand it a
  ``call_soon`` that keeps the step instead (an instance attribute on the
  loop, shadowing the method for the duration of the constructor only), then
  run that step in the task's context ourselves. The task is a genuine C
  ``asyncio.Task``: entering, suspending, waking and cancelling are all its
  own code. Started from inside another task, that task is set aside for the
  step and restored after, as 3.12's eager start does. A loop that refuses
  instance attributes gets a plainly scheduled task.

Costs per request are measured by ``h3lab bench micro --target protocol``
(the ``task-start`` rows, next to the whole server per request).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from contextvars import copy_context
from typing import Any

Task = asyncio.Task
EAGER_START = sys.version_info >= (3, 12)


class _StepCatcher:
    """Stands in for ``loop.call_soon`` while ``Task.__init__`` runs: keeps the step."""

    __slots__ = ("step",)

    def __init__(self) -> None:
        self.step: Any = None

    def __call__(self, callback: Any, *args: Any, context: Any = None) -> None:
        self.step = callback


if EAGER_START:

    def start_request_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
    ) -> Task[Any]:
        """Start ``coro`` as a Task in a copy of the current context, eagerly."""
        return Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]  # eager_start is 3.12+, behind a version check

else:
    from asyncio.tasks import _enter_task, _leave_task

    _current_task = asyncio.current_task
    _catcher = _StepCatcher()  # one is enough: its step is taken before it runs

    def start_request_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
    ) -> Task[Any]:
        """Start ``coro`` as a Task in a copy of the current context, eagerly."""
        context = copy_context()
        try:
            loop.call_soon = _catcher  # type: ignore[assignment]  # a catcher stands in for call_soon for one Task()
        except AttributeError:  # a loop without instance attributes
            return Task(coro, loop=loop, context=context)
        try:
            task = Task(coro, loop=loop, context=context)
        finally:
            del loop.call_soon
        step, _catcher.step = _catcher.step, None  # taken before the step may start another
        outer = _current_task(loop)
        if outer is None:
            context.run(step)
            return task
        # Started from inside a task (a step must not nest): set it aside.
        _leave_task(loop, outer)
        try:
            context.run(step)
        finally:
            _enter_task(loop, outer)
        return task


def start_mode() -> str:
    """How request tasks start on this interpreter (for benchmark rows and logs)."""
    return "eager_start" if EAGER_START else "eager (captured first step, 3.11)"
