"""The consumer-side view of guest memory that devices and loaders are written against.

Implemented by ``vmm_proc.mem.guest_memory.GuestMemory`` (a shared-file mapping) and by
``tests.framework.fake_memory.FakeGuestMemory``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ("GuestMemoryAccess", "GuestMemoryError")


class GuestMemoryError(Exception):
    """An access outside guest RAM, or one that completed only in part."""

    def __init__(self, addr: int, expected: int, completed: int = 0) -> None:
        super().__init__(
            f"guest memory access at {addr:#x}: {expected} bytes wanted, {completed} possible"
        )
        self.addr = addr
        self.expected = expected
        self.completed = completed


class GuestMemoryAccess(Protocol):
    """Exact accesses by guest physical address; both raise GuestMemoryError when out of range."""

    def read(self, gpa: int, size: int) -> bytes: ...

    def write(self, gpa: int, data: bytes) -> None: ...
