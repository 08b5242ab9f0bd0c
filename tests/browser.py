"""A real headless Chromium for tests, driven over the DevTools protocol (aiohttp's websocket
client): load a page, see every request it makes and every console message, measure elements,
take a screenshot.

Debian's chromium (``/usr/bin/chromium``, apt-get install chromium); nothing is downloaded. The
flags keep it from reaching out on its own (the machine's network is closed: background
networking would otherwise flood the log with refusals) and give it a fresh profile.
"""

import asyncio
import base64
import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 60.0


@dataclass
class PageLoad:
    """What loading one page showed."""

    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)
    evaluated: Any = None  # the value of the expression evaluated after the load
    screenshot: Path | None = None

    @property
    def errors(self) -> list[str]:
        return [
            *self.exceptions,
            *(f"{level}: {text}" for level, text in self.console if level in ("error", "warning")),
        ]


def available() -> bool:
    return Path(CHROMIUM).exists()


def load(url: str, expression: str, screenshot: Path, width: int = 1200) -> PageLoad:
    """Load ``url``, evaluate ``expression`` (JSON-returnable) once loaded, screenshot the
    whole page to ``screenshot`` (PNG)."""
    return asyncio.run(asyncio.wait_for(_load(url, expression, screenshot, width), 180))


class _Cdp:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.pending:
                future = self.pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                await self.events.put(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        message_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        return await asyncio.wait_for(future, LOAD_TIMEOUT_S)


async def _load(url: str, expression: str, screenshot: Path, width: int) -> PageLoad:
    import aiohttp

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            endpoint = await asyncio.wait_for(_devtools_url(process), START_TIMEOUT_S)
            drain = asyncio.create_task(_drain(process))
            async with (
                aiohttp.ClientSession() as client,
                client.ws_connect(endpoint, max_msg_size=0) as ws,
            ):
                cdp = _Cdp(ws)
                reader = asyncio.create_task(cdp.read())
                page = await _visit(cdp, url, expression, screenshot, width)
                await cdp.send("Browser.close")
                reader.cancel()
            await asyncio.wait_for(process.wait(), 30)
            drain.cancel()
            return page
        finally:
            if process.returncode is None:
                process.kill()  # ours, by its own handle
                await process.wait()


async def _visit(cdp: _Cdp, url: str, expression: str, screenshot: Path, width: int) -> PageLoad:
    target = await cdp.send("Target.createTarget", url="about:blank")
    attached = await cdp.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
    session = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        await cdp.send(f"{domain}.enable", session)
    await cdp.send(
        "Emulation.setDeviceMetricsOverride",
        session,
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    page = PageLoad()
    await cdp.send("Page.navigate", session, url=url)
    loaded = False
    while not loaded:
        event = await asyncio.wait_for(cdp.events.get(), LOAD_TIMEOUT_S)
        loaded = _record(event, page)
    # Late requests or messages (e.g. a lazily loaded resource) still count.
    await asyncio.sleep(0.5)
    while not cdp.events.empty():
        _record(cdp.events.get_nowait(), page)
    result = await cdp.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
    page.evaluated = result.get("result", {}).get("value")
    shot = await cdp.send(
        "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
    )
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    page.screenshot = screenshot
    return page


def _record(event: dict[str, Any], page: PageLoad) -> bool:
    """Note what ``event`` says; True when it is the page's load event."""
    method, params = event["method"], event.get("params", {})
    if method == "Network.requestWillBeSent":
        page.requests.append(params["request"]["url"])
    elif method == "Runtime.consoleAPICalled":
        text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        page.console.append((params["type"], text))
    elif method == "Log.entryAdded":
        page.console.append((params["entry"]["level"], params["entry"]["text"]))
    elif method == "Runtime.exceptionThrown":
        page.exceptions.append(json.dumps(params["exceptionDetails"])[:500])
    return method == "Page.loadEventFired"


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    while True:
        line = (await process.stderr.readline()).decode(errors="replace")
        if not line:
            raise RuntimeError(f"chromium exited ({await process.wait()}) before DevTools")
        if "DevTools listening on " in line:
            return line.split("DevTools listening on ", 1)[1].strip()


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass
