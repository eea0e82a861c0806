"""EventFd: one owned, non-blocking eventfd(2), the doorbell between KVM and device threads.

KVM writes to an ioeventfd when the guest touches a registered address, and reads an irqfd
to raise a GSI, so neither direction needs a vCPU exit to userspace.
"""

from __future__ import annotations

import os

__all__ = ("EventFd",)


class EventFd:
    """An eventfd counter; ``close()`` is idempotent and leaves ``fd == -1``."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    @property
    def fd(self) -> int:
        return self._fd

    def signal(self, n: int = 1) -> None:
        """Add ``n`` to the counter (wakes readers; KVM raises the irqfd's GSI)."""
        if self._fd >= 0:
            os.eventfd_write(self._fd, n)

    def consume(self) -> int:
        """Read and reset the counter; 0 if it was zero (never blocks)."""
        if self._fd < 0:
            return 0
        try:
            return os.eventfd_read(self._fd)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __repr__(self) -> str:
        return f"EventFd(fd={self._fd})"
