"""The few privileged system calls PID 1 needs, behind one injectable object.

Tests pass a fake with the same methods (see :class:`System`); nothing here is called at
import time, and ctypes is loaded on first use.
"""

from __future__ import annotations

import os
import time

__all__ = ("LinuxSystem", "SYS_FINIT_MODULE", "LINUX_REBOOT_CMD_RESTART")

SYS_FINIT_MODULE = 313  # x86_64 (arch/x86/entry/syscalls/syscall_64.tbl)
LINUX_REBOOT_CMD_RESTART = 0x01234567  # include/uapi/linux/reboot.h

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any, Protocol

    class System(Protocol):
        """What the init needs from the kernel (a typing-only Protocol)."""

        def mount(
            self, source: str, target: str, fstype: str, flags: int = 0, data: str = ""
        ) -> None:
            """mount(2); raises OSError."""

        def finit_module(self, fd: int, params: str = "") -> None:
            """finit_module(2); raises OSError."""

        def reboot(self) -> None:
            """reboot(2) with LINUX_REBOOT_CMD_RESTART; returns only on failure (raises OSError)."""

        def sync(self) -> None:
            """sync(2)."""

        def kernel_release(self) -> str:
            """uname -r."""

        def cpus(self) -> int:
            """Number of CPUs this process may run on."""

        def boot_ns(self) -> int:
            """CLOCK_BOOTTIME in ns (time since the kernel started)."""


class LinuxSystem:
    """The real :class:`System` (ctypes over libc)."""

    def __init__(self) -> None:
        self._libc: Any = None

    def _c(self) -> Any:
        if self._libc is None:
            import ctypes  # deferred: only PID 1 needs it, and it costs startup time

            self._libc = ctypes.CDLL(None, use_errno=True)
            self._ctypes = ctypes
        return self._libc

    def _check(self, ret: int, what: str) -> None:
        if ret != 0:
            err = self._ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(self, source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
        c = self._c()
        ct = self._ctypes
        ret = c.mount(
            source.encode(),
            target.encode(),
            fstype.encode(),
            ct.c_ulong(flags),
            data.encode() if data else None,
        )
        self._check(ret, f"mount {fstype} on {target}")

    def finit_module(self, fd: int, params: str = "") -> None:
        c = self._c()
        ct = self._ctypes
        ret = c.syscall(ct.c_long(SYS_FINIT_MODULE), ct.c_int(fd), params.encode(), ct.c_int(0))
        self._check(ret, "finit_module")

    def reboot(self) -> None:
        self._check(self._c().reboot(LINUX_REBOOT_CMD_RESTART), "reboot")

    def sync(self) -> None:
        os.sync()

    def kernel_release(self) -> str:
        return os.uname().release

    def cpus(self) -> int:
        return len(os.sched_getaffinity(0))

    def boot_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)
