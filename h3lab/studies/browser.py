"""Open a page in headless Chromium and check it as a reader would see it.

``check_page(path)`` starts Debian's ``chromium`` (headless, sandbox off,
no network services, a throw-away profile), drives it through the DevTools
protocol over a websocket (aiohttp's client), and reports

* every ``<img>``: did it load (``complete`` and ``naturalWidth > 0``)?
* every console error, uncaught exception and failed resource load;
* a full-page screenshot, when asked for.

Used by ``h3lab study report --check`` and by the report's browser test.
The browser is started by this module and always terminated by its pid.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--window-size=1280,1600",
)
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")
MAX_SCREENSHOT_HEIGHT = 16_000


class BrowserUnavailable(RuntimeError):
    """No Chromium on this machine (apt-get install chromium)."""


@dataclass
class PageCheck:
    url: str
    title: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["ok"]]

    @property
    def ok(self) -> bool:
        return not self.broken_images and not self.console_errors


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Devtools:
    """A minimal DevTools-protocol client: numbered commands, buffered events."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_str(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(
                self.ws.receive_json(), max(0.1, deadline - time.monotonic())
            )
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    async def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(
                self.ws.receive_json(), max(0.1, deadline - time.monotonic())
            )
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    async def drain(self, seconds: float) -> None:
        """Collect events for ``seconds`` (late console errors, image decodes)."""
        end = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := end - time.monotonic()) > 0:
                msg = await asyncio.wait_for(self.ws.receive_json(), left)
                if "method" in msg:
                    self.events.append(msg)


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            out.append(
                "console."
                + params["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            out.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"log: {entry.get('text', '')} {entry.get('url', '')}".strip())
    return out


async def _check(ws_url: str, url: str, screenshot: Path | None, timeout: float) -> PageCheck:
    import aiohttp

    result = PageCheck(url)
    async with aiohttp.ClientSession() as session:
        # The browser endpoint: create a page target and attach to it (flattened session).
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            browser = _Devtools(ws)
            target = await browser.call("Target.createTarget", url="about:blank")
            port = re.search(r":(\d+)/", ws_url)
            assert port is not None
            page_ws = f"ws://127.0.0.1:{port.group(1)}/devtools/page/{target['targetId']}"
        async with session.ws_connect(page_ws, max_msg_size=0) as ws:
            page = _Devtools(ws)
            for domain in ("Page", "Runtime", "Log"):
                await page.call(f"{domain}.enable")
            await page.call("Page.navigate", url=url)
            await page.wait_event("Page.loadEventFired", timeout)
            await page.drain(0.5)
            evaluated = await page.call(
                "Runtime.evaluate",
                expression=(
                    "JSON.stringify({title: document.title, images: Array.from(document.images).map("
                    "i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,"
                    " width: i.naturalWidth}))})"
                ),
                returnByValue=True,
            )
            value = json.loads(evaluated["result"]["value"])
            result.title = value["title"]
            result.images = value["images"]
            if screenshot is not None:
                metrics = await page.call("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
                height = min(MAX_SCREENSHOT_HEIGHT, int(size.get("height", 1600)))
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=1280,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                shot = await page.call(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=True
                )
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                result.screenshot = screenshot
            await page.drain(0.2)
            result.console_errors = _console_errors(page.events)
    return result


def check_page(
    path_or_url: str | Path,
    screenshot: str | Path | None = None,
    chromium: str | None = None,
    timeout: float = 60.0,
) -> PageCheck:
    """Load a file (or URL) in headless Chromium: images, console errors, optional screenshot."""
    from h3lab.bench.load import run_async

    binary = chromium or find_chromium()
    if binary is None:
        raise BrowserUnavailable("no chromium found (Debian: apt-get install chromium)")
    target = str(path_or_url)
    url = target if re.match(r"^[a-z]+://", target) else Path(target).resolve().as_uri()
    shot = Path(screenshot) if screenshot is not None else None
    # ignore_cleanup_errors: a renderer may still flush its profile files while exiting.
    with tempfile.TemporaryDirectory(
        prefix="h3lab-chromium-", ignore_cleanup_errors=True
    ) as profile:
        argv = [
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        # Its own process group: the browser's helper processes are stopped with it.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            ws_url = _wait_devtools(proc, timeout)
            return run_async(lambda: _check(ws_url, url, shot, timeout))
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the browser's process group (ours: started with a new session), then SIGKILL."""
    import os
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(0.2)  # helpers leave with the group; let them release the profile


def _wait_devtools(proc: subprocess.Popen[str], timeout: float) -> str:
    """The browser's DevTools websocket URL, read from its stderr by a drain thread.

    The thread keeps reading after the URL is found: a browser blocked on a
    full stderr pipe would stop answering.
    """
    import queue
    import threading

    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def drain(stream: Any) -> None:
        for line in iter(stream.readline, ""):
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, args=(proc.stderr,), daemon=True).start()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line.rstrip())
        match = _DEVTOOLS.search(line)
        if match:
            return match.group(1)
    raise BrowserUnavailable(
        "chromium did not start its DevTools endpoint:\n" + "\n".join(seen[-20:])
    )
