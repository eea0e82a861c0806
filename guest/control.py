"""Host -> guest control bytes on the console port ``/dev/hvc0``.

``b"S"``: shut down now (stop the test, report, power off). ``b"D"``: dump request (a
SysRq-D: the kernel's sched_ext state dump). ``b"P"``: a snapshot of ``/proc`` and cgroup
scheduler statistics (:mod:`guest.dump`). Other bytes are counted and ignored.

The reader is a background thread polling a non-blocking fd. A disconnected
virtio-console raises POLLHUP permanently, so a poll that returns without POLLIN would
spin: the loop backs off exponentially (up to 1 s) instead, and keeps listening in case
the host reconnects.
"""

from __future__ import annotations

import os
import select
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = (
    "CMD_DUMP",
    "CMD_PROCDUMP",
    "CMD_SHUTDOWN",
    "DUMP_REQUEST",
    "PROCDUMP_REQUEST",
    "SHUTDOWN_REQUEST",
    "ControlReader",
)

CMD_SHUTDOWN = ord("S")
CMD_DUMP = ord("D")
CMD_PROCDUMP = ord("P")
# The same commands as the host writes them to the console port (vmm.ConsoleWrite).
SHUTDOWN_REQUEST = bytes((CMD_SHUTDOWN,))
DUMP_REQUEST = bytes((CMD_DUMP,))
PROCDUMP_REQUEST = bytes((CMD_PROCDUMP,))
_POLL_MS = 200
_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.01, 1.0


def _make_raw(fd: int) -> None:
    """Byte-at-a-time, no echo: a cooked tty would hold b"S" until a newline."""
    try:
        import termios  # deferred: not needed when hvc0 is absent

        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
        iflag &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR | termios.ISTRIP)
        lflag &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        cc[termios.VMIN], cc[termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
    except Exception:  # not a tty (tests), or no termios: bytes still arrive on a pipe
        return


class ControlReader:
    """Background reader of control bytes.

    :param path: the console device (a FIFO in tests).
    :param on_shutdown: called (in the reader thread) on ``S``.
    :param on_dump: called (in the reader thread) on ``D``.
    :param on_procdump: called (in the reader thread) on ``P``; None counts it as unknown.
    """

    def __init__(
        self,
        path: str,
        on_shutdown: Callable[[], None],
        on_dump: Callable[[], None],
        on_procdump: Callable[[], None] | None = None,
    ):
        self._path = path
        self._on_shutdown = on_shutdown
        self._on_dump = on_dump
        self._on_procdump = on_procdump
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_w = -1
        self.error = ""
        self.polls = 0  # poll() calls made: lets tests check that a hangup does not spin
        self.hangups = 0
        self.unknown = 0

    def start(self) -> bool:
        """Open the device and start the thread.

        :return: False (and :attr:`error` set) if the device cannot be opened.
        """
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as e:
            self.error = f"open {self._path}: {e.strerror}"
            return False
        _make_raw(fd)
        wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(
            target=self._loop, args=(fd, wake_r), name="hvc0", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, timeout_s: float = 1.0) -> None:
        """Ask the thread to end (waking its poll) and wait (bounded) for it."""
        self._stop.set()
        if self._thread is not None and self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:  # the thread already ended (and closed the read end)
                pass
            self._thread.join(timeout_s)
            os.close(self._wake_w)
            self._wake_w = -1

    def _loop(self, fd: int, wake_r: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake_r, select.POLLIN)  # stop() writes here: no waiting out a poll
        backoff = _BACKOFF_MIN_S
        try:
            while not self._stop.is_set():
                self.polls += 1
                events = poller.poll(_POLL_MS)
                revents = next((ev for f, ev in events if f == fd), 0)
                if not revents:
                    continue
                if revents & select.POLLNVAL:
                    self.error = "poll: POLLNVAL"
                    return
                data = self._read(fd) if revents & select.POLLIN else b""
                if data:
                    backoff = _BACKOFF_MIN_S
                    self._dispatch(data)
                elif revents & (select.POLLHUP | select.POLLERR) or data == b"":
                    # Hung up / nothing to read: wait instead of spinning on a latched POLLHUP.
                    self.hangups += 1
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
        finally:
            os.close(fd)
            os.close(wake_r)

    def _read(self, fd: int) -> bytes | None:
        try:
            return os.read(fd, 64)
        except BlockingIOError:
            return None
        except OSError as e:
            self.error = f"read: {e.strerror}"
            return b""

    def _dispatch(self, data: bytes) -> None:
        for b in data:
            if b == CMD_SHUTDOWN:
                self._on_shutdown()
            elif b == CMD_DUMP:
                self._on_dump()
            elif b == CMD_PROCDUMP and self._on_procdump is not None:
                self._on_procdump()
            else:
                self.unknown += 1
