"""Fd ownership and the raising ioctl call shared by Kvm, VmFd and VcpuFd."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Self

from vmm_proc.kvm._ffi import ffi, lib
from vmm_proc.kvm.errors import KvmError

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


class FdOwner:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Last resort for owners nobody closed; never raise from a finalizer.
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
