from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from h3lab.event import H3Event
from h3lab.response import Response
from h3lab.utils.sse import EventStream, format_comment, format_sse, sse_response

SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


async def collect(response: Response) -> list[bytes]:
    assert response.streaming
    return [chunk async for chunk in response.body]  # type: ignore[union-attr]


class FakeConn:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


# -- format_sse ---------------------------------------------------------------------------


def test_format_plain_string() -> None:
    assert format_sse("hello") == b"data: hello\n\n"


def test_format_empty_data_still_dispatches() -> None:
    assert format_sse("") == b"data: \n\n"


@pytest.mark.parametrize("text", ["a\nb\nc", "a\r\nb\r\nc", "a\rb\rc"])
def test_format_multiline_data_every_line_ending(text: str) -> None:
    assert format_sse(text) == b"data: a\ndata: b\ndata: c\n\n"


def test_format_full_message_field_order() -> None:
    message = {"data": "x", "retry": 1500, "event": "update", "id": 7}
    assert format_sse(message) == b"id: 7\nevent: update\nretry: 1500\ndata: x\n\n"


def test_format_non_string_data_is_json() -> None:
    assert format_sse({"data": {"n": 1, "s": "é"}}) == 'data: {"n":1,"s":"é"}\n\n'.encode()


def test_format_message_without_data() -> None:
    assert format_sse({"retry": 0}) == b"retry: 0\n\n"


def test_format_list_of_messages() -> None:
    assert format_sse(["a", {"event": "e", "data": "b"}]) == b"data: a\n\nevent: e\ndata: b\n\n"


@pytest.mark.parametrize("bad", ["1\r\ndata: forged", "1\nx", "1\r", "1\x00"])
def test_id_rejects_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(ValueError, match="id"):
        format_sse({"id": bad, "data": "x"})


def test_event_rejects_line_breaks() -> None:
    with pytest.raises(ValueError, match="event"):
        format_sse({"event": "a\n\ndata: injected", "data": "x"})


@pytest.mark.parametrize("retry", [-1, "100", 1.5, True])
def test_retry_validated(retry: Any) -> None:
    with pytest.raises(ValueError, match="retry"):
        format_sse({"retry": retry})


def test_unknown_fields_and_empty_message_rejected() -> None:
    with pytest.raises(ValueError, match="unknown SSE message fields"):
        format_sse({"data": "x", "name": "y"})
    with pytest.raises(ValueError, match="at least one"):
        format_sse({})
    with pytest.raises(TypeError):
        format_sse(42)  # type: ignore[arg-type]


def test_comment() -> None:
    assert format_comment("keepalive") == b": keepalive\n\n"
    assert format_comment("a\nb") == b": a\n: b\n\n"


# -- EventStream -----------------------------------------------------------------------------


async def test_stream_push_close_full_iteration() -> None:
    stream = EventStream(H3Event())
    response = stream.response()
    assert response.status == 200
    assert {k: v for k, v in response.headers} == SSE_HEADERS

    async def produce() -> None:
        await stream.push("one")
        await stream.push({"id": "2", "event": "tick", "data": "two\nlines"})
        await stream.push(["three", "four"])
        await stream.push_comment("keepalive")
        await stream.close()

    task = asyncio.create_task(produce())
    frames = await asyncio.wait_for(collect(response), 2)
    await task
    assert b"".join(frames) == (
        b"data: one\n\n"
        b"id: 2\nevent: tick\ndata: two\ndata: lines\n\n"
        b"data: three\n\ndata: four\n\n"
        b": keepalive\n\n"
    )


async def test_push_before_response_is_delivered() -> None:
    stream = EventStream()
    for i in range(3):
        await stream.push(str(i))
    await stream.close()
    frames = await asyncio.wait_for(collect(stream.to_response()), 2)
    assert frames == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


async def test_push_after_close_is_ignored_but_still_validated() -> None:
    stream = EventStream()
    await stream.push("kept")
    await stream.close()
    await stream.push("dropped")
    await stream.push_comment("dropped")
    await stream.close()  # idempotent
    assert stream.closed
    assert await asyncio.wait_for(collect(stream.response()), 2) == [b"data: kept\n\n"]
    with pytest.raises(ValueError):
        await stream.push({"id": "a\nb"})


