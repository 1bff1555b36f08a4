"""The request cycle: from a complete request to its handler, in order, isolated.

Every request runs in its own copy of the ``contextvars`` context, so a
``ContextVar`` one request sets is never seen by another. How it is isolated
is decided once per route, from its chain (``app.resolve``,
``middleware.chain_is_sync``), never per request:

* a chain that cannot await (synchronous before-middleware and a synchronous
  handler, no onion layer, no ``on_request`` hook) runs in a context copy
  with no asyncio Task (``_serve_sync``): nothing in it can suspend, so a Task
  would buy nothing but cost ~4-5 us on Python 3.11. Deliberately, in such a
  handler ``asyncio.current_task()`` is ``None`` on the built-in server (under
  an ASGI server it is the server's task);
* every other request -- an ``async def`` handler or layer, even one that
  returns without suspending (it may enter ``asyncio.timeout`` first) -- runs
  in its own asyncio Task (``_serve``: handler, conversion, response,
  release), so ``asyncio.current_task()``, ``asyncio.timeout`` and aiohttp
  behave exactly as under uvicorn. The task is started *eagerly*
  (``h3lab.server.tasks``): its first step runs inside the parser callback,
  so a handler that does not suspend (the common case: no real I/O) is
  answered right there, with no event-loop round trip. A task that suspends
  holds ``running`` until it ends (``_request_done``, a done callback), and
  later pipelined requests wait in ``queue`` meanwhile, so responses leave
  in request order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine
from contextvars import copy_context
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from h3lab.methods import ALLOW_ALL
from h3lab.response import Response
from h3lab.server.deadlines import ACTIVE, BODY, HEADERS, IDLE, LINGER
from h3lab.server.tasks import start_request_task

if TYPE_CHECKING:
    from h3lab.event import H3Event
    from h3lab.server.conn import Connection

logger = logging.getLogger("h3lab.server")


class _WritePaused:
    """Stands in for ``running`` while the write buffer is full and no Task runs.

    Requests parsed meanwhile queue instead of being answered at once, so a
    read full of pipelined requests cannot pile responses into the buffer of
    a client that does not read them; ``resume_writing`` serves the queue.
    """

    __slots__ = ()

    def done(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False


WRITE_PAUSED = _WritePaused()

# The interim answer to Expect: 100-continue.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Stop(Exception):
    """Raised after the connection's last request is delivered: llhttp stops there,
    so the bytes after it are never parsed (see ``_last_request``)."""


class Cycle:
    """The ``HttpProtocol`` methods that run requests."""

    __slots__ = ()
    # Declared for the type checker, which would otherwise infer them from the
    # first assignment below (the slots are HttpProtocol's).
    running: asyncio.Task[Any] | _WritePaused | None
    _continue_pending: list[tuple[bytes, bytes]] | None
    _task_pending: H3Event | None

    def _last_request(self: Connection, event: H3Event, llhttp_keep_alive: bool) -> None:
        """Deliver the request that ends the connection; nothing after it is parsed."""
        self.keep_alive_next = False
        self._deliver(event)
        if llhttp_keep_alive:
            # llhttp would go on parsing what follows (it stops by itself after
            # Connection: close and HTTP/1.0): stop it here.
            raise Stop

    def _deliver(self: Connection, event: H3Event) -> None:
        """Queue ``event`` behind the requests in flight, or serve it now."""
        if self.running is not None or self.queue:
            self.queue.append(event)
            if len(self.queue) >= self.limits.max_pipeline:
                self._pause_input("pipeline")
        elif event.raw_path == "*":
            self._answer_star(event)
        else:
            self._dispatch(event)

    def _dispatch(self: Connection, event: H3Event) -> None:
        """Run the request isolated: the kind of isolation is the route's (``app.resolve``).

        A chain that cannot await runs in its own copy of the ``contextvars``
        context, with no Task: nothing in it can suspend. Any other chain runs
        in its own Task, started eagerly (``tasks``): one that does not suspend
        is answered before this returns; one that does keeps the connection's
        ``running`` slot until its task ends, and later pipelined requests
        queue meanwhile.
        """
        try:
            chain, sync = self.app.resolve(event)
        except Exception as exc:  # routing failed: answered like a failing handler
            chain, sync = _Raise(exc), True
        if sync:
            copy_context().run(self._serve_sync, event, chain)
        else:
            self._start_task(event, self._serve(event, chain))

    def _start_task(self: Connection, event: H3Event, coro: Coroutine[Any, Any, None]) -> None:
        self._task_pending = event  # until the task's first step (see _request_done)
        task = start_request_task(self.loop, coro)
        if not task.done():
            self.running = task
            task.add_done_callback(self._request_done)

    def _answer_star(self: Connection, event: H3Event) -> None:
        """``OPTIONS *``: answered by the server itself, no handler, no task."""
        self._respond(event, Response(None, 200, [("allow", ALLOW_ALL)]), event.keep_alive)
        self._release(event)

    def _request_done(self: Connection, task: asyncio.Task[Any]) -> None:
        """A request task that suspended has ended (runs outside any task)."""
        if self.running is task:
            self.running = None
        event = self._task_pending
        if event is not None:
            # Cancelled before its first step (the client left at once): the
            # task's own cleanup never ran, so the event is released here.
            self._task_pending = None
            self._release(event)
        if self.running is None:
            self._next_in_queue()

    def _serve_sync(self: Connection, event: H3Event, chain: Any) -> None:
        """One request whose chain cannot await, in its own context: no Task.

        Should it give an awaitable after all (a synchronous callable returning
        a coroutine) or a streaming response, the rest goes to a Task started
        from this context, so it sees what the chain set.
        """
        app = self.app
        keep_alive = event.keep_alive
        try:
            try:
                result = chain(event)
            except Exception as exc:
                response = app.error_response(event, exc)
            except asyncio.CancelledError as exc:  # the handler's own: there is no task
                response = app.error_response(event, exc)
            else:
                if self._respond_fast(event, result, keep_alive):  # never an awaitable
                    self._release(event)
                    return
                if inspect.isawaitable(result):
                    self._start_task(event, self._serve(event, _Given(result)))
                    return
                response = app.response_for(event, result)
            if response.streaming:
                self._start_task(event, self._serve_stream(event, response, keep_alive))
                return
            self._respond(event, response, keep_alive)
        except Exception:
            # A bug of ours while answering: never a hang, never a leak.
            logger.exception("failed to answer %s %s", event.method, event.path)
            self.close()
        self._release(event)

    async def _serve(self: Connection, event: H3Event, chain: Any) -> None:
        """One request, in its own task: chain, response, finish, release."""
        self._task_pending = None  # started: from here on the cleanup is ours
        app = self.app
        keep_alive = event.keep_alive
        try:
            try:
                result = chain(event)
                if type(result) is CoroutineType or inspect.isawaitable(result):
                    result = await result
                    # keep_alive_next may have turned False meanwhile (shutdown,
                    # EOF): then the last response before the close says so.
                    keep_alive = keep_alive and self._more_follows()
            except Exception as exc:
                response = app.error_response(event, exc)
            except asyncio.CancelledError as exc:
                if _cancel_requested():
                    raise  # the client left, or the server is stopping
                response = app.error_response(event, exc)  # the handler's own
            else:
                if self._respond_fast(event, result, keep_alive):
                    return
                response = app.response_for(event, result)
            if response.streaming:
                await self._stream(event, response, keep_alive)
            else:
                self._respond(event, response, keep_alive)
        except asyncio.CancelledError:
            raise  # the client went away (connection_lost cancelled us)
        except Exception:
            # A bug of ours while answering: never a hang, never a leak.
            logger.exception("failed to answer %s %s", event.method, event.path)
            self.close()
        finally:
            self._release(event)

    async def _serve_stream(
        self: Connection, event: H3Event, response: Response, keep_alive: bool
    ) -> None:
        """A streaming response from a synchronous chain, sent in its own task."""
        self._task_pending = None
        try:
            await self._stream(event, response, keep_alive)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("failed to answer %s %s", event.method, event.path)
            self.close()
        finally:
            self._release(event)

    def _next_in_queue(self: Connection) -> None:
        """The request in flight is answered: serve the queued ones, then read again."""
        if self.running is None and self.flow is not None and self.flow.write_paused:
            self.running = WRITE_PAUSED  # the queue waits for resume_writing
            return
        # A request may be arriving meanwhile: its deadline must survive the
        # requests below finishing (they leave a connection idle only from ACTIVE).
        state, since = self.state, self.since
        while self.queue and self.running is None and not self.closing:
            event = self.queue.popleft()
            if not self._more_follows():
                event.keep_alive = False  # the last one before a close says so
            if event.raw_path == "*":  # only OPTIONS * has this target
                self._answer_star(event)
            else:
                self._dispatch(event)
        if self.closing or self.state == LINGER:
            return
        if self.running is None and not self.queue:
            if state in (HEADERS, BODY):
                self.state, self.since = state, since
                if (
                    state == BODY
                    and self._continue_pending is self._req_headers
                    and self.transport is not None
                ):
                    self._continue_pending = None
                    self.transport.write(CONTINUE)
            elif not self.keep_alive_next:
                self._close_when_done()
                return
            elif self.state == ACTIVE:
                self.state = IDLE
                self.since = self.server.now
        if self.flow is not None and len(self.queue) < self.limits.max_pipeline:
            self.flow.resume_reading("pipeline")
            self._input_resumed()

    def _drop_queue(self: Connection) -> None:
        pool = self.pool
        while self.queue:
            pool.release(self.queue.popleft())


class _Given:
    """A chain that gives a value already produced (or raises an exception already caught)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, event: H3Event) -> Any:
        return self.value


class _Raise(_Given):
    def __call__(self, event: H3Event) -> Any:
        raise self.value


def _cancel_requested() -> bool:
    """Is the current task being cancelled (as opposed to a CancelledError that
    a handler's own await raised, which is the handler's failure)?"""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


__all__ = ["CONTINUE", "WRITE_PAUSED", "Cycle", "Stop"]
