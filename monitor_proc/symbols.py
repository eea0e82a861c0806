"""A kernel symbol table: name -> address, and address -> nearest symbol."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from pathlib import Path

__all__ = ("SymbolNotFound", "SymbolTable", "parse_system_map")

# Debian ships a one-line System.map stub; a real one has tens of thousands of lines.
_MIN_REAL_SYSTEM_MAP = 1000


class SymbolNotFound(KeyError):
    """A symbol the table does not hold."""

    def __init__(self, name: str, source: str) -> None:
        super().__init__(name)
        self.name = name
        self.source = source

    def __str__(self) -> str:
        return f"kernel symbol {self.name!r} not found in {self.source}"


class SymbolTable:
    """Kernel symbols from one source (kallsyms tables or a System.map).

    >>> syms.address("runqueues")
    18446744071632814080

    Duplicate names (static symbols) keep their lowest address.
    """

    def __init__(self, entries: Iterable[tuple[str, int, str]], source: str) -> None:
        self.source = source
        by_name: dict[str, list] = {}  # name -> [address, type]
        for name, addr, typ in entries:
            old = by_name.get(name)
            if old is None or addr < old[0]:
                by_name[name] = [addr, typ]
        self._by_name = by_name
        self._sorted: tuple[list[int], list[str]] | None = None

    @classmethod
    def from_mapping(cls, mapping: dict[str, list], source: str) -> SymbolTable:
        """Adopt an already unique ``{name: [address, type]}`` map (the cache format)."""
        table = cls((), source)
        table._by_name = mapping
        return table

    def to_mapping(self) -> dict[str, list]:
        """``{name: [address, type]}``, the inverse of :meth:`from_mapping`."""
        return self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def address(self, name: str) -> int:
        """Address of ``name``.

        :raises SymbolNotFound: the table has no such symbol.
        """
        try:
            return self._by_name[name][0]
        except KeyError:
            raise SymbolNotFound(name, self.source) from None

    def type_of(self, name: str) -> str:
        """nm-style type letter of ``name`` (``T``, ``D``, ``B``...)."""
        self.address(name)
        return self._by_name[name][1]

    def lookup(self, addr: int) -> tuple[str, int] | None:
        """The symbol at or below ``addr`` and the offset into it, or None below all symbols."""
        if self._sorted is None:
            pairs = sorted((a, n) for n, (a, _) in self._by_name.items())
            self._sorted = ([a for a, _ in pairs], [n for _, n in pairs])
        addrs, names = self._sorted
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0:
            return None
        return names[i], addr - addrs[i]

    def entries(self) -> list[tuple[str, int, str]]:
        """Unique (name, address, type) triples, sorted by address."""
        out = [(n, a, t) for n, (a, t) in self._by_name.items()]
        out.sort(key=lambda e: e[1])
        return out


def parse_system_map(path: str | Path) -> SymbolTable | None:
    """Read an ``nm``-format System.map; None for a stub (too few lines to be real).

    :raises OSError: the file cannot be read.
    """
    entries: list[tuple[str, int, str]] = []
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            entries.append((parts[2], addr, parts[1]))
    if len(entries) < _MIN_REAL_SYSTEM_MAP:
        return None
    return SymbolTable(entries, f"System.map {path}")