async def test_on_closed_runs_once_on_close() -> None:
    stream = EventStream()
    calls: list[str] = []

    async def async_cb() -> None:
        calls.append("async")

    stream.on_closed(lambda: calls.append("sync"))
    stream.on_closed(async_cb)
    await stream.close()
    await stream.close()
    assert calls == ["sync", "async"]
    stream.on_closed(lambda: calls.append("late"))  # already closed: runs at once
    assert calls == ["sync", "async", "late"]


async def test_failing_callback_does_not_stop_others() -> None:
    stream = EventStream()
    calls: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    stream.on_closed(boom)
    stream.on_closed(lambda: calls.append("ran"))
    await stream.close()
    assert calls == ["ran"]


async def test_client_gone_closes_stream_and_runs_callbacks() -> None:
    stream = EventStream(H3Event())
    closed = asyncio.Event()
    stream.on_closed(closed.set)
    body = stream.response().body
    iterator = body.__aiter__()  # type: ignore[union-attr]
    await stream.push("first")
    await stream.push("unread")
    assert await iterator.__anext__() == b"data: first\n\n"
    await iterator.aclose()  # what the server does when the client disconnects
    assert closed.is_set()
    assert stream.closed
    await stream.push("ignored")  # the producer's next push is a no-op


async def test_disconnected_event_stops_producer() -> None:
    event = H3Event()
    conn = FakeConn()
    event.conn = conn
    stream = EventStream(event)
    response = stream.response()
    calls: list[bool] = []
    stream.on_closed(lambda: calls.append(True))
    await stream.push("a")
    conn.closing = True
    await stream.push("b")  # notices the disconnect
    assert stream.closed
    assert calls == [True]
    assert await asyncio.wait_for(collect(response), 2) == []


async def test_waiting_reader_ends_when_producer_sees_disconnect() -> None:
    event = H3Event()
    conn = FakeConn()
    event.conn = conn
    stream = EventStream(event)
    reader = asyncio.create_task(collect(stream.response()))
    await asyncio.sleep(0.01)  # the reader is now waiting on an empty queue
    conn.closing = True
    await stream.push("never sent")
    assert await asyncio.wait_for(reader, 2) == []


async def test_backpressure_with_max_buffered() -> None:
    stream = EventStream(max_buffered=2)
    body = stream.response().body
    iterator = body.__aiter__()  # type: ignore[union-attr]
    await stream.push("1")
    await stream.push("2")
    third = asyncio.create_task(stream.push("3"))
    await asyncio.sleep(0.01)
    assert not third.done()  # waits for the reader
    assert await iterator.__anext__() == b"data: 1\n\n"
    await asyncio.wait_for(third, 2)
    await stream.close()
    rest = [frame async for frame in iterator]
    assert rest == [b"data: 2\n\n", b"data: 3\n\n"]


async def test_blocked_producer_released_when_client_leaves() -> None:
    stream = EventStream(max_buffered=1)
    iterator = stream.response().body.__aiter__()  # type: ignore[union-attr]
    await stream.push("1")
    blocked = asyncio.create_task(stream.push("2"))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert await iterator.__anext__() == b"data: 1\n\n"
    await iterator.aclose()
    await asyncio.wait_for(blocked, 2)
    assert stream.closed


async def test_response_only_once() -> None:
    stream = EventStream()
    stream.response()
    with pytest.raises(RuntimeError):
        stream.response()


def test_max_buffered_validated() -> None:
    with pytest.raises(ValueError):
        EventStream(max_buffered=0)


# -- sse_response -----------------------------------------------------------------------------


async def test_sse_response_from_async_generator() -> None:
    async def messages() -> AsyncIterator[Any]:
        yield "hello"
        yield {"event": "done", "data": [1, 2]}

    response = sse_response(messages())
    assert {k: v for k, v in response.headers} == SSE_HEADERS
    frames = await collect(response)
    assert frames == [b"data: hello\n\n", b"event: done\ndata: [1,2]\n\n"]


async def test_sse_response_closes_source_when_client_leaves() -> None:
    finished: list[bool] = []

    async def messages() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
        finally:
            finished.append(True)

    iterator = sse_response(messages()).body.__aiter__()  # type: ignore[union-attr]
    assert await iterator.__anext__() == b"data: tick\n\n"
    await iterator.aclose()
    assert finished == [True]
