"""The kernel log, read from ``/dev/kmsg`` and shipped to the host as DUMP frames.

The host keeps it as ``kernel.log``. It makes the boot log independent of the console:
with our KVM engine the console runs ``quiet`` (one VM exit per UART byte), yet the run
directory still holds every kernel message, and the messages logged during the test too.
"""

from __future__ import annotations

import errno
import os

__all__ = ("KmsgReader", "format_record", "SOURCE")

SOURCE = "kmsg"
_MAX_BYTES = 768 * 1024  # per drain: one DUMP frame stays under wire.MAX_FRAME
_RECORD = 8192  # a read of /dev/kmsg returns one record; 8 KiB fits any


def format_record(rec: bytes) -> bytes:
    """``prio,seq,usec,flags;text`` (plus ``\\n KEY=value`` lines) -> ``[  s.us] text``."""
    head, _, rest = rec.partition(b";")
    text = rest.split(b"\n", 1)[0]
    fields = head.split(b",")
    try:
        usec = int(fields[2])
    except (IndexError, ValueError):
        return text + b"\n"
    return b"[%5d.%06d] %s\n" % (usec // 1_000_000, usec % 1_000_000, text)


class KmsgReader:
    """Drains new kernel log records each call (the fd keeps its position between calls)."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self.fd = -1

    def drain(self) -> bytes:
        out: list[bytes] = []
        size = 0
        while self.fd >= 0 and size < _MAX_BYTES:
            try:
                rec = os.read(self.fd, _RECORD)
            except OSError as e:
                if e.errno == errno.EPIPE:  # records overwritten before we read them: go on
                    continue
                break  # EAGAIN: nothing more now
            if not rec:
                break
            line = format_record(rec)
            out.append(line)
            size += len(line)
        return b"".join(out)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
