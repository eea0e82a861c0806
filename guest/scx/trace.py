"""sched_ext state dumps from the ``sched_ext_dump`` tracepoint, and SysRq-D.

``scx_dump_state()`` writes each dump line to the ``sched_ext_dump`` trace event (and, for
an error exit, to the scheduler's exit info, which its ``DEBUG DUMP`` shows). It runs
synchronously: in the irq work before the disable work for an error exit, so the lines
are in the ring buffer by the time the state leaves ``enabled``; inside the write to
``/proc/sysrq-trigger`` for SysRq-D, whose dump goes only to the tracepoint. So a drain
reads until the pipe is empty, with a short quiet period and a deadline.

``trace_pipe`` is opened non-blocking and read between polls: a blocking read can park in
``tracing_wait_pipe`` and never wake (ktstr's notes on kernel/trace/trace.c).
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("EVENT_ENABLE", "TRACEFS_DIRS", "TraceDump")

TRACEFS_DIRS = ("sys/kernel/tracing", "sys/kernel/debug/tracing")
EVENT_ENABLE = "events/sched_ext/sched_ext_dump/enable"
_READ = 64 * 1024
_WAIT_S = 0.01


def _write(path: str, data: bytes) -> str:
    """Write ``data`` to a control file; "" or the error."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return f"open {path}: {e.strerror}"
    try:
        os.write(fd, data)
    except OSError as e:
        return f"write {data!r} to {path}: {e.strerror}"
    finally:
        os.close(fd)
    return ""


class TraceDump:
    """The ``sched_ext_dump`` event and a non-blocking reader of ``trace_pipe``.

    :param root: filesystem root.
    :param mount: ``mount(source, target, fstype)``, to mount tracefs when no tracefs
        directory is there (None: do not try).
    """

    def __init__(self, root: str = "/", mount: Callable[[str, str, str], None] | None = None):
        self.root = root
        self._mount = mount
        self.dir = ""
        self.error = ""
        self._fd = -1
        self._lock = threading.Lock()  # one drain at a time: reads consume the events

    def _find(self) -> str:
        for rel in TRACEFS_DIRS:
            d = os.path.join(self.root, rel)
            if os.path.exists(os.path.join(d, "trace_pipe")):
                return d
        return ""

    def enable(self) -> bool:
        """Find (or mount) tracefs, switch the event on and open ``trace_pipe``.

        :return: False with :attr:`error` set when dumps cannot be captured.
        """
        self.dir = self._find()
        if not self.dir and self._mount is not None:
            target = os.path.join(self.root, TRACEFS_DIRS[0])
            try:
                os.makedirs(target, exist_ok=True)
                self._mount("tracefs", target, "tracefs")
            except OSError as e:
                self.error = f"mount tracefs on /{TRACEFS_DIRS[0]}: {e.strerror or e}"
                return False
            self.dir = self._find()
        if not self.dir:
            self.error = "no tracefs (neither /sys/kernel/tracing nor debugfs' tracing)"
            return False
        enable = os.path.join(self.dir, EVENT_ENABLE)
        if not os.path.exists(enable):
            self.error = f"no sched_ext_dump tracepoint (/{os.path.relpath(enable, self.root)})"
            return False
        err = _write(enable, b"1")
        if not err and os.path.exists(os.path.join(self.dir, "tracing_on")):
            err = _write(os.path.join(self.dir, "tracing_on"), b"1")
        if not err:
            try:
                self._fd = os.open(
                    os.path.join(self.dir, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK
                )
            except OSError as e:
                err = f"open trace_pipe: {e.strerror}"
        self.error = err
        return not err

    def drain(
        self, max_bytes: int = 1 << 20, deadline_s: float = 0.5, quiet_s: float = 0.05
    ) -> bytes:
        """Read what ``trace_pipe`` holds: until it stayed empty for ``quiet_s`` (after
        some data, or from the start), ``max_bytes`` were read, or ``deadline_s`` passed.
        """
        if self._fd < 0:
            return b""
        with self._lock:
            return self._drain(max_bytes, time.monotonic() + deadline_s, quiet_s)

    def _drain(self, max_bytes: int, deadline: float, quiet_s: float) -> bytes:
        out = bytearray()
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        last = time.monotonic()
        while len(out) < max_bytes:
            try:
                data = os.read(self._fd, min(_READ, max_bytes - len(out)))
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    self.error = f"read trace_pipe: {e.strerror}"
                    break
                data = b""
            now = time.monotonic()
            if data:
                out += data
                last = now
                continue
            if now >= deadline or now - last >= quiet_s:
                break
            # An empty read of a plain file (tests) does not block poll: pace it.
            if poller.poll(int(_WAIT_S * 1000)):
                time.sleep(_WAIT_S)
        return bytes(out)

    def sysrq_dump(self, deadline_s: float = 3.0, quiet_s: float = 0.2) -> bytes:
        """Trigger SysRq-D (``scx_dump_state`` of every loaded scheduler) and collect it.

        Anything already waiting in ``trace_pipe`` comes first in the result.

        :return: trace_pipe text; b"" when tracing is off (see :attr:`error`).
        """
        if self._fd < 0:
            return b""
        with self._lock:
            pending = self._drain(1 << 20, time.monotonic() + 0.2, 0.0)
            proc = os.path.join(self.root, "proc")
            _write(os.path.join(proc, "sys/kernel/sysrq"), b"1")  # the trigger file ignores
            err = _write(os.path.join(proc, "sysrq-trigger"), b"D")  # the mask; set it anyway
            if err:
                self.error = err
                return pending
            return pending + self._drain(4 << 20, time.monotonic() + deadline_s, quiet_s)

    def close(self) -> None:
        """Switch the event off and close ``trace_pipe``."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            _write(os.path.join(self.dir, EVENT_ENABLE), b"0")
