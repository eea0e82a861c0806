"""Values decoded with BTF: bytes of a BPF map's key or value as named fields, and the
place of one field for a write.

The BTF may come from the guest (a BPF object's own), so it is untrusted like the bytes:
nesting is bounded by :data:`MAX_DEPTH`, the decoded nodes by a budget, arrays by
:data:`MAX_ARRAY`; a field whose bytes are missing decodes as None, and a blob that breaks
a rule raises :class:`ValueDecodeError`, never anything else.

>>> decode(btf, value_type_id, raw)        # a .bss DATASEC
{'nr_enqueued': 1234, 'nr_dispatched': 1200, 'stats': [0, 0, 3], 'name': 'qmap'}
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from monitor_proc.btf import Btf, BtfError, BtfType, Kind

__all__ = (
    "MAX_ARRAY",
    "MAX_DEPTH",
    "MAX_NODES",
    "Field",
    "ValueDecodeError",
    "decode",
    "encode_int",
    "locate",
)

MAX_DEPTH = 16
MAX_NODES = 8192
MAX_ARRAY = 256
_CHAR_NAMES = {"char", "signed char", "unsigned char"}
_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4


class ValueDecodeError(ValueError):
    """The BTF (or a path into it) is not usable for this value."""


def decode(
    btf: Btf, type_id: int, data: bytes, max_nodes: int = MAX_NODES, max_array: int = MAX_ARRAY
) -> Any:
    """``data`` (a value of ``type_id``) as Python values: ints, bools, strings for char
    arrays, enum names, lists for arrays (their first ``max_array`` elements), dicts for
    structs, unions and DATASECs."""
    try:
        return _Decoder(btf, data, max_nodes, min(max_array, MAX_ARRAY)).value(type_id, 0, 0)
    except (BtfError, ValueError, IndexError, struct.error) as exc:
        raise ValueDecodeError(f"BTF type {type_id}: {exc}") from exc


class _Decoder:
    def __init__(self, btf: Btf, data: bytes, max_nodes: int, max_array: int) -> None:
        self.btf, self.data, self.left, self.max_array = btf, data, max_nodes, max_array

    def value(self, tid: int, off: int, depth: int) -> Any:
        self.left -= 1
        if depth > MAX_DEPTH or self.left < 0:
            return None
        t = self.btf.resolve(tid)
        k = t.kind
        if k == Kind.VAR:
            return self.value(t.ref, off, depth + 1)
        if k == Kind.INT:
            return self._int(t, off)
        if k in (Kind.ENUM, Kind.ENUM64):
            return self._enum(t, off)
        if k == Kind.PTR:
            return self._uint(off, 8)
        if k == Kind.FLOAT:
            raw = self.data[off : off + t.size]
            return (
                struct.unpack("<" + {4: "f", 8: "d"}[t.size], raw)[0]
                if len(raw) in (4, 8) and t.size in (4, 8)
                else None
            )
        if k == Kind.ARRAY:
            return self._array(t, off, depth)
        if k in (Kind.STRUCT, Kind.UNION):
            return self._struct(t, off, depth)
        if k == Kind.DATASEC:
            out: dict[str, Any] = {}
            for item in t.items[: MAX_ARRAY * 4]:
                out[item.name] = self.value(item.type_id, off + item.bit_offset, depth + 1)
            return out
        return None  # void, FWD, FUNC: nothing to show

    def _uint(self, off: int, size: int) -> int | None:
        raw = self.data[off : off + size]
        return int.from_bytes(raw, "little") if len(raw) == size and off >= 0 else None

    def _int(self, t: BtfType, off: int) -> Any:
        enc = t.extra >> 24 & 0xF
        v = self._uint(off, t.size)
        if v is None:
            return None
        bits = min(t.extra & 0xFF or t.size * 8, t.size * 8)
        v = (v >> (t.extra >> 16 & 0xFF)) & ((1 << bits) - 1)
        if enc & _INT_BOOL:
            return bool(v)
        if enc & _INT_SIGNED and v >> (bits - 1):
            v -= 1 << bits
        return v

    def _enum(self, t: BtfType, off: int) -> Any:
        v = self._uint(off, t.size)
        if v is None:
            return None
        for m in t.items[:4096]:
            if m.value == v or m.value == v - (1 << (8 * t.size)):
                return m.name
        return v

    def _array(self, t: BtfType, off: int, depth: int) -> Any:
        elem = self.btf.resolve(t.ref)
        n = t.nelems
        if elem.kind == Kind.INT and elem.size == 1 and elem.name in _CHAR_NAMES:
            raw = self.data[off : off + min(n, 4096)]
            return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        esize = self.btf.size_of(t.ref)
        if esize <= 0:
            return []
        n = min(n, self.max_array, max(0, (len(self.data) - off) // esize))
        out = []
        for i in range(n):
            if self.left <= 0:  # out of budget: the list ends here
                break
            out.append(self.value(t.ref, off + i * esize, depth + 1))
        return out

    def _struct(self, t: BtfType, off: int, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in t.items[: MAX_ARRAY * 4]:
            if m.bit_size:  # a bitfield
                out[m.name] = self._bits(off, m.bit_offset, m.bit_size)
                continue
            v = self.value(m.type_id, off + m.bit_offset // 8, depth + 1)
            if not m.name and isinstance(v, dict):
                out.update(v)  # anonymous struct/union: its members are the outer's
            else:
                out[m.name] = v
        return out

    def _bits(self, off: int, bit_off: int, width: int) -> int | None:
        start = off + bit_off // 8
        nbytes = (bit_off % 8 + width + 7) // 8
        v = self._uint(start, nbytes)
        return None if v is None else (v >> (bit_off % 8)) & ((1 << width) - 1)


@dataclass(frozen=True)
class Field:
    """Where a writable scalar lives in a value: ``offset`` bytes in, ``size`` bytes."""

    path: str
    offset: int
    size: int
    type_id: int
    signed: bool
    boolean: bool


def _member(btf: Btf, t: BtfType, name: str, depth: int = 0) -> tuple[int, int, int] | None:
    """(type id, bit offset, bit size) of member ``name``, through anonymous members."""
    if depth > MAX_DEPTH:
        return None
    for m in t.items:
        if m.name == name:
            return m.type_id, m.bit_offset, m.bit_size
    for m in t.items:
        if not m.name:
            inner = btf.resolve(m.type_id)
            if inner.kind in (Kind.STRUCT, Kind.UNION):
                hit = _member(btf, inner, name, depth + 1)
                if hit is not None:
                    return hit[0], m.bit_offset + hit[1], hit[2]
    return None


def locate(btf: Btf, type_id: int, path: str) -> Field:
    """The scalar at dotted ``path`` in a value of ``type_id``: DATASEC variables and
    struct members by name, array elements by number (``stats.3``).

    :raises ValueDecodeError: no such field, or it is not an integer, bool or enum (or a
        bitfield).
    """
    try:
        return _locate(btf, type_id, path)
    except (BtfError, ValueError, IndexError, struct.error) as exc:
        if isinstance(exc, ValueDecodeError):
            raise
        raise ValueDecodeError(f"{path}: {exc}") from exc


def _locate(btf: Btf, type_id: int, path: str) -> Field:
    parts = path.split(".")
    if not path or len(parts) > MAX_DEPTH or not all(parts):
        raise ValueDecodeError(f"{path!r} is not a field path (names or indexes, '.'-separated)")
    tid, off = type_id, 0
    for part in parts:
        t = btf.resolve(tid)
        if t.kind == Kind.VAR:
            t = btf.resolve(t.ref)
        if t.kind == Kind.DATASEC:
            hit = next((i for i in t.items if i.name == part), None)
            if hit is None:
                raise ValueDecodeError(f"no variable {part!r} in {t.name or 'the value'}")
            tid, off = btf.type(hit.type_id).ref, off + hit.bit_offset
        elif t.kind in (Kind.STRUCT, Kind.UNION):
            m = _member(btf, t, part)
            if m is None:
                raise ValueDecodeError(f"no member {part!r} in struct {t.name or '(anonymous)'}")
            if m[2] or m[1] % 8:
                raise ValueDecodeError(f"{part!r} is a bitfield: not writable")
            tid, off = m[0], off + m[1] // 8
        elif t.kind == Kind.ARRAY:
            if not part.isdigit() or int(part) >= t.nelems:
                raise ValueDecodeError(f"{part!r}: not an index below {t.nelems}")
            tid, off = t.ref, off + int(part) * btf.size_of(t.ref)
        else:
            raise ValueDecodeError(f"{part!r} follows a scalar")
    t = btf.resolve(tid)
    if t.kind == Kind.INT and t.size in (1, 2, 4, 8):
        enc = t.extra >> 24 & 0xF
        return Field(path, off, t.size, tid, bool(enc & _INT_SIGNED), bool(enc & _INT_BOOL))
    if t.kind in (Kind.ENUM, Kind.ENUM64) and t.size in (1, 2, 4, 8):
        return Field(path, off, t.size, tid, t.kind_flag, False)
    raise ValueDecodeError(f"{path}: a {t.kind.name.lower()}, not an integer field")


def encode_int(f: Field, value: int | bool) -> bytes:
    """``value`` as ``f``'s bytes.

    :raises ValueDecodeError: out of the field's range.
    """
    v = int(value)
    lo, hi = (
        (-(1 << (8 * f.size - 1)), (1 << (8 * f.size - 1)) - 1)
        if f.signed
        else (0, (1 << (8 * f.size)) - 1)
    )
    if f.boolean:
        lo, hi = 0, 1
    if not lo <= v <= hi:
        raise ValueDecodeError(f"{f.path}: {value} is outside {lo}..{hi}")
    return v.to_bytes(f.size, "little", signed=f.signed)
