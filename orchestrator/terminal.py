"""The user's terminal during ``schedlab shell``: raw while the guest's shell runs, restored
however the session ends (normal exit, an exception, SIGTERM/SIGHUP, or at interpreter exit).

SIGKILL cannot be caught: a watcher process (:mod:`orchestrator.tty_guard`) restores the
terminal then.
"""

from __future__ import annotations

import atexit
import os
import signal
import termios
import tty
from collections.abc import Callable
from types import FrameType
from typing import Any

from .tty_guard import TtyGuard, start_tty_guard

__all__ = ("RawTerminal", "window_size")


def window_size(fd: int) -> tuple[int, int]:
    """``(rows, cols)`` of the terminal on ``fd``; ``(24, 80)`` if it is none."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    return size.lines or 24, size.columns or 80


class RawTerminal:
    """Raw mode on ``fd`` (if a terminal) from :meth:`enter` until :meth:`restore`.

    :param fd: the terminal (stdin).
    :param on_winch: called on SIGWINCH with the new ``(rows, cols)``.
    """

    def __init__(self, fd: int, on_winch: Callable[[int, int], None] | None = None) -> None:
        self.fd = fd
        self.on_winch = on_winch
        self._saved: list[Any] | None = None
        self._handlers: dict[int, Any] = {}
        self._guard: TtyGuard | None = None

    @property
    def raw(self) -> bool:
        return self._saved is not None

    def enter(self) -> None:
        """Save the settings and go raw (nothing when ``fd`` is not a terminal)."""
        if self._saved is not None or not os.isatty(self.fd):
            return
        self._saved = termios.tcgetattr(self.fd)
        atexit.register(self.restore)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._handlers[sig] = signal.signal(sig, self._on_fatal)
        self._handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_winch)
        self._guard = start_tty_guard(self.fd, self._saved)  # before raw: no unguarded moment
        tty.setraw(self.fd, termios.TCSANOW)
        if self._guard is not None:
            self._guard.armed(termios.tcgetattr(self.fd))

    def _on_fatal(self, signum: int, _frame: FrameType | None) -> None:
        self.restore()
        raise KeyboardInterrupt  # the session's orderly teardown, exit 130

    def _on_winch(self, _signum: int, _frame: FrameType | None) -> None:
        if self.on_winch is not None:
            self.on_winch(*window_size(self.fd))

    def restore(self) -> None:
        """Put the saved settings back and the signal handlers (idempotent)."""
        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass
        guard, self._guard = self._guard, None
        if guard is not None:  # after the restore: killed in between, it finds them restored
            guard.release()
        for sig, old in self._handlers.items():
            signal.signal(sig, old)
        self._handlers.clear()

    def __enter__(self) -> RawTerminal:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.restore()
