"""Guest memory: the access contract and its shared-file implementation.

``GuestMemory.create(path, size)`` maps guest RAM from a /dev/shm file (split at the
PCI hole); devices and loaders are written against ``GuestMemoryAccess``.
"""

from vmm_proc.mem.access import GuestMemoryAccess, GuestMemoryError
from vmm_proc.mem.guest_memory import (
    PCI_HOLE_END,
    PCI_HOLE_START,
    GuestMemory,
    MemoryRegion,
    split_ram,
)

__all__ = (
    "GuestMemory",
    "GuestMemoryAccess",
    "GuestMemoryError",
    "MemoryRegion",
    "PCI_HOLE_END",
    "PCI_HOLE_START",
    "split_ram",
)
