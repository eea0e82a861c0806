"""Progress of a long command, in the form its reader needs.

- ``tty``: one spinner line that changes in place (a person at a terminal);
- ``plain``: a timestamped line per change, flushed at once (CI logs, pipes);
- ``json``: one JSON object per line on stdout (machines), ending with a ``done`` event;
- ``auto``: ``tty`` when stdout and stderr are terminals, else ``plain``.

Every reporter is called as ``progress(phase, detail)`` and says each state once.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any, TextIO

from rich.console import Console

__all__ = ("MODES", "Reporter", "make_reporter", "resolve_mode")

MODES = ("auto", "tty", "plain", "json")


def resolve_mode(mode: str, stdout: TextIO | None = None, stderr: TextIO | None = None) -> str:
    """The concrete mode for ``mode`` (``auto`` looks at the two streams)."""
    if mode != "auto":
        return mode
    out, err = stdout or sys.stdout, stderr or sys.stderr
    return "tty" if _isatty(out) and _isatty(err) else "plain"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


class Reporter:
    """Base: remembers the last state so a repeated one is not reported again."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._last: tuple[str, str] | None = None

    def __call__(self, phase: str, detail: str) -> None:
        if (phase, detail) != self._last:
            self._last = (phase, detail)
            self._show(phase, detail)

    def _show(self, phase: str, detail: str) -> None:
        raise NotImplementedError

    def done(self, **fields: Any) -> None:  # noqa: ANN401
        """The command finished; ``fields`` describe the outcome (json mode prints them)."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop drawing (the spinner); idempotent."""


class SpinnerReporter(Reporter):
    def __init__(self, console: Console, initial: str = "preparing") -> None:
        super().__init__()
        self._status = console.status(initial)
        self._status.start()
        self._live = True

    def _show(self, phase: str, detail: str) -> None:
        self._status.update(f"[bold]{phase}[/] {detail}")

    def close(self) -> None:
        if self._live:
            self._live = False
            self._status.stop()


class LineReporter(Reporter):
    """``HH:MM:SS.mmm +ELAPSED phase: detail`` lines."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def _show(self, phase: str, detail: str) -> None:
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        self.stream.write(f"{stamp} +{time.monotonic() - self.t0:6.1f}s {phase}: {detail}\n")
        self.stream.flush()


class JsonReporter(Reporter):
    """``{"event": "progress", "time", "elapsed_s", "phase", "detail"}`` lines, then ``done``."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def _emit(self, event: str, fields: dict[str, Any]) -> None:
        line = {
            "event": event,
            "time": round(time.time(), 3),
            "elapsed_s": round(time.monotonic() - self.t0, 3),
            **fields,
        }
        self.stream.write(json.dumps(line, default=str) + "\n")
        self.stream.flush()

    def _show(self, phase: str, detail: str) -> None:
        self._emit("progress", {"phase": phase, "detail": detail})

    def done(self, **fields: Any) -> None:  # noqa: ANN401
        self._emit("done", fields)


def make_reporter(mode: str, console: Console) -> Reporter:
    """A reporter for ``mode`` (one of :data:`MODES`); human text goes to ``console``."""
    mode = resolve_mode(mode)
    if mode == "tty":
        return SpinnerReporter(console)
    if mode == "json":
        return JsonReporter(sys.stdout)
    return LineReporter(console.file)
