"""ConsoleTail: the last lines of a byte stream, kept for the timeout diagnostic."""

from __future__ import annotations

import threading
from collections import deque

__all__ = ("ConsoleTail",)


class ConsoleTail:
    """Remembers the last ``max_lines`` lines (each cut at ``max_line`` bytes) of a stream."""

    def __init__(self, max_lines: int = 20, max_line: int = 512) -> None:
        self._lines: deque[bytes] = deque(maxlen=max_lines)
        self._partial = bytearray()
        self._max_line = max_line
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> list[bytes]:
        """Add stream bytes; return the lines this call completed (without line ends)."""
        done = []
        with self._lock:
            # Only LF ends a line: serial output arrives a byte at a time, CR LF split apart.
            for chunk in data.split(b"\n")[:-1]:
                self._take(chunk)
                done.append(bytes(self._partial).rstrip(b"\r"))
                self._partial.clear()
            self._take(data.rsplit(b"\n", 1)[-1])
            self._lines.extend(done)
        return done

    def _take(self, chunk: bytes) -> None:
        self._partial += chunk[: max(0, self._max_line - len(self._partial))]

    def lines(self) -> list[str]:
        """The remembered lines, oldest first, decoded leniently; an unfinished line is last."""
        with self._lock:
            out = list(self._lines)
            if self._partial:
                out.append(bytes(self._partial).rstrip(b"\r"))
        return [line.decode("utf-8", "replace") for line in out]
