"""Loading a report page in a real headless Chromium (Debian's `chromium`): the DOM after
the page's scripts ran, and every console message the browser logged."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_STATUS = re.compile(r'<div id="rawtcp-status"([^>]*)>')
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


@dataclass
class Loaded:
    dom: str
    console: list[str]          # the browser's CONSOLE log lines (messages and errors)
    status: dict[str, str]      # the attributes of #rawtcp-status

    def tip(self) -> str:
        """The tooltip's text (as textContent holds it)."""
        m = re.search(r'<div id="tip"[^>]*>(.*?)</div>', self.dom, re.S)
        return html.unescape(m.group(1)) if m else ""


def load(page: Path, fragment: str = "", timeout: float = 120) -> Loaded:
    """Load ``page`` (file URL, optional ``#fragment``) in headless Chromium with its own
    throw-away profile; returns the DOM after load and the console lines."""
    assert CHROMIUM, "chromium is not installed (scripts/quickstart installs it)"
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="rawtcp-chromium-") as profile:
        p = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", "--window-size=1200,900", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    m = _STATUS.search(p.stdout)
    status = dict(_ATTR.findall(m.group(1))) if m else {}
    return Loaded(p.stdout, console, status)
