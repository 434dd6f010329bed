"""Headless Chromium (Debian's `chromium`, installed by `make test-tools`) driven through the Chrome
DevTools Protocol over its remote-debugging WebSocket: navigate, type, click, read the page's text
after its JavaScript ran, and take screenshots. Every wait has a timeout."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking")


class Browser:
    """One Chromium process with one page; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000, start_timeout_s: float = 30) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            raise FileNotFoundError("chromium is not installed: `make test-tools` installs it (Debian's chromium)")
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.process = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = self._devtools_port(start_timeout_s)
            pages = [
                t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"
            ]
            self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        except BaseException:
            self._stop()
            raise
        self._ids = itertools.count(1)
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_port(self, timeout_s: float) -> int:
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not (active.exists() and active.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"chromium did not open its DevTools port within {timeout_s:.0f}s")
            time.sleep(0.1)
        return int(active.read_text().splitlines()[0])

    def call(self, method: str, timeout_s: float = 60, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events received meanwhile are dropped)."""
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """What the page shows (document.body.innerText) now; empty while it is being replaced."""
        try:
            return self.evaluate("document.body ? document.body.innerText : ''") or ""
        except RuntimeError as error:
            if "navigated" in str(error) or "context" in str(error).lower():
                return ""
            raise

    def wait_until(self, shows: Callable[[str], bool], what: str, timeout_s: float = 60) -> str:
        """Wait until the page's text satisfies `shows`; return that text."""
        deadline = time.monotonic() + timeout_s
        while True:
            shown = self.text()
            if shows(shown):
                return shown
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"after {timeout_s:.0f}s the page still does not show {what}; it shows: {shown[:2000]!r}"
                )
            time.sleep(0.5)

    def wait_for_text(self, *texts: str, timeout_s: float = 60) -> str:
        """Wait until the page shows every one of `texts`; return the page's text."""
        return self.wait_until(lambda shown: all(text in shown for text in texts), repr(list(texts)), timeout_s)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type `text` as keyboard input."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def click_button(self, label: str) -> None:
        found = self.evaluate(
            "(() => { const b = [...document.querySelectorAll('button')]"
            f".find(b => b.innerText.trim().toLowerCase() === {json.dumps(label.lower())});"
            " if (b) { b.click(); } return Boolean(b); })()"
        )
        if not found:
            raise LookupError(f"no button labelled {label!r}")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def _stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)

    def close(self) -> None:
        self.socket.close()
        self._stop()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
