"""The scheduler's stdout and stderr: drained at once, forwarded as SCHED_LOG frames.

Two threads. The reader empties both pipes as soon as bytes arrive, so the scheduler never
blocks on a full pipe (a userspace-dispatching scheduler stuck in write(2) would stall the
machine), and keeps what the lifecycle needs: the first bytes (for the error of a
scheduler that dies before attaching), the last ``EXIT:`` line and the ``DEBUG DUMP``
block. The sender writes frames; when the bulk port blocks it waits, and the reader's
queue, bounded in bytes, drops its oldest chunks and counts them. Each frame carries the
stream's running count of dropped bytes, so the host can mark the gaps.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque

from guest.scx.exit_parse import extract_debug_dump, parse_exit_line
from guest.wire import FrameType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Send = Callable[[FrameType, dict[str, Any]], bool]

__all__ = ("CHUNK", "HEAD_BYTES", "QUEUE_BYTES", "TOTAL_BYTES", "LogPump")

CHUNK = 32 * 1024  #: most data bytes in one SCHED_LOG frame
QUEUE_BYTES = 1 << 20  #: bytes waiting for the bulk port before the oldest are dropped
TOTAL_BYTES = 32 << 20  #: bytes forwarded in one run; the rest is dropped (counted)
HEAD_BYTES = 64 * 1024  #: first output bytes kept for an attach error
TAIL_BYTES = 16 * 1024  #: last output bytes kept too (libbpf says what failed at the end)
_LINE_MAX = 8 * 1024  # a longer partial line is taken as a line
_DUMP_MAX = 512 * 1024  # DEBUG DUMP text kept (the kernel's default dump is 32 KiB)
_POLL_MS = 100
_RULE = "=" * 80  # UEI_REPORT frames its DEBUG DUMP between two of these


class _Outbox:
    """Chunks waiting for the sender; bounded in bytes, the oldest dropped first."""

    def __init__(self, cap: int, dropped: dict[str, int]) -> None:
        self._q: deque[tuple[str, bytes]] = deque()
        self._bytes = 0
        self._cap = cap
        self._dropped = dropped
        self._cond = threading.Condition()
        self.closed = False

    def put(self, stream: str, data: bytes) -> None:
        with self._cond:
            self._q.append((stream, data))
            self._bytes += len(data)
            while self._bytes > self._cap and len(self._q) > 1:
                old_stream, old = self._q.popleft()
                self._bytes -= len(old)
                self._dropped[old_stream] += len(old)
            self._cond.notify()

    def count_drop(self, stream: str, n: int) -> None:
        """Count ``n`` bytes of ``stream`` dropped elsewhere (one lock for every counter)."""
        with self._cond:
            self._dropped[stream] += n

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()

    def take(self, limit: int) -> tuple[str, bytes] | None:
        """Block for the next chunk, merged with queued ones of its stream up to ``limit``.

        :return: None once closed and empty.
        """
        with self._cond:
            while not self._q and not self.closed:
                self._cond.wait()
            if not self._q:
                return None
            stream, data = self._q.popleft()
            parts = [data]
            size = len(data)
            while self._q and self._q[0][0] == stream and size + len(self._q[0][1]) <= limit:
                more = self._q.popleft()[1]
                parts.append(more)
                size += len(more)
            self._bytes -= size
            return stream, b"".join(parts)

    def empty(self) -> bool:
        with self._cond:
            return not self._q


class _Lines:
    """Splits one stream into lines and keeps its last ``EXIT:`` line and DEBUG DUMP."""

    def __init__(self) -> None:
        self._partial = b""
        self.exit_line: tuple[str, str] | None = None
        self._dump: list[str] | None = None  # lines since "DEBUG DUMP", while collecting
        self._dump_size = 0
        self._rules = 0
        self.dump_text = ""

    def feed(self, data: bytes) -> bool:
        """Take bytes; True if an ``EXIT:`` line was completed."""
        buf = self._partial + data
        *lines, self._partial = buf.split(b"\n")
        if len(self._partial) > _LINE_MAX:
            lines.append(self._partial)
            self._partial = b""
        saw_exit = False
        for raw in lines:
            saw_exit = self._line(raw.decode("utf-8", "replace")) or saw_exit
        return saw_exit

    def finish(self) -> bool:
        """End of stream: a last line without a newline counts."""
        rest, self._partial = self._partial, b""
        return self._line(rest.decode("utf-8", "replace")) if rest else False

    def _line(self, line: str) -> bool:
        if line == "DEBUG DUMP":
            self._dump, self._dump_size, self._rules = [line], len(line), 0
        elif self._dump is not None:
            self._dump.append(line)
            self._dump_size += len(line) + 1
            self._rules += line == _RULE
            if self._rules >= 2 or self._dump_size > _DUMP_MAX:
                self._end_dump()
        parsed = parse_exit_line(line)
        if parsed is not None:
            self.exit_line = parsed
            self._end_dump()
            return True
        return False

    def _end_dump(self) -> None:
        if self._dump is not None:
            self.dump_text = extract_debug_dump("\n".join(self._dump) + "\n")
            self._dump = None


class LogPump:
    """Forwards a child's output pipes as SCHED_LOG frames (see the module docstring).

    :param fds: stream name (``stdout``, ``stderr``) -> pipe read end; closed at EOF/stop.
    :param send: ``send(FrameType, payload) -> bool``, e.g. ``BulkChannel.send``.
    :param queue_bytes: bound of the send queue.
    :param total_bytes: bound of the bytes forwarded in total.
    """

    def __init__(
        self,
        fds: dict[str, int],
        send: Send,
        queue_bytes: int = QUEUE_BYTES,
        total_bytes: int = TOTAL_BYTES,
        chunk: int = CHUNK,
    ) -> None:
        self._fds = dict(fds)
        self._send = send
        self._chunk = chunk
        self._total_cap = total_bytes
        self.dropped = {name: 0 for name in fds}  # bytes not delivered, per stream
        self.forwarded = 0  # bytes accepted for sending
        self.frames = 0
        self._seq = 0
        self._outbox = _Outbox(queue_bytes, self.dropped)
        self._lines = {name: _Lines() for name in fds}
        self._head = bytearray()
        self._tail = bytearray()
        self.read_bytes = 0
        self._stop = threading.Event()
        self.eof = threading.Event()  # every pipe reached EOF (or the pump was stopped)
        self.exit_seen = threading.Event()  # an EXIT: line arrived
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the reader and the sender thread."""
        for target, name in (
            (self._read_loop, "sched-log-read"),
            (self._send_loop, "sched-log-send"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    # -- what the lifecycle reads ------------------------------------------------------

    def head(self) -> bytes:
        """The first :data:`HEAD_BYTES` of output, both streams in arrival order."""
        return bytes(self._head)

    def output_text(self) -> str:
        """The output as text for an error message: all of it when short, else the first
        :data:`HEAD_BYTES` and the last :data:`TAIL_BYTES` around a line saying how much
        was left out (whole lines only).
        """
        head, tail = bytes(self._head), bytes(self._tail)  # tail: bytes after the head
        skipped = self.read_bytes - len(head) - len(tail)
        if skipped <= 0:
            return (head + tail).decode("utf-8", "replace")
        head = head[: head.rfind(b"\n") + 1] or head
        tail = tail[tail.find(b"\n") + 1 :] or tail
        gap = f"[... {skipped} bytes of output left out ...]\n".encode()
        return (head + gap + tail).decode("utf-8", "replace")

    @property
    def exit_line(self) -> tuple[str, str] | None:
        """``(reason, msg)`` of the last ``EXIT:`` line (stderr first), else None."""
        for name in ("stderr", "stdout"):
            lines = self._lines.get(name)
            if lines is not None and lines.exit_line is not None:
                return lines.exit_line
        return None

    def debug_dump(self) -> str:
        """The scheduler's own DEBUG DUMP block, "" if it printed none."""
        return next((ln.dump_text for ln in self._lines.values() if ln.dump_text), "")

    # -- threads -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        poller = select.poll()
        names = {}
        for name, fd in self._fds.items():
            poller.register(fd, select.POLLIN)
            names[fd] = name
        try:
            while names and not self._stop.is_set():
                for fd, _ in poller.poll(_POLL_MS):
                    try:
                        data = os.read(fd, self._chunk)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data:
                        self._take(names[fd], data)
                    else:
                        if self._lines[names[fd]].finish():
                            self.exit_seen.set()
                        poller.unregister(fd)
                        os.close(fd)
                        del names[fd]
        finally:
            for fd in names:
                os.close(fd)
            self._fds.clear()
            self.eof.set()
            self._outbox.close()

    def _take(self, stream: str, data: bytes) -> None:
        self.read_bytes += len(data)
        if len(self._head) < HEAD_BYTES:
            room = HEAD_BYTES - len(self._head)
            self._head += data[:room]
            data_tail = data[room:]
        else:
            data_tail = data
        if data_tail:
            self._tail += data_tail
            del self._tail[: max(0, len(self._tail) - TAIL_BYTES)]
        if self._lines[stream].feed(data):
            self.exit_seen.set()
        if self.forwarded + len(data) > self._total_cap:
            self._outbox.count_drop(stream, len(data))
            return
        self.forwarded += len(data)
        self._outbox.put(stream, data)

    def _send_loop(self) -> None:
        while (item := self._outbox.take(self._chunk)) is not None:
            self._frame(item[0], item[1], False)
        for name in self.dropped:
            self._frame(name, b"", True)

    def _frame(self, stream: str, data: bytes, eof: bool) -> None:
        self._seq += 1
        payload = {
            "stream": stream,
            "data": data,
            "seq": self._seq,
            "dropped": self.dropped[stream],
            "eof": eof,
        }
        try:
            ok = self._send(FrameType.SCHED_LOG, payload)
        except Exception:  # an injected sender must not end the thread
            ok = False
        if ok:
            self.frames += 1
        else:
            self._outbox.count_drop(stream, len(data))

    # -- the end -----------------------------------------------------------------------

    def wait_eof(self, timeout_s: float) -> bool:
        """Wait until every pipe reached EOF (the child and whoever inherited them exited)."""
        return self.eof.wait(timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Wait until the queued output was handed to ``send``; False on timeout."""
        end = time.monotonic() + timeout_s
        while not self._outbox.empty():
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop reading (pipes closed), send what is queued and the EOF frames, join.

        Bounded: a bulk port that blocks leaves the sender thread behind (a daemon).
        """
        self._stop.set()
        end = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
