"""Headless Chromium for tests that look at a page as a person would: text, screenshot, and
every network request the page made.

Why the DevTools protocol directly and not Selenium: the tests need the page's network
requests (to prove a report loads nothing from outside), which WebDriver does not expose
without vendor logging options, and the protocol is a websocket of JSON messages that aiohttp
(already a dependency) speaks. Debian's ``chromium`` is the only thing installed for it
(``deploy/bootstrap.sh``); nothing is downloaded.

Each :class:`Browser` is a fresh Chromium with its own throwaway profile, started with the flags
that keep it quiet and local (no first-run, no background networking, no component updates, no
sync, no QUIC), so the only requests it makes are the page's own. Use::

    async with Browser() as browser:
        page = await browser.open(url)
        text = await page.text()
        await page.screenshot(path)
        await page.wait_for_text("v2")           # a page that updates itself
        assert page.requests == [url]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--password-store=basic",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
INSTALL_HINT = "apt-get install chromium (deploy/bootstrap.sh does it)"


class BrowserError(RuntimeError):
    pass


def chromium_path() -> str:
    """The Chromium binary, or a failure that says how to install it (never a skip)."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found is None:
        raise BrowserError(f"Chromium is not installed: {INSTALL_HINT}")
    return found


class Page:
    """One tab: its requests, its text, its pixels."""

    def __init__(self, browser: Browser, session: str) -> None:
        self._browser = browser
        self._session = session
        self.requests: list[str] = []  # every URL the page asked for, in order
        self.failed: list[str] = []  # requests that did not load
        self._loaded = asyncio.Event()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser._call(method, params, session=self._session)

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            self.failed.append(params.get("errorText", ""))
        elif method == "Page.loadEventFired":
            self._loaded.set()

    async def goto(self, url: str, timeout: float = 20) -> None:
        self._loaded.clear()
        answer = await self.call("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        async with asyncio.timeout(timeout):
            await self._loaded.wait()

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def text(self) -> str:
        """What a person reads: the rendered text of the page (``innerText``)."""
        return str(await self.evaluate("document.body ? document.body.innerText : ''"))

    async def html(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page, not only the viewport, by default)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        answer = await self.call("Page.captureScreenshot", **params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path

    async def print_pdf(self, path: Path) -> Path:
        """The page as printed (its print style sheet applies)."""
        answer = await self.call("Page.printToPDF", printBackground=False)
        path.write_bytes(base64.b64decode(answer["data"]))
        return path

    async def wait_for(
        self, check: Callable[[str], bool], timeout: float = 20, interval: float = 0.1
    ) -> str:
        """Wait until the page's text satisfies ``check`` (a page that updates itself);
        return that text, or fail with the text it had."""
        text = ""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    text = await self.text()
                    if check(text):
                        return text
                    await asyncio.sleep(interval)
        except TimeoutError:
            raise BrowserError(f"page text did not change as expected: {text[:500]!r}") from None

    async def wait_for_text(self, needle: str, timeout: float = 20) -> str:
        return await self.wait_for(lambda text: needle in text, timeout)

    async def wait_for_change(self, before: str, timeout: float = 20) -> str:
        return await self.wait_for(lambda text: text != before, timeout)


class Browser:
    """A headless Chromium of its own, driven over the DevTools protocol."""

    def __init__(self, *, width: int = 1000, height: int = 800) -> None:
        self.width, self.height = width, height
        self._profile: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self, timeout: float = 30) -> None:
        self._profile = Path(tempfile.mkdtemp(prefix="larmkedja-chromium-"))
        self._process = await asyncio.create_subprocess_exec(
            chromium_path(),
            *FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
        port_file = self._profile / "DevToolsActivePort"
        async with asyncio.timeout(timeout):
            while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
                if self._process.returncode is not None:
                    raise BrowserError(f"Chromium exited at start ({self._process.returncode})")
                await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            waiter = self._waiting.pop(data["id"], None) if "id" in data else None
            if waiter is not None and not waiter.done():
                if "error" in data:
                    waiter.set_exception(BrowserError(str(data["error"])))
                else:
                    waiter.set_result(data.get("result", {}))
                continue
            page = self._pages.get(data.get("sessionId", ""))
            if page is not None and "method" in data:
                page._event(data["method"], data.get("params", {}))
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(BrowserError("Chromium closed the connection"))

    async def _call(
        self, method: str, params: dict[str, Any], *, session: str | None = None
    ) -> dict[str, Any]:
        assert self._ws is not None
        ident = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = waiter
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        async with asyncio.timeout(30):
            return await waiter

    async def new_page(self) -> Page:
        target = await self._call("Target.createTarget", {"url": "about:blank"})
        attached = await self._call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        self._pages[page._session] = page
        for domain in ("Page", "Network", "Runtime"):
            await page.call(f"{domain}.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return page

    async def open(self, url: str) -> Page:
        """A new tab with ``url`` loaded (its requests recorded from the first one)."""
        page = await self.new_page()
        await page.goto(url)
        return page

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._call("Browser.close", {}), 5)
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._http is not None:
            await self._http.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
