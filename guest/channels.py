"""Output channels of PID 1: the bulk port (frames), COM2 (crash text), stdio capture.

The bulk port is a virtio-console port whose writes can block on host backpressure, so
it is used only on normal paths. Crash text goes to COM2, a 16550 UART whose writes
complete synchronously in the VMM, opened non-blocking and written with a bounded retry.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from guest import wire
from guest.wire import FrameType

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = ("BulkChannel", "Com2", "StdioCapture")


class Com2:
    """Line writer for the second serial port (``/dev/ttyS1``); never raises, never blocks long.

    :param path: device path (a plain file in tests).
    """

    _RETRIES = 200  # x 1 ms of EAGAIN before a line is dropped

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_APPEND)
        except OSError:
            self.fd = -1
        self.dropped = 0

    def write(self, text: str) -> None:
        """Write ``text`` as is (best effort)."""
        data = text.encode("utf-8", "backslashreplace")
        tries = 0
        while data and self.fd >= 0:
            try:
                data = data[os.write(self.fd, data) :]
            except BlockingIOError:
                tries += 1
                if tries > self._RETRIES:
                    self.dropped += len(data)
                    return
                time.sleep(0.001)
            except OSError:
                self.dropped += len(data)
                return

    def line(self, text: str) -> None:
        """Write one ``schedlab-init:`` diagnostic line."""
        self.write(f"schedlab-init: {text}\n")

    def panic(self, text: str) -> None:
        """Write ``text`` as ``PANIC: `` lines (the host extracts crash text by that prefix)."""
        self.write("".join(f"{wire.PANIC_PREFIX}{ln}\n" for ln in text.splitlines() or [""]))


class BulkChannel:
    """Frame writer on the bulk port; thread-safe, never raises.

    After the first write error the channel is marked broken and later frames are dropped
    (counted), with one note on COM2.

    :param fd: open, writable bulk port descriptor (owned: closed by :meth:`close`).
    :param com2: where to note a broken channel.
    """

    def __init__(self, fd: int, com2: Com2) -> None:
        self.fd = fd
        self._com2 = com2
        self._lock = threading.Lock()
        self.broken = ""
        self.frames = 0
        self.dropped = 0

    def send(self, ftype: FrameType, payload: dict[str, Any]) -> bool:
        """Encode and write one frame (blocking).

        :return: True if written; False if dropped (encode error or broken channel).
        """
        try:
            data = wire.encode_frame(ftype, payload)
        except wire.WireError as e:
            self._com2.line(f"frame {ftype.name} not sent: {e}")
            self.dropped += 1
            return False
        if not self._write(data):
            self.dropped += 1
            return False
        self.frames += 1
        return True

    def write_raw(self, data: bytes) -> bool:
        """Write bytes that are not a frame (the wire-noise test hook); False if dropped."""
        return self._write(data)

    def _write(self, data: bytes) -> bool:
        with self._lock:
            if self.broken or self.fd < 0:
                return False
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError as e:
                self.broken = f"bulk port write failed: {e.strerror or e}"
                self._com2.line(self.broken)
                return False
            return True

    def log(self, level: str, msg: str) -> bool:
        """Send a LOG frame (``level`` in :data:`guest.wire.LOG_LEVELS`)."""
        return self.send(FrameType.LOG, {"level": level, "msg": msg})

    def stdio(self, ftype: FrameType, data: bytes) -> bool:
        """Send STDOUT/STDERR data in chunks of at most :data:`guest.wire.STDIO_CHUNK`."""
        ok = True
        for i in range(0, len(data), wire.STDIO_CHUNK):
            ok = self.send(ftype, {"data": data[i : i + wire.STDIO_CHUNK]}) and ok
        return ok

    def close(self) -> None:
        """Close the port."""
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class StdioCapture:
    """Route fds 1 and 2 (ours and every child's) through pipes into STDOUT/STDERR frames.

    :param bulk: the frame channel.
    """

    def __init__(self, bulk: BulkChannel) -> None:
        self._bulk = bulk
        self._threads: list[threading.Thread] = []
        self._pipes: list[tuple[int, FrameType]] = []  # read ends, until a forwarder owns them

    def redirect(self) -> None:
        """Replace fds 1 and 2 with pipe write ends (no thread: safe before a fork)."""
        for target, ftype in ((1, FrameType.STDOUT), (2, FrameType.STDERR)):
            r, w = os.pipe()
            os.dup2(w, target)
            os.close(w)
            self._pipes.append((r, ftype))
        sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")

    def start(self) -> None:
        """Start one forwarder per pipe (redirecting first if :meth:`redirect` was not called)."""
        if not self._pipes and not self._threads:
            self.redirect()
        for r, ftype in self._pipes:
            t = threading.Thread(
                target=self._forward, args=(r, ftype), name=f"stdio-{ftype.name}", daemon=True
            )
            t.start()
            self._threads.append(t)
        self._pipes.clear()

    def _forward(self, fd: int, ftype: FrameType) -> None:
        try:
            while chunk := os.read(fd, wire.STDIO_CHUNK):
                self._bulk.stdio(ftype, chunk)
        except OSError:
            pass
        finally:
            os.close(fd)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Flush, point fds 1 and 2 at /dev/null so the pipes reach EOF, join the forwarders.

        Bounded: a process still holding a write end only delays this by ``timeout_s``.
        """
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        end = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
