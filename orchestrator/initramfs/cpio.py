"""A deterministic writer for the ``newc`` cpio format (the initramfs format).

Format: each entry is a 110-byte ASCII header (magic ``070701`` then 13 fields of 8 hex
digits), the NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes; the
archive ends with an entry named ``TRAILER!!!`` (:linux:`Documentation/driver-api/early-userspace/buffer-format.rst`).

Determinism: mtimes are a fixed constant, uid/gid 0, inode numbers follow insertion order,
so the same calls in the same order produce the same bytes.

>>> a = CpioArchive()
>>> a.add_dir("etc")
>>> a.add_file("etc/hello", b"hi\\n")
>>> a.add_symlink("bin/sh", "busybox")
>>> data = a.to_bytes()
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ("CpioArchive", "CpioError", "FIXED_MTIME")

#: Every entry's mtime (2020-01-01 UTC): fixed so images are reproducible.
FIXED_MTIME = 1577836800
_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"
_MAX_FIELD = 0xFFFFFFFF


class CpioError(ValueError):
    """An entry cannot be represented (bad path, duplicate, field overflow)."""


@dataclass(frozen=True)
class _Entry:
    name: str
    mode: int
    data: bytes
    rdev_major: int = 0
    rdev_minor: int = 0


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _normalize(path: str) -> str:
    name = path.strip("/")
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise CpioError(f"invalid archive path {path!r}")
    if "\0" in name:
        raise CpioError(f"NUL in archive path {path!r}")
    return name


class CpioArchive:
    """An in-memory newc archive; entries are written in insertion order.

    Parent directories are not created implicitly: add them first (the kernel's
    unpacker does not create missing parents either).
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._names: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: str) -> bool:
        return path.strip("/") in self._names

    @property
    def names(self) -> list[str]:
        """Entry names in archive order (without leading ``/``)."""
        return [e.name for e in self._entries]

    def _add(self, entry: _Entry) -> None:
        if entry.name in self._names:
            raise CpioError(f"duplicate archive path {entry.name!r}")
        if len(entry.data) > _MAX_FIELD:
            raise CpioError(f"{entry.name!r}: file larger than 4 GiB")
        self._names.add(entry.name)
        self._entries.append(entry)

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        """Add a directory.

        :param path: path inside the archive (``/usr`` and ``usr`` are the same).
        :param mode: permission bits.
        """
        self._add(_Entry(_normalize(path), stat.S_IFDIR | (mode & 0o7777), b""))

    def add_dirs(self, path: str, mode: int = 0o755) -> None:
        """Add ``path`` and each missing parent directory (``mkdir -p``)."""
        parts = _normalize(path).split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in self._names:
                self.add_dir(sub, mode)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file.

        :param data: the file's content.
        :param mode: permission bits (0o755 for executables).
        """
        self._add(_Entry(_normalize(path), stat.S_IFREG | (mode & 0o7777), bytes(data)))

    def add_symlink(self, path: str, target: str) -> None:
        """Add a symbolic link ``path -> target`` (target stored verbatim)."""
        if not target or "\0" in target:
            raise CpioError(f"invalid symlink target {target!r}")
        self._add(_Entry(_normalize(path), stat.S_IFLNK | 0o777, target.encode()))

    def add_char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node (e.g. ``dev/console`` 5:1)."""
        self._add(_Entry(_normalize(path), stat.S_IFCHR | (mode & 0o7777), b"", major, minor))

    def write(self, fileobj: BinaryIO) -> int:
        """Write the archive (with trailer) to ``fileobj``.

        :return: number of bytes written.
        """
        total = 0
        for ino, entry in enumerate(self._entries, start=1):
            total += self._write_entry(fileobj, ino, entry)
        total += self._write_entry(fileobj, 0, _Entry(_TRAILER, 0, b""))
        return total

    def to_bytes(self) -> bytes:
        """Return the archive (with trailer) as bytes."""
        import io

        buf = io.BytesIO()
        self.write(buf)
        return buf.getvalue()

    @staticmethod
    def _write_entry(fileobj: BinaryIO, ino: int, entry: _Entry) -> int:
        name = entry.name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        fields = (
            ino,
            entry.mode,
            0,
            0,
            nlink,
            FIXED_MTIME,
            len(entry.data),
            0,
            0,
            entry.rdev_major,
            entry.rdev_minor,
            len(name),
            0,
        )
        header = _MAGIC + b"".join(b"%08X" % f for f in fields)
        head = header + name
        fileobj.write(head)
        fileobj.write(_pad4(len(head)))
        fileobj.write(entry.data)
        fileobj.write(_pad4(len(entry.data)))
        return len(head) + (-len(head) % 4) + len(entry.data) + (-len(entry.data) % 4)
