"""Server-Sent Events (HTML Living Standard §9.2).

Three levels:

* ``format_sse(message) -> bytes``: one frame (pure, for tests and for
  custom streaming code).
* ``sse_response(async_iterable) -> Response``: when the messages already
  come from an async generator.
* ``EventStream(event)``: push-style, for producers that run elsewhere::

      async def handler(event):
          stream = EventStream(event)
          asyncio.create_task(produce(stream))   # push(...), then close()
          return stream.response()

A message is a ``str`` (the data), or a mapping with any of ``id``,
``event``, ``data``, ``retry``; a list of messages is sent in order. Data that
is not a ``str`` is JSON-encoded. Multi-line data becomes one ``data:`` line
per line, which the browser joins back with ``\\n``. ``id`` and ``event`` may
not contain CR/LF (that would start a new field or frame), so they raise
``ValueError`` instead of being cleaned up silently.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from h3lab.response import Response, json_encode

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = ["SSE_HEADERS", "EventStream", "format_comment", "format_sse", "sse_response"]

logger = logging.getLogger("h3lab.sse")

SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    # nginx buffers proxied responses by default, which would hold events back.
    ("x-accel-buffering", "no"),
)

Message = str | Mapping[str, Any]
Messages = Message | Sequence[Message]

_FIELDS = frozenset(("id", "event", "data", "retry"))
# The SSE parser splits lines on CRLF, LF and CR alike.
_LINES_RE = re.compile(r"\r\n|\r|\n")


def format_sse(message: Messages) -> bytes:
    """Encode one message (or a list of messages) as SSE frames."""
    if isinstance(message, str | Mapping):
        return _format_one(message).encode()
    if isinstance(message, Sequence):
        return b"".join(_format_one(item).encode() for item in message)
    raise TypeError(f"an SSE message is a str, a mapping or a list, got {type(message).__name__}")


def format_comment(text: str) -> bytes:
    """A comment frame (``: text``), ignored by clients; used as a keep-alive."""
    return "".join(f": {line}\n" for line in _LINES_RE.split(str(text))).encode() + b"\n"


def _format_one(message: Message) -> str:
    if isinstance(message, str):
        return _data_lines(message) + "\n"
    if not isinstance(message, Mapping):
        raise TypeError(f"an SSE message is a str or a mapping, got {type(message).__name__}")
    unknown = set(message) - _FIELDS
    if unknown:
        raise ValueError(
            f"unknown SSE message fields {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
        )
    if not message:
        raise ValueError("an SSE message needs at least one of id, event, data, retry")
    out = []
    if message.get("id") is not None:
        out.append(f"id: {_single_line('id', message['id'])}\n")
    if message.get("event") is not None:
        out.append(f"event: {_single_line('event', message['event'])}\n")
    if message.get("retry") is not None:
        out.append(f"retry: {_retry(message['retry'])}\n")
    if message.get("data") is not None:
        out.append(_data_lines(message["data"]))
    out.append("\n")
    return "".join(out)


def _data_lines(data: Any) -> str:
    text = data if isinstance(data, str) else json_encode(data)
    return "".join(f"data: {line}\n" for line in _LINES_RE.split(text))


def _single_line(field: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"SSE {field} must be a str or int, got {value!r}")
    text = str(value)
    # NUL makes browsers ignore an id; CR/LF would inject fields or frames.
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"SSE {field} must not contain CR, LF or NUL: {text!r}")
    return text


def _retry(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"SSE retry must be a non-negative int (milliseconds), got {value!r}")
    return value


def _response(body: AsyncIterator[bytes]) -> Response:
    return Response(body, 200, list(SSE_HEADERS))


def sse_response(messages: AsyncIterable[Messages]) -> Response:
    """Stream every message an async iterable yields as SSE."""

    async def frames() -> AsyncIterator[bytes]:
        iterator = aiter(messages)
        try:
            async for message in iterator:
                yield format_sse(message)
        finally:
            # The client may have gone: stop the producer too (and run its
            # finally blocks) instead of leaving it suspended forever.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    return _response(frames())


_CLOSE: Any = object()


class EventStream:
    """A push-style SSE stream backed by a bounded ``asyncio.Queue`` of encoded frames.

    ``push`` waits while ``max_buffered`` frames (default 64) are queued:
    backpressure, so a fast producer and a slow (or absent) client never grow
    memory without bound. Push at most that many frames before returning
    ``stream.response()``, or push from a task.

    The stream closes once: on ``close()``, when the client goes away (the
    server stops iterating or ``event.disconnected`` turns true), when the
    iteration ends, or when the server drops the body without reading it
    (HEAD, a failure before the first frame): it then calls the body's
    ``aclose()``. Then every ``on_closed`` callback runs, later pushes are
    ignored (a producer blocked on backpressure wakes up), and frames not yet
    read by a gone client are dropped. The response head is sent with the
    first frame (the server commits the status once the body has produced
    something): push a comment (``push_comment``) to open the stream at once.
    """

    def __init__(self, event: H3Event | None = None, *, max_buffered: int = 64) -> None:
        if isinstance(max_buffered, bool) or not isinstance(max_buffered, int) or max_buffered < 1:
            raise ValueError(f"max_buffered must be an int >= 1, got {max_buffered!r}")
        # The event goes back to the pool (and is reused) after the response
        # ends, so it is only consulted while the stream is open.
        self._event = event
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._max_buffered = max_buffered
        self._drained = asyncio.Event()
        self._closed = False
        self._callbacks: list[Callable[[], Any]] = []
        self._response_made = False
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def push(self, message: Messages) -> None:
        """Queue one message or a list of messages (ignored once closed)."""
        frame = format_sse(message)  # validate even when closed: bad input is a bug
        await self._enqueue(frame)

    async def push_comment(self, text: str) -> None:
        await self._enqueue(format_comment(text))

    def on_closed(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` (sync or async) when the stream closes; at once if it has."""
        if self._closed:
            self._run_callback_soon(callback)
        else:
            self._callbacks.append(callback)

    async def close(self) -> None:
        """End the stream: frames already pushed are still delivered, then EOF."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(_CLOSE)
        self._drained.set()
        await self._run_callbacks()

    def response(self) -> Response:
        """The streaming ``Response``; one per stream (its queue has one reader)."""
        if self._response_made:
            raise RuntimeError("EventStream.response() was already called")
        self._response_made = True
        return _response(_Frames(self))

    to_response = response

    async def _enqueue(self, frame: bytes) -> None:
        if self._closed:
            return
        event = self._event
        if event is not None and event.disconnected:
            await self._abort()
            return
        limit = self._max_buffered
        while self._queue.qsize() >= limit and not self._closed:
            self._drained.clear()
            await self._drained.wait()
        if not self._closed:
            self._queue.put_nowait(frame)

    async def _next_frame(self) -> bytes:
        """The next frame for the reader; ``StopAsyncIteration`` at the end."""
        if self._closed and self._queue.empty():
            raise StopAsyncIteration  # closed by a disconnect while we were not waiting
        frame = await self._queue.get()
        if frame is _CLOSE:
            raise StopAsyncIteration
        self._drained.set()
        return frame

    async def _abort(self) -> None:
        """Close because the reader is gone (or done): drop unread frames."""
        self._event = None
        while not self._queue.empty():
            self._queue.get_nowait()
        if self._closed:
            return
        self._closed = True
        # Wake a reader blocked on the empty queue (a producer noticed the
        # disconnect first); harmless when the reader has already gone.
        self._queue.put_nowait(_CLOSE)
        self._drained.set()  # wake producers blocked on backpressure
        await self._run_callbacks()

    async def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # One failing cleanup must not skip the others or break the
                # response that is being finished.
                logger.exception("EventStream on_closed callback failed")

    def _run_callback_soon(self, callback: Callable[[], Any]) -> None:
        # Registered after the stream closed: run it now. An async callback
        # becomes a task, kept referenced until done (the loop only holds
        # weak references to tasks).
        try:
            result = callback()
        except Exception:
            logger.exception("EventStream on_closed callback failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_await_logged(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class _Frames:
    """The stream's body: an async iterator whose ``aclose`` closes the stream.

    Not an async generator on purpose: ``aclose()`` on a generator that never
    started runs none of its code, so a body the server drops unread (HEAD)
    would leave the producer pushing forever. Here it always closes.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _Frames:
        return self

    async def __anext__(self) -> bytes:
        stream = self._stream
        try:
            return await stream._next_frame()
        except BaseException:
            # The end, the client gone (cancellation) or a failure: closed.
            await stream._abort()
            raise

    async def aclose(self) -> None:
        await self._stream._abort()


async def _await_logged(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("EventStream on_closed callback failed")
