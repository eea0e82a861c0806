"""sched_ext's sysfs files: is there sched_ext, which scheduler is loaded, in what state.

``/sys/kernel/sched_ext/state`` holds one of ``enabling``, ``enabled``, ``disabling``,
``disabled`` (``scx_enable_state_str`` in ``kernel/sched/ext/ext.c``); ``root/ops`` holds
the loaded scheduler's ops name and exists only while one is loaded (the ``root``
kobject is added before the scheduler's callbacks run and deleted on disable). The
kernel does not ``sysfs_notify`` either file, so they are polled.

Paths are relative to a filesystem ``root``, so tests run against a temporary tree.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("NO_SCHED_EXT", "SCX_DIR", "ScxSysfs")

SCX_DIR = "sys/kernel/sched_ext"
NO_SCHED_EXT = "this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT)"
_POLL_MIN_S, _POLL_MAX_S = 0.002, 0.05


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(256).decode("utf-8", "replace").strip()
    except OSError:
        return None


class ScxSysfs:
    """Reader of ``<root>/sys/kernel/sched_ext``.

    :param root: filesystem root ("/" in the guest).
    """

    def __init__(self, root: str = "/") -> None:
        self.root = root
        self.dir = os.path.join(root, SCX_DIR)

    def absent_reason(self) -> str:
        """Empty when sched_ext's sysfs directory exists, else why it does not."""
        if os.path.isfile(os.path.join(self.dir, "state")):
            return ""
        if not os.path.isdir(os.path.join(self.root, "sys/kernel")):
            return "sysfs is not mounted (no /sys/kernel): cannot tell whether sched_ext exists"
        return NO_SCHED_EXT

    def state(self) -> str | None:
        """The enable state, or None if the file cannot be read."""
        return _read(os.path.join(self.dir, "state"))

    def ops(self) -> str:
        """The loaded scheduler's ops name; "" when none is loaded."""
        return _read(os.path.join(self.dir, "root", "ops")) or ""

    def wait_attached(
        self, deadline: float, wait_exit: Callable[[float], bool]
    ) -> tuple[str, str, str]:
        """Poll until the state is ``enabled`` with an ops name, the process exits, or the
        deadline passes.

        :param deadline: ``time.monotonic()`` value to give up at.
        :param wait_exit: waits up to the given seconds for the scheduler process to exit
            (or for a cancel), True if it did; it paces the poll, so a death is seen at once.
        :return: ``(outcome, state, ops)`` with outcome ``attached``, ``exited`` or
            ``timed_out``; state and ops as last read.
        """
        pause = _POLL_MIN_S
        while True:
            state, ops = self.state() or "", self.ops()
            if state == "enabled" and ops:
                return "attached", state, ops
            left = deadline - time.monotonic()
            if left <= 0:
                return "timed_out", state, ops
            if wait_exit(min(pause, left)):
                return "exited", self.state() or "", self.ops()
            pause = min(pause * 2, _POLL_MAX_S)
