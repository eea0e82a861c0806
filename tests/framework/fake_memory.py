"""A bytearray-backed guest memory for device and loader tests."""

from __future__ import annotations

from vmm_proc.mem.access import GuestMemoryError


class FakeGuestMemory:
    """Guest RAM from 0 to ``size``; same contract as GuestMemory."""

    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)

    def _check(self, gpa: int, size: int) -> None:
        if gpa < 0 or size < 0 or gpa + size > len(self.buf):
            raise GuestMemoryError(gpa, size, max(0, min(size, len(self.buf) - gpa)))

    def read(self, gpa: int, size: int) -> bytes:
        self._check(gpa, size)
        return bytes(self.buf[gpa : gpa + size])

    def write(self, gpa: int, data: bytes) -> None:
        self._check(gpa, len(data))
        self.buf[gpa : gpa + len(data)] = data
