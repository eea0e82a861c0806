"""An address bus that owns ranges and dispatches accesses to device models.

One instance serves port I/O and another MMIO. Devices see offsets from their base, never
absolute addresses. An access nobody claims is a counted, rate-limited-logged, harmless
read of all-ones (writes are dropped and counted), so a hostile guest can neither crash the
VMM through it nor grow its memory or logs without bound.
"""

from __future__ import annotations

import bisect
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = (
    "Bus",
    "BusConflictError",
    "BusDevice",
    "MAX_LOGGED_UNMAPPED",
    "MAX_TRACKED_UNMAPPED",
    "UnmappedStats",
)

log = logging.getLogger(__name__)

#: Distinct unmapped addresses logged before logging goes quiet.
MAX_LOGGED_UNMAPPED = 16
#: Distinct unmapped addresses with their own counter; the rest share ``other``.
MAX_TRACKED_UNMAPPED = 256
#: Largest single access (an MMIO exit carries at most 8 bytes; port I/O at most 4).
MAX_ACCESS_SIZE = 8


class BusDevice(Protocol):
    """What the bus dispatches to: offsets are relative to the device's base."""

    def read(self, offset: int, size: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...


class BusConflictError(ValueError):
    """A range that overlaps another, is empty, or lies outside the address space."""


@dataclass
class UnmappedStats:
    """Counters of accesses that hit no device."""

    reads: int = 0
    writes: int = 0
    #: Accesses to addresses beyond the first MAX_TRACKED_UNMAPPED distinct ones.
    other: int = 0


@dataclass(frozen=True)
class _Range:
    base: int
    length: int
    device: BusDevice
    name: str


class Bus:
    """Address ranges mapped to devices, with overlap rejection.

    Example::

        bus = Bus("pio", limit=1 << 16)
        bus.insert(0x3F8, 8, uart, name="ttyS0")
        bus.read(0x3FD, 1)  # -> uart.read(5, 1)

    :param name: label for logs ("pio", "mmio").
    :param limit: one past the highest valid address.
    """

    def __init__(self, name: str, limit: int = 1 << 64) -> None:
        self.name = name
        self.limit = limit
        self._ranges: list[_Range] = []
        self._bases: list[int] = []
        self._lock = threading.Lock()
        self.unmapped = UnmappedStats()
        self._per_addr: dict[int, int] = {}
        self._logged = 0

    def insert(self, base: int, length: int, device: BusDevice, name: str = "") -> None:
        """Map ``[base, base + length)`` to ``device``.

        :raises BusConflictError: the range is empty, out of bounds or overlaps another.
        """
        if length <= 0 or base < 0 or base + length > self.limit:
            raise BusConflictError(f"{self.name}: bad range {base:#x}+{length:#x}")
        with self._lock:
            i = bisect.bisect_right(self._bases, base)
            if i > 0:
                prev = self._ranges[i - 1]
                if prev.base + prev.length > base:
                    raise BusConflictError(
                        f"{self.name}: {base:#x}+{length:#x} overlaps {prev.name or 'device'} "
                        f"at {prev.base:#x}+{prev.length:#x}"
                    )
            if i < len(self._ranges) and self._ranges[i].base < base + length:
                nxt = self._ranges[i]
                raise BusConflictError(
                    f"{self.name}: {base:#x}+{length:#x} overlaps {nxt.name or 'device'} "
                    f"at {nxt.base:#x}+{nxt.length:#x}"
                )
            self._ranges.insert(i, _Range(base, length, device, name))
            self._bases.insert(i, base)

    def find(self, addr: int) -> tuple[int, BusDevice] | None:
        """Return ``(base, device)`` of the range holding ``addr``, or None."""
        r = self._lookup(addr, 1)
        return None if r is None else (r.base, r.device)

    def read(self, addr: int, size: int) -> bytes:
        """Dispatch a read of ``size`` bytes; unmapped or straddling reads give all-ones."""
        r = self._lookup(addr, size)
        if r is None:
            self._count_unmapped(addr, size, write=False)
            return b"\xff" * max(0, min(size, MAX_ACCESS_SIZE))
        return r.device.read(addr - r.base, size)

    def write(self, addr: int, data: bytes) -> None:
        """Dispatch a write; unmapped or straddling writes are dropped and counted."""
        r = self._lookup(addr, len(data))
        if r is None:
            self._count_unmapped(addr, len(data), write=True)
            return
        r.device.write(addr - r.base, data)

    def unmapped_count(self, addr: int) -> int:
        """Accesses seen so far at an unmapped address (0 if never or not tracked)."""
        with self._lock:
            return self._per_addr.get(addr, 0)

    def _lookup(self, addr: int, size: int) -> _Range | None:
        if size <= 0 or size > MAX_ACCESS_SIZE:
            return None
        i = bisect.bisect_right(self._bases, addr) - 1
        if i < 0:
            return None
        r = self._ranges[i]
        if addr + size > r.base + r.length:
            return None
        return r

    def _count_unmapped(self, addr: int, size: int, write: bool) -> None:
        with self._lock:
            if write:
                self.unmapped.writes += 1
            else:
                self.unmapped.reads += 1
            if addr in self._per_addr:
                self._per_addr[addr] += 1
                return
            if len(self._per_addr) >= MAX_TRACKED_UNMAPPED:
                self.unmapped.other += 1
                return
            self._per_addr[addr] = 1
            do_log = self._logged < MAX_LOGGED_UNMAPPED
            self._logged += 1
        if do_log:
            log.info(
                "%s: unmapped %s at %#x size %d%s",
                self.name,
                "write" if write else "read",
                addr,
                size,
                " (further unmapped addresses not logged)"
                if self._logged == MAX_LOGGED_UNMAPPED
                else "",
            )
