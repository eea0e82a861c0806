"""Look at an HTML page as a person would: headless Chromium (Debian's package, installed by
``./schedlab test`` as root) renders it to a PNG; helpers judge the picture and the page."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image, ImageStat

from tests.framework.prereq import missing

__all__ = ("external_references", "pixel_stats", "screenshot")

# The flags this machine's Chromium needs headless, and nothing that talks to the network.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    missing(
        "chromium is not installed (./schedlab test installs it as root; or apt-get install chromium)"
    )


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1200, 1000)) -> Path:
    """``page`` rendered by headless Chromium (a fresh profile each time) into ``png``."""
    with tempfile.TemporaryDirectory(prefix="schedlab-chromium-") as profile:
        proc = subprocess.run(
            [
                _chromium(),
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                f"--screenshot={png}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    return png


def pixel_stats(png: Path) -> tuple[float, float]:
    """(standard deviation of the grey levels, fraction of pixels that are not background)."""
    with Image.open(png) as img:
        grey = img.convert("L")
        std = ImageStat.Stat(grey).stddev[0]
        hist = grey.histogram()
    background = max(range(256), key=lambda v: hist[v])
    inked = 1 - hist[background] / sum(hist)
    return std, inked


class _Refs(HTMLParser):
    """Attributes that make a browser fetch something."""

    _ATTRS = ("src", "href", "xlink:href", "action", "poster", "srcset", "data", "formaction")

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self._ATTRS and value:
                self.refs.append(f"<{tag} {name}={value}>")


def external_references(html: str) -> list[str]:
    """Everything in the page that names something outside it: URLs with a scheme (but
    ``data:``, which holds its content) or a network path in fetching attributes, CSS url() and @import of anything but a fragment,
    and any http(s):// text at all."""
    parser = _Refs()
    parser.feed(html)
    bad = [
        r
        for r in parser.refs
        if re.search(r"=([a-z][a-z0-9+.-]*:|//)", r, re.I) and not re.search(r"=data:", r, re.I)
    ]
    bad += [m for m in re.findall(r"url\(\s*['\"]?([^)'\"]*)", html) if not m.startswith("#")]
    bad += re.findall(r"@import[^;]*", html)
    bad += re.findall(r"https?://[^\s\"'<>]*", html)
    return bad
