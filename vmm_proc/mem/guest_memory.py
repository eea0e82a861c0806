"""GuestMemory: guest RAM in a shared /dev/shm file, split around the x86 PCI hole.

The file is mapped MAP_SHARED once; other processes (the monitor) map the same file using
``layout()``. Guest physical addresses below ``PCI_HOLE_START`` sit at the same file offset;
RAM beyond it continues at 4 GiB (``PCI_HOLE_END``), as on a PC.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any

from schedlab_shared.guest_ram import SHM_PREFIX
from vmm_proc.mem._ffi import MAP_FAILED, ffi, lib
from vmm_proc.mem.access import GuestMemoryError
from vmm_proc.mem.owned import Finalized
from vmm_proc.mem.sparse_copy import copy_sparse

__all__ = (
    "GuestMemory",
    "MemoryRegion",
    "PCI_HOLE_START",
    "PCI_HOLE_END",
    "split_ram",
)

PCI_HOLE_START = 3 << 30  # 3 GiB: RAM stops here for the 32-bit MMIO window
PCI_HOLE_END = 4 << 30
_PAGE = mmap.PAGESIZE
_MADV_HUGEPAGE = 14


@dataclass(frozen=True, slots=True)
class MemoryRegion:
    """One guest-physical range backed by ``[offset, offset + size)`` of the file.

    :param host_addr: where the range is mapped in this process (for KVM memory slots).
    """

    gpa: int
    size: int
    offset: int
    host_addr: int

    @property
    def end(self) -> int:
        """First guest physical address after the region."""
        return self.gpa + self.size


def split_ram(size: int) -> list[tuple[int, int, int]]:
    """(gpa, size, file offset) ranges for ``size`` bytes of RAM with the PCI hole cut out."""
    low = min(size, PCI_HOLE_START)
    ranges = [(0, low, 0)]
    if size > low:
        ranges.append((PCI_HOLE_END, size - low, low))
    return ranges


class GuestMemory(Finalized):
    """Guest RAM backed by a shared file; implements GuestMemoryAccess.

    >>> with GuestMemory.create("/dev/shm/schedlab-run1-mem", 64 << 20) as mem:
    ...     mem.write(0x1000, b"hi"); mem.read(0x1000, 2)
    b'hi'

    An access must lie inside one region (regions are never adjacent: the hole separates
    them); anything else raises GuestMemoryError(addr, expected, completed).
    """

    def __init__(self, path: str, size: int, base: Any, ranges: list[tuple[int, int, int]]) -> None:
        self.path = path
        self.size = size
        self._base = base
        host = int(ffi.cast("uintptr_t", base))
        self.regions = [MemoryRegion(g, s, o, host + o) for g, s, o in ranges]
        first = self.regions[0]
        self._low_end = first.end if (first.gpa, first.offset) == (0, 0) else 0
        self._buf = ffi.buffer(base, size)
        self.private = False  # a copy-on-write view of a file others cannot see into

    @classmethod
    def create(cls, path: str, size: int) -> GuestMemory:
        """Create ``path`` (must not exist; basename starts with ``schedlab-``) of ``size`` bytes.

        :param size: bytes of RAM, a positive multiple of the page size.
        :raises ValueError: on a bad name or size.
        :raises OSError: if the file exists or cannot be created or mapped (nothing is left behind).
        """
        if not os.path.basename(path).startswith(SHM_PREFIX):
            raise ValueError(f"{path}: shared memory files are named {SHM_PREFIX}*")
        if size <= 0 or size % _PAGE:
            raise ValueError(f"RAM size {size} is not a positive multiple of {_PAGE}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            base = lib.mmap(
                ffi.NULL, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0
            )
            if base == MAP_FAILED:
                err = ffi.errno
                raise OSError(err, f"mmap {path}: {os.strerror(err)}")
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)  # the mapping keeps the file alive
        return cls(path, size, base, split_ram(size))

    @classmethod
    def open_private(cls, path: str, size: int) -> GuestMemory:
        """Map an existing RAM image copy-on-write (MAP_PRIVATE): guest writes stay in this
        process, the file is never changed nor unlinked, so many VMs can start from it.

        :raises OSError: if the file is missing or its size is not ``size``.
        """
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            actual = os.fstat(fd).st_size
            if actual != size:
                raise OSError(errno.EINVAL, f"{path}: {actual} bytes, expected {size}")
            prot = mmap.PROT_READ | mmap.PROT_WRITE
            base = lib.mmap(ffi.NULL, size, prot, mmap.MAP_PRIVATE, fd, 0)
            if base == MAP_FAILED:
                err = ffi.errno
                raise OSError(err, f"mmap {path}: {os.strerror(err)}")
        finally:
            os.close(fd)
        mem = cls(path, size, base, split_ram(size))
        mem.private = True
        return mem

    @classmethod
    def create_from(cls, path: str, image: str, size: int) -> GuestMemory:
        """:meth:`create` ``path`` and fill it from the RAM image ``image`` (its data ranges
        only: holes stay holes), for guests whose RAM other processes must map."""
        mem = cls.create(path, size)
        try:
            copy_sparse(image, path, size)
        except BaseException:
            mem.close()
            raise
        return mem

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._base is None

    def close(self) -> None:
        """Unmap and unlink the file; idempotent. Readers that mapped it keep their view."""
        base, self._base, self._buf = self._base, None, None
        if base is None:
            return
        lib.munmap(base, self.size)
        if self.private:
            return  # the image belongs to whoever made it
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def advise_huge(self) -> int:
        """madvise(MADV_HUGEPAGE) over guest RAM; 0 on success, else the errno."""
        if self._base is None:
            return errno.EBADF
        if lib.madvise(self._base, self.size, _MADV_HUGEPAGE) != 0:
            return int(ffi.errno)
        return 0

    # -- address translation ----------------------------------------------------------

    def layout(self) -> list[dict[str, int | str]]:
        """The mapping recipe for other processes: ``[{"gpa", "size", "path", "offset"}]``
        (empty for a private mapping: the file does not show the guest's writes)."""
        if self.private:
            return []
        return [
            {"gpa": r.gpa, "size": r.size, "path": self.path, "offset": r.offset}
            for r in self.regions
        ]

    def file_offset(self, gpa: int, size: int) -> int:
        """File offset of ``[gpa, gpa + size)``, which must lie inside one region."""
        # Fast path: low RAM is region 0 at file offset 0 (almost every device access).
        if 0 <= gpa and 0 <= size and gpa + size <= self._low_end and self._base is not None:
            return gpa
        if self._base is None or gpa < 0 or size < 0:
            raise GuestMemoryError(gpa, size, 0)
        for r in self.regions:
            if r.gpa <= gpa < r.end or (size == 0 and gpa == r.end):
                room = r.end - gpa
                if size > room:
                    raise GuestMemoryError(gpa, size, room)
                return r.offset + gpa - r.gpa
        raise GuestMemoryError(gpa, size, 0)

    def host_address(self, gpa: int) -> int:
        """The address in this process where ``gpa`` is mapped."""
        return int(ffi.cast("uintptr_t", self._base)) + self.file_offset(gpa, 1)

    # -- access ------------------------------------------------------------------------

    def read(self, gpa: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``gpa``."""
        off = self.file_offset(gpa, size)
        return self._buf[off : off + size]

    def write(self, gpa: int, data: bytes) -> None:
        """Write all of ``data`` at ``gpa``."""
        off = self.file_offset(gpa, len(data))
        self._buf[off : off + len(data)] = data

    def read_struct(self, gpa: int, fmt: str | struct.Struct) -> tuple[Any, ...]:
        """Unpack a ``struct`` format (e.g. ``"<IQ"``) at ``gpa``."""
        st = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        return st.unpack(self.read(gpa, st.size))

    def write_struct(self, gpa: int, fmt: str | struct.Struct, *values: Any) -> None:
        """Pack ``values`` with a ``struct`` format and write them at ``gpa``."""
        st = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        self.write(gpa, st.pack(*values))

    def read_int(self, gpa: int, size: int) -> int:
        """A little-endian unsigned integer of ``size`` (1, 2, 4, 8) bytes."""
        return int.from_bytes(self.read(gpa, size), "little")

    def write_int(self, gpa: int, size: int, value: int) -> None:
        """Store ``value`` as a little-endian unsigned integer of ``size`` bytes."""
        self.write(gpa, value.to_bytes(size, "little"))
