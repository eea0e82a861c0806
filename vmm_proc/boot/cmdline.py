"""A validated kernel command-line builder with a fixed capacity.

>>> cl = Cmdline()
>>> cl.insert("console", "ttyS0")
>>> cl.insert_str("nokaslr panic=-1")
>>> str(cl)
'console=ttyS0 nokaslr panic=-1'
"""

from __future__ import annotations

import enum

__all__ = ("Cmdline", "CmdlineError", "CmdlineErrorKind", "X86_CMDLINE_CAPACITY")

# COMMAND_LINE_SIZE of arch/x86/include/asm/setup.h, terminating NUL included.
X86_CMDLINE_CAPACITY = 2048


class CmdlineErrorKind(enum.Enum):
    """Why a piece was refused."""

    EMPTY_KEY = "key is empty"
    HAS_SPACE = "contains a space"
    HAS_EQUALS = "key contains '='"
    INVALID_ASCII = "contains a non-printable or non-ASCII character"
    TOO_LARGE = "would exceed the capacity"


class CmdlineError(ValueError):
    """A refused command-line piece; ``kind`` says why."""

    def __init__(self, kind: CmdlineErrorKind, piece: str) -> None:
        super().__init__(f"command line piece {piece!r}: {kind.value}")
        self.kind = kind
        self.piece = piece


def _check_printable(piece: str) -> None:
    if not all(" " <= ch <= "~" for ch in piece):
        raise CmdlineError(CmdlineErrorKind.INVALID_ASCII, piece)


class Cmdline:
    """Space-separated kernel parameters, at most ``capacity - 1`` bytes (plus NUL)."""

    def __init__(self, capacity: int = X86_CMDLINE_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"command line capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._line = ""

    def _append(self, piece: str) -> None:
        new = f"{self._line} {piece}" if self._line else piece
        if len(new) + 1 > self.capacity:
            raise CmdlineError(CmdlineErrorKind.TOO_LARGE, piece)
        self._line = new

    def insert(self, key: str, value: str) -> None:
        """Append ``key=value``.

        :raises CmdlineError: empty key, space in key or value, '=' in key,
            non-printable character, or no room left.
        """
        if not key:
            raise CmdlineError(CmdlineErrorKind.EMPTY_KEY, f"{key}={value}")
        _check_printable(key)
        _check_printable(value)
        if " " in key or " " in value:
            raise CmdlineError(CmdlineErrorKind.HAS_SPACE, f"{key}={value}")
        if "=" in key:
            raise CmdlineError(CmdlineErrorKind.HAS_EQUALS, key)
        self._append(f"{key}={value}")

    def insert_str(self, raw: str) -> None:
        """Append ``raw`` verbatim (may hold several space-separated parameters).

        :raises CmdlineError: non-printable character or no room left.
        """
        _check_printable(raw)
        raw = raw.strip()
        if raw:
            self._append(raw)

    def __str__(self) -> str:
        return self._line

    def __len__(self) -> int:
        return len(self._line)

    def as_bytes(self) -> bytes:
        """The line as ASCII with its terminating NUL, ready to copy into guest memory."""
        return self._line.encode("ascii") + b"\0"
