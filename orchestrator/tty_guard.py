"""A watcher that puts the user's terminal back when ``schedlab shell`` dies without doing it
(SIGKILL, a crash in C code): a SIGKILLed process cannot restore anything itself.

The watcher is a tiny process in its own session (a Ctrl-C, a SIGHUP or a kill of the
terminal's process group does not reach it) holding a copy of the terminal's fd, the saved
settings and the read end of a pipe whose only write end the shell keeps. The shell tells it
the raw settings it applied (``raw`` line) and, after its own orderly restore, ``release``.
EOF without ``release`` means the shell died: the watcher restores the saved settings, but
only while the terminal still has the raw ones, so a parent shell that already restored or
changed them (bash does after a job killed by a signal, readline at its prompt) wins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

__all__ = ("TtyGuard", "start_tty_guard")

_SCRIPT = r"""
import json, os, sys, termios
fd, saved, raw, released, buf = int(sys.argv[1]), json.loads(sys.argv[2]), None, False, b""
while True:
    try:
        chunk = os.read(0, 4096)
    except InterruptedError:
        continue
    except OSError:
        break
    if not chunk:
        break
    *lines, buf = (buf + chunk).split(b"\n")
    for ln in lines:
        if ln == b"release":
            released = True
        elif ln.startswith(b"raw "):
            raw = json.loads(ln[4:])
if not released:
    try:
        a = termios.tcgetattr(fd)
        now = [*a[:6], [c if isinstance(c, int) else c[0] for c in a[6]]]
        if raw is None or now == raw:
            termios.tcsetattr(fd, termios.TCSANOW, saved)  # not DRAIN: a stuck reader would hang us
    except (termios.error, OSError):
        pass
"""


def _plain(attrs: list[Any]) -> list[Any]:
    """termios attributes as JSON: the control characters as ints (tcsetattr takes both)."""
    return [*attrs[:6], [c if isinstance(c, int) else c[0] for c in attrs[6]]]


class TtyGuard:
    """The running watcher of one raw terminal."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def _say(self, line: bytes) -> None:
        if self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(line + b"\n")
            self.proc.stdin.flush()
        except OSError:  # the watcher is gone: nothing to tell
            pass

    def armed(self, raw: list[Any]) -> None:
        """The settings the shell applied: restored from only while they are in force."""
        self._say(b"raw " + json.dumps(_plain(raw)).encode())

    def release(self, wait_s: float = 2.0) -> None:
        """The shell restored the terminal itself: the watcher ends touching nothing."""
        self._say(b"release")
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_tty_guard(fd: int, saved: list[Any]) -> TtyGuard | None:
    """Start the watcher for the terminal on ``fd`` whose settings before raw mode are
    ``saved``; ``None`` if it cannot start (the session goes on, unguarded)."""
    dup = os.dup(fd)  # fd is often 0, which the watcher's pipe takes
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _SCRIPT, str(dup), json.dumps(_plain(saved))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(dup,),
            start_new_session=True,
        )
    except OSError:
        return None
    finally:
        os.close(dup)
    return TtyGuard(proc)
