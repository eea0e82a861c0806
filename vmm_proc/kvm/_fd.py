"""Fd ownership and the raising ioctl call shared by Kvm, VmFd and VcpuFd."""

from __future__ import annotations

import os
from typing import Any

from vmm_proc.kvm._ffi import ffi, lib
from vmm_proc.kvm.errors import KvmError
from vmm_proc.mem.owned import Finalized

_NO_ARG = ffi.cast("unsigned long", 0)


def ioctl(fd: int, request: int, arg: Any, op: str) -> int:
    """Issue one ioctl; return its non-negative result or raise KvmError(op, errno).

    :param arg: a cdata pointer, an int (passed as unsigned long) or None (0).
    """
    if arg is None:
        arg = _NO_ARG
    elif isinstance(arg, int):
        arg = ffi.cast("unsigned long", arg)
    ret = lib.ioctl(fd, request, arg)
    if ret < 0:
        raise KvmError(op, ffi.errno)
    return int(ret)


class FdOwner(Finalized):
    """Owns one file descriptor; close() is idempotent and leaves ``fd == -1``.

    A closed owner keeps working as an object: its ioctls then fail with EBADF,
    which is what the closed-fd tests check.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def fd(self) -> int:
        """The raw descriptor (-1 once closed)."""
        return self._fd

    def close(self) -> None:
        """Release the descriptor (and anything a subclass maps); safe to call twice."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def _ioctl(self, request: int, arg: Any, op: str) -> int:
        return ioctl(self._fd, request, arg, op)
