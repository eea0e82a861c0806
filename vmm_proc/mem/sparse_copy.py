"""Copy a RAM image file range by range, skipping holes (SEEK_DATA/SEEK_HOLE; tmpfs and
ext4 report them), so an 8 GiB guest that touched 100 MiB costs 100 MiB of copying."""

from __future__ import annotations

import errno
import os

__all__ = ("copy_sparse", "data_ranges")

_CHUNK = 1 << 24


def data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the file's data below ``size`` (one range if holes are unknown)."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                break
            return [(0, size)]  # the filesystem cannot tell: copy everything
        if start >= size:
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append((start, end))
        pos = end
    return out


def copy_sparse(src: str, dst: str, size: int) -> int:
    """Copy the first ``size`` bytes of ``src`` over the existing file ``dst``; holes of
    ``src`` are not written (``dst`` must read as zeros there, e.g. a fresh ftruncate).

    :return: bytes copied.
    """
    copied = 0
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        for start, end in data_ranges(fin.fileno(), size):
            pos = start
            while pos < end:
                chunk = os.pread(fin.fileno(), min(_CHUNK, end - pos), pos)
                if not chunk:
                    raise OSError(errno.EIO, f"{src}: ends at {pos:#x}, before {size:#x}")
                if chunk.count(0) != len(chunk):  # zero pages stay holes
                    os.pwrite(fout.fileno(), chunk, pos)
                pos += len(chunk)
                copied += len(chunk)
    return copied
