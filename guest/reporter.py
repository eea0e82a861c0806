"""The channels phase and what it holds: COM2 for diagnostics, the bulk port for frames.

Diagnostics raised before the bulk port exists go to COM2 at once and wait as LOG frames until
the port opens. The kernel log follows the frames as DUMP records (``kernel.log`` on the host),
on every path that opened the port, the bad-image one included.
"""

from __future__ import annotations

import os

from guest import boot
from guest.channels import BulkChannel, Com2
from guest.wire import FrameType

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

    from guest.env import Env
    from guest.kmsg import KmsgReader
    from guest.spec import RunSpec
    from guest.wire import ExitCode

__all__ = ("Reporter",)


class Reporter:
    """Frames and notes of one run; never raises on a write.

    :param env: the init's environment (root, system clock, bulk port timeout).
    """

    def __init__(self, env: Env) -> None:
        self._env = env
        self.com2 = Com2(env.path("dev/ttyS1"))
        self.bulk: BulkChannel | None = None
        self._notes: list[tuple[str, str]] = []  # LOG frames waiting for the bulk port
        self._kmsg: KmsgReader | None = None

    def reopen_com2(self) -> None:
        """Open COM2 again once devtmpfs is mounted (before, ``/dev/ttyS1`` may not exist)."""
        if self.com2.fd < 0:
            self.com2 = Com2(self._env.path("dev/ttyS1"))

    def open_bulk(self) -> bool:
        """Find and open the bulk port, then flush the waiting notes; False if impossible."""
        dev = boot.find_bulk_port(self._env.root, self._env.bulk_timeout_s)
        if dev is None:
            seen = boot.seen_ports(self._env.root)
            self.com2.line(
                f"bulk port {boot.BULK_PORT_NAME} not found (ports: {seen}); cannot report"
            )
            return False
        try:
            # Read too: the run's inputs come host -> guest on the same port after SYS_RDY.
            fd = os.open(dev, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            self.com2.line(f"open {dev}: {e.strerror}; cannot report")
            return False
        self.bulk = BulkChannel(fd, self.com2)
        for level, msg in self._notes:
            self.bulk.log(level, msg)
        self._notes.clear()
        return True

    def send(self, ftype: FrameType, payload: dict[str, Any]) -> None:
        """One frame, if the bulk port is open (thread-safe)."""
        if self.bulk is not None:
            self.bulk.send(ftype, payload)

    def log(self, level: str, msg: str) -> None:
        """A LOG frame."""
        self.send(FrameType.LOG, {"level": level, "msg": msg})

    def note(self, level: str, msg: str) -> None:
        """A diagnostic before the bulk port may exist: COM2 now, a LOG frame once it opens."""
        self.com2.line(f"{level}: {msg}")
        if self.bulk is not None:
            self.bulk.log(level, msg)
        else:
            self._notes.append((level, msg))

    def phase(self, name: str) -> None:
        """A PHASE frame stamped with the guest's boot clock."""
        self.send(FrameType.PHASE, {"name": name, "t_ns": self._env.system.boot_ns()})

    def result_fail(self, code: ExitCode, reason: str, spec: RunSpec | None = None) -> ExitCode:
        """A failed RESULT; return ``code`` for the EXIT frame."""
        payload: dict[str, Any] = {"passed": False, "reason": reason}
        if spec is not None:
            payload.update(scenario=spec.scenario, spec=spec.as_dict())
        self.send(FrameType.RESULT, payload)
        return code

    def send_kmsg(self) -> None:
        """Ship the kernel log records not sent yet (boot log first, test-time ones later)."""
        if self.bulk is None:
            return
        if self._kmsg is None:
            from guest.kmsg import KmsgReader

            self._kmsg = KmsgReader(self._env.path("dev/kmsg"))
        from guest.kmsg import SOURCE

        data = self._kmsg.drain()
        if data:
            self.send(FrameType.DUMP, {"source": SOURCE, "data": data})

    @property
    def dropped(self) -> int:
        """Frames the bulk port dropped (encode errors, a broken port)."""
        return self.bulk.dropped if self.bulk is not None else 0
