"""The one exception of the KVM layer: a failed ioctl (or syscall) and its errno."""

from __future__ import annotations

import errno as _errno
import os

__all__ = ("KvmError",)


class KvmError(OSError):
    """A KVM operation failed; ``op`` names it, ``errno`` says why.

    Subclasses OSError so ``e.errno`` and ``e.strerror`` behave as usual.

    :param op: the ioctl or call that failed, e.g. ``"KVM_CREATE_VCPU"``.
    :param errno: the positive errno value the kernel returned.
    :param detail: optional extra context for the message.
    """

    def __init__(self, op: str, errno: int, detail: str = "") -> None:
        message = f"{op}: {os.strerror(errno)} ({_errno.errorcode.get(errno, errno)})"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(errno, message)
        self.op = op

    def __str__(self) -> str:
        return str(self.args[1])
