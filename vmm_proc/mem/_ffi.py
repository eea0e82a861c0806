"""libc mmap/munmap through cffi (ABI mode) for the guest RAM mapping."""

from __future__ import annotations

from typing import Any

import cffi  # type: ignore[import-untyped]

__all__ = ("ffi", "lib", "MAP_FAILED")

ffi = cffi.FFI()
ffi.cdef(
    """
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
    int munmap(void *addr, size_t length);
    int madvise(void *addr, size_t length, int advice);
    """
)
lib: Any = ffi.dlopen(None)
MAP_FAILED = ffi.cast("void *", -1)
