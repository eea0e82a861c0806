"""The contract between the testbed host side and the L1 init script.

L1 gets three named virtio-serial ports: CMD's stdout and stderr, and a status port on which
the init writes one line per event, never anything else::

    phase modules          init started, loading modules
    phase ready 3.41       mounts done, CMD starts (L1 uptime in seconds)
    l1-error insmod kvm_amd.ko failed
    exit 7                 CMD's exit status (0..255)

The kernel console stays on ttyS0 (a log file), so console noise never mixes with these.
Lines are untrusted input: bounded in length and count, unknown lines are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = (
    "JOB_TAG",
    "MAX_STATUS_BYTES",
    "PORT_STATUS",
    "PORT_STDERR",
    "PORT_STDOUT",
    "ROOT_TAG",
    "StatusLog",
)

PORT_STDOUT = "org.schedlab.testbed.stdout"
PORT_STDERR = "org.schedlab.testbed.stderr"
PORT_STATUS = "org.schedlab.testbed.status"
#: 9p mount tags: the read-only host root and the read-only job directory.
ROOT_TAG = "hostroot"
JOB_TAG = "schedlab_job"
#: The status port carries a few short lines; more than this is a misbehaving L1.
MAX_STATUS_BYTES = 64 * 1024
_MAX_LINE = 512

_EXIT_RE = re.compile(r"exit (\d{1,3})")
_READY_RE = re.compile(r"phase ready (\d{1,7}(?:\.\d{1,3})?)")


@dataclass
class StatusLog:
    """Accumulates status-port bytes and interprets the complete lines.

    >>> s = StatusLog(); s.feed(b"phase ready 3.5\\nexit 7\\n"); (s.ready_uptime_s, s.exit_code)
    (3.5, 7)
    """

    phases: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ready_uptime_s: float | None = None
    exit_code: int | None = None
    _buf: bytes = b""
    _total: int = 0

    def feed(self, data: bytes) -> None:
        """Add bytes read from the status port; bytes beyond :data:`MAX_STATUS_BYTES` are dropped."""
        room = MAX_STATUS_BYTES - self._total
        data = data[: max(room, 0)]
        self._total += len(data)
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > _MAX_LINE:
            self._buf = b""
        for raw in lines:
            self._line(raw[:_MAX_LINE].decode("utf-8", "replace").strip())

    def _line(self, line: str) -> None:
        if m := _EXIT_RE.fullmatch(line):
            code = int(m.group(1))
            if code <= 255 and self.exit_code is None:
                self.exit_code = code
        elif line.startswith("l1-error "):
            self.errors.append(line.removeprefix("l1-error "))
        elif line.startswith("phase "):
            self.phases.append(line.removeprefix("phase ").split(" ", 1)[0])
            if m := _READY_RE.fullmatch(line):
                self.ready_uptime_s = float(m.group(1))
