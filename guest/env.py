"""Where and how the init process runs: the fixed inputs every phase reads."""

from __future__ import annotations

import os
from collections import namedtuple

__all__ = ("Env",)


class Env(
    namedtuple(
        "Env",
        "system root pid1 bulk_timeout_s cgroup_rmdir crash_fd inputs_timeout_s",
        defaults=("/", True, 30.0, os.rmdir, -1, 120.0),
    )
):
    """The init process's environment (immutable).

    :param system: kernel calls (:class:`~guest.syscalls.System`; a fake in tests).
    :param root: filesystem root.
    :param pid1: running as the guest's init: capture stdio, fill fds 0-2, fork the worker
        parent only while single-threaded. Tests pass False.
    :param bulk_timeout_s: how long to wait for the bulk port to appear (30 s: the KVM
        engine in the loaded testbed missed 5 s once; only a missing port waits it out).
    :param cgroup_rmdir: directory removal for the cgroup tree (tests remove plain files).
    :param crash_fd: faulthandler's target (the crash pipe PID 1 reads), or -1.
    :param inputs_timeout_s: how long after SYS_RDY to wait for the host's first input byte.
    """

    __slots__ = ()

    def path(self, rel: str) -> str:
        """``rel`` under the root."""
        return os.path.join(self.root, rel)
