"""Views of guest physical memory for the monitor: read-only unless a write is asked for.

The helpers only ever call ``read(pa, size) -> bytes`` (STYLE practice 13), so the same
code runs against the live guest (:class:`GuestPhysMemory` over the VMM's shared RAM
file), a dump file (:class:`DumpMemory`) or a test fake (:class:`ReaderMemory`). The one
host-to-guest write (the sched_ext watchdog override) goes through ``write(pa, data)`` of
a mapping opened ``writable=True``, bounded to :data:`MAX_WRITE` bytes inside one region.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

__all__ = (
    "MAX_WRITE",
    "DumpMemory",
    "FaultError",
    "GuestPhysMemory",
    "PhysMemory",
    "ReaderMemory",
    "Region",
)

#: Largest single write into guest RAM: the monitor writes single kernel variables.
MAX_WRITE = 64


class FaultError(Exception):
    """A read of an address that no region (or no page-table entry) backs.

    :param address: the first address that could not be read.
    """

    def __init__(self, address: int, size: int = 0, what: str = "physical") -> None:
        super().__init__(f"cannot read {size} bytes at {what} address {address:#x}")
        self.address = address
        self.size = size


class PhysMemory(Protocol):
    """What the monitor reads guest RAM through."""

    def read(self, pa: int, size: int) -> bytes: ...


@dataclass(frozen=True)
class Region:
    """``[gpa, gpa + size)`` of guest RAM is ``[offset, offset + size)`` of ``path``."""

    gpa: int
    size: int
    path: str
    offset: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Region:
        """Validate one layout entry ``{"gpa", "size", "path", "offset"}`` from the VMM.

        :raises ValueError: a missing or ill-typed field, or a negative value.
        """
        try:
            gpa, size, path, offset = d["gpa"], d["size"], d["path"], d.get("offset", 0)
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed memory region {d!r}") from e
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (gpa, size, offset)):
            raise ValueError(f"memory region {d!r}: gpa, size and offset must be integers")
        if not isinstance(path, str) or gpa < 0 or size <= 0 or offset < 0:
            raise ValueError(f"memory region {d!r}: bad path or negative range")
        return cls(gpa, size, path, offset)

    @property
    def end(self) -> int:
        return self.gpa + self.size


class GuestPhysMemory:
    """Guest RAM regions mapped shared, so reads see the guest live; read-only unless
    ``writable`` (then :meth:`write` works too).

    >>> with GuestPhysMemory([{"gpa": 0, "size": 512 << 20,
    ...                        "path": "/dev/shm/schedlab-x", "offset": 0}]) as mem:
    ...     mem.read(0x1000, 8)
    """

    def __init__(
        self, regions: Iterable[Region | Mapping[str, Any]], writable: bool = False
    ) -> None:
        self.writable = writable
        regs = sorted(
            (r if isinstance(r, Region) else Region.from_dict(r) for r in regions),
            key=lambda r: r.gpa,
        )
        for a, b in zip(regs, regs[1:], strict=False):
            if b.gpa < a.end:
                raise ValueError(f"memory regions overlap at {b.gpa:#x}")
        self.regions = regs
        self._maps: list[tuple[Region, mmap.mmap, int]] = []
        try:
            for r in regs:
                self._maps.append(_map_region(r, writable))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unmap every region (idempotent)."""
        maps, self._maps = self._maps, []
        for _, mm, _ in maps:
            mm.close()

    def read(self, pa: int, size: int) -> bytes:
        """``size`` bytes at guest physical ``pa``; may span adjacent regions.

        :raises FaultError: some byte is not backed by any region.
        """
        if pa < 0 or size < 0:
            raise FaultError(pa, size)
        out = []
        addr, left = pa, size
        while left:
            for r, mm, skew in self._maps:
                if r.gpa <= addr < r.end:
                    n = min(left, r.end - addr)
                    start = skew + addr - r.gpa
                    out.append(mm[start : start + n])
                    addr += n
                    left -= n
                    break
            else:
                raise FaultError(addr, left)
        return b"".join(out) if len(out) != 1 else out[0]

    def write(self, pa: int, data: bytes) -> None:
        """Store ``data`` at guest physical ``pa``: at most :data:`MAX_WRITE` bytes, all
        inside one region (a kernel variable never spans two).

        :raises PermissionError: the mapping was opened read-only.
        :raises FaultError: some byte is not backed by that region.
        """
        if not self.writable:
            raise PermissionError("guest RAM is mapped read-only (open it writable=True)")
        if pa < 0 or not 0 < len(data) <= MAX_WRITE:
            raise FaultError(pa, len(data))
        for r, mm, skew in self._maps:
            if r.gpa <= pa and pa + len(data) <= r.end:
                start = skew + pa - r.gpa
                mm[start : start + len(data)] = data
                return
        raise FaultError(pa, len(data))


def _map_region(r: Region, writable: bool = False) -> tuple[Region, mmap.mmap, int]:
    """Map ``r`` (read-only unless ``writable``); mmap offsets must be page-aligned, so map
    from the page below."""
    skew = r.offset % mmap.ALLOCATIONGRANULARITY
    fd = os.open(r.path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_size < r.offset + r.size:
            raise ValueError(f"{r.path} is shorter than region {r.gpa:#x}+{r.size:#x}")
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        mm = mmap.mmap(fd, r.size + skew, flags=mmap.MAP_SHARED, prot=prot, offset=r.offset - skew)
    finally:
        os.close(fd)
    return r, mm, skew


class DumpMemory(GuestPhysMemory):
    """A raw physical-memory dump (or a saved guest RAM file) read as RAM from ``gpa``."""

    def __init__(self, path: str | Path, gpa: int = 0) -> None:
        super().__init__([Region(gpa, os.stat(path).st_size, str(path), 0)])


class ReaderMemory:
    """Adapts any ``read(gpa, size)`` (e.g. ``FakeGuestMemory.read``) to :class:`PhysMemory`,
    turning its exceptions into :class:`FaultError`; ``write(gpa, data)`` too, if given.
    """

    def __init__(
        self,
        read: Callable[[int, int], bytes],
        errors: tuple[type[BaseException], ...] = (Exception,),
        write: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self._read = read
        self._errors = errors
        self._write = write

    def write(self, pa: int, data: bytes) -> None:
        if self._write is None:
            raise PermissionError("this memory is read-only")
        if pa < 0 or not 0 < len(data) <= MAX_WRITE:
            raise FaultError(pa, len(data))
        try:
            self._write(pa, bytes(data))
        except self._errors as e:
            raise FaultError(pa, len(data)) from e

    def read(self, pa: int, size: int) -> bytes:
        try:
            data = self._read(pa, size)
        except FaultError:
            raise
        except self._errors as e:
            raise FaultError(pa, size) from e
        if len(data) != size:
            raise FaultError(pa + len(data), size - len(data))
        return bytes(data)
