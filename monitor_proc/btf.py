"""A reader for the kernel's BTF (``.BTF`` section of vmlinux), for struct layouts.

Format: Documentation/bpf/btf.rst (header, type section, string section; type ids start
at 1, id 0 is void). Only the index (id -> record offset, name -> ids) is built up front;
records are decoded on first use and memoised, so loading a 5 MB blob stays cheap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

__all__ = ("Btf", "BtfError", "BtfMember", "BtfType", "Kind", "Member", "MissingMember", "Struct")

BTF_MAGIC = 0xEB9F
_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_MAX_CHAIN = 64  # typedef/modifier chains deeper than this are a corrupt blob


class Kind(IntEnum):
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# Bytes that follow the common 12-byte record: (fixed, per vlen item).
_TRAILER = {
    Kind.INT: (4, 0),
    Kind.ARRAY: (12, 0),
    Kind.STRUCT: (0, 12),
    Kind.UNION: (0, 12),
    Kind.ENUM: (0, 8),
    Kind.FUNC_PROTO: (0, 8),
    Kind.VAR: (4, 0),
    Kind.DATASEC: (0, 12),
    Kind.DECL_TAG: (4, 0),
    Kind.ENUM64: (0, 12),
}
# Indexed by raw kind number; None marks kinds this reader does not know.
_SKIP: list[tuple[int, int] | None] = [
    _TRAILER.get(Kind(k), (0, 0)) if k in Kind._value2member_map_ else None for k in range(32)
]
_SIZED = {Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.DATASEC, Kind.FLOAT}
_MODIFIERS = {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}


class BtfError(Exception):
    """A malformed BTF blob or a lookup of a type it does not describe."""


class MissingMember(BtfError, AttributeError):
    """A struct has no member of that name (kernel version differences land here)."""


@dataclass(frozen=True)
class BtfMember:
    """One raw member of a struct/union, a function parameter, enum value or datasec entry."""

    name: str
    type_id: int
    bit_offset: int = 0  # struct/union: bits from the start; datasec: byte offset
    bit_size: int = 0  # bitfield width, 0 when not a bitfield; datasec: byte size
    value: int = 0  # enum value


@dataclass(frozen=True)
class BtfType:
    """One decoded type record.

    ``size`` is set for sized kinds, ``ref`` is the referenced type id (PTR, TYPEDEF,
    modifiers, FUNC, VAR, DECL_TAG, ARRAY element), ``nelems`` for arrays.
    """

    id: int
    kind: Kind
    name: str
    size: int = 0
    ref: int = 0
    nelems: int = 0
    kind_flag: bool = False
    items: tuple[BtfMember, ...] = ()
    extra: int = 0  # INT encoding word, VAR linkage, DECL_TAG component index


@dataclass(frozen=True)
class Member:
    """A resolved (possibly nested) member: byte offset from the outer struct.

    ``bit_offset`` is from the start of the outer struct too; ``bit_size`` is non-zero
    only for bitfields; ``size`` is the byte size of the member's (storage) type.
    """

    name: str
    offset: int
    bit_offset: int
    bit_size: int
    type: BtfType
    size: int


class Btf:
    """Type information of one kernel.

    >>> btf = Btf.load("vmlinux")
    >>> btf.struct("rq").member("cfs.nr_running").offset
    """

    def __init__(self, blob: bytes) -> None:
        if len(blob) < _HDR.size:
            raise BtfError("BTF blob shorter than its header")
        magic, _ver, _flags, hdr_len, t_off, t_len, s_off, s_len = _HDR.unpack_from(blob)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
        t0, s0 = hdr_len + t_off, hdr_len + s_off
        if t0 + t_len > len(blob) or s0 + s_len > len(blob) or hdr_len < _HDR.size:
            raise BtfError("BTF header sections exceed the blob")
        self._types = bytes(blob[t0 : t0 + t_len])
        self._strings = bytes(blob[s0 : s0 + s_len])
        self._offsets: list[int] = [0]  # index = type id
        self._by_name: dict[str, list[int]] = {}
        self._decoded: dict[int, BtfType] = {}
        self._structs: dict[str, Struct] = {}
        self._index()

    @classmethod
    def load(cls, path: str | Path) -> Btf:
        """Read BTF from a vmlinux ELF (its ``.BTF`` section) or a raw BTF file.

        :raises BtfError: no BTF there.
        """
        from monitor_proc.image import ImageError, KernelImage

        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"\x7fELF":
            return cls(Path(path).read_bytes())
        image = KernelImage.open(path)
        try:
            return cls(image.section_bytes(".BTF"))
        except ImageError as e:
            raise BtfError(str(e)) from e
        finally:
            image.close()

    # -- index -------------------------------------------------------------------------

    def _index(self) -> None:
        buf, pos, end = self._types, 0, len(self._types)
        unpack, strings, skip = _TYPE.unpack_from, self._strings, _SKIP
        offsets, by_name = self._offsets, self._by_name
        while pos < end:
            if pos + 12 > end:
                raise BtfError(f"truncated type record at {pos}")
            name_off, info, _ = unpack(buf, pos)
            trailer = skip[(info >> 24) & 0x1F]
            if trailer is None:
                raise BtfError(f"unknown BTF kind {(info >> 24) & 0x1F} at {pos}")
            offsets.append(pos)
            if name_off:
                nul = strings.find(b"\0", name_off)
                name = strings[name_off:nul].decode("latin-1") if nul >= 0 else ""
                ids = by_name.get(name)
                if ids is None:
                    by_name[name] = [len(offsets) - 1]
                else:
                    ids.append(len(offsets) - 1)
            pos += 12 + trailer[0] + trailer[1] * (info & 0xFFFF)
        if pos != end:
            raise BtfError("type section does not end on a record boundary")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _str(self, off: int) -> str:
        end = self._strings.find(b"\0", off) if off < len(self._strings) else -1
        if end < 0:  # outside the section, or no terminator (a hostile blob)
            raise BtfError(f"string offset {off} outside the string section")
        return self._strings[off:end].decode("latin-1")

    # -- records -----------------------------------------------------------------------

    def type(self, type_id: int) -> BtfType:
        """The record of ``type_id`` (0 is void).

        :raises BtfError: no such id.
        """
        t = self._decoded.get(type_id)
        if t is None:
            t = self._decode(type_id)
            self._decoded[type_id] = t
        return t

    def _decode(self, tid: int) -> BtfType:
        if tid == 0:
            return BtfType(0, Kind.INT, "void")
        if not 0 < tid < len(self._offsets):
            raise BtfError(f"type id {tid} out of range (1..{len(self)})")
        buf, pos = self._types, self._offsets[tid]
        name_off, info, sz = _TYPE.unpack_from(buf, pos)
        kind, vlen, kflag = Kind((info >> 24) & 0x1F), info & 0xFFFF, bool(info >> 31)
        name, p = self._str(name_off), pos + 12
        sized = kind in _SIZED
        head = BtfType(
            tid, kind, name, size=sz if sized else 0, ref=0 if sized else sz, kind_flag=kflag
        )
        if kind in (Kind.INT, Kind.VAR, Kind.DECL_TAG):
            return replace(head, extra=struct.unpack_from("<I", buf, p)[0])
        if kind == Kind.ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", buf, p)
            return replace(head, ref=elem, nelems=nelems)
        if kind in (Kind.STRUCT, Kind.UNION):
            return replace(head, items=tuple(self._members(p, vlen, kflag)))
        if kind == Kind.ENUM:  # kind_flag marks a signed enum
            vals = struct.iter_unpack("<Ii" if kflag else "<II", buf[p : p + 8 * vlen])
            return replace(head, items=tuple(BtfMember(self._str(n), 0, value=v) for n, v in vals))
        if kind == Kind.ENUM64:
            vals = struct.iter_unpack("<III", buf[p : p + 12 * vlen])
            return replace(
                head,
                items=tuple(
                    BtfMember(self._str(n), 0, value=_enum64(lo, hi, kflag)) for n, lo, hi in vals
                ),
            )
        if kind == Kind.FUNC_PROTO:
            params = struct.iter_unpack("<II", buf[p : p + 8 * vlen])
            return replace(head, items=tuple(BtfMember(self._str(n), t) for n, t in params))
        if kind == Kind.DATASEC:
            secs = struct.iter_unpack("<III", buf[p : p + 12 * vlen])
            return replace(
                head,
                items=tuple(BtfMember(self._name_of(t), t, off, size) for t, off, size in secs),
            )
        return replace(head, extra=vlen) if kind == Kind.FUNC else head

    def _name_of(self, tid: int) -> str:
        """The name of record ``tid`` without decoding it (a DATASEC may name itself)."""
        if not 0 < tid < len(self._offsets):
            raise BtfError(f"type id {tid} out of range (1..{len(self)})")
        return self._str(_TYPE.unpack_from(self._types, self._offsets[tid])[0])

    def _members(self, p: int, vlen: int, kflag: bool) -> list[BtfMember]:
        out = []
        for name_off, t, off in struct.iter_unpack("<III", self._types[p : p + 12 * vlen]):
            # kind_flag: offset holds bitfield_size << 24 | bit_offset (btf.rst 2.2.4)
            bits, size = (off & 0xFFFFFF, off >> 24) if kflag else (off, 0)
            out.append(BtfMember(self._str(name_off), t, bits, size))
        return out

    # -- lookups -----------------------------------------------------------------------

    def ids(self, name: str, kind: Kind | None = None) -> list[int]:
        """Type ids named ``name`` (optionally of one kind), in id order."""
        ids = self._by_name.get(name, [])
        if kind is None:
            return list(ids)
        return [
            i
            for i in ids
            if Kind((_TYPE.unpack_from(self._types, self._offsets[i])[1] >> 24) & 0x1F) == kind
        ]

    def find(self, name: str, kind: Kind) -> BtfType:
        """The first complete type ``name`` of ``kind``.

        :raises BtfError: none.
        """
        for tid in self.ids(name, kind):
            return self.type(tid)
        raise BtfError(f"BTF has no {kind.name.lower()} named {name!r}")

    def resolve(self, type_id: int) -> BtfType:
        """``type_id`` with typedefs, qualifiers and type tags stripped."""
        t = self.type(type_id)
        for _ in range(_MAX_CHAIN):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.ref)
        raise BtfError(f"type chain from {type_id} too deep")

    def size_of(self, type_id: int) -> int:
        """Size in bytes of ``type_id`` (through typedefs and modifiers; 8 for pointers).

        :raises BtfError: the type has no size (void, function, forward declaration).
        """
        t, count = self.resolve(type_id), 1
        for _ in range(_MAX_CHAIN):  # arrays of arrays, bounded: an array may name itself
            if t.kind in _SIZED:
                return count * t.size
            if t.kind == Kind.PTR:
                return count * 8
            if t.kind != Kind.ARRAY:
                raise BtfError(f"type {type_id} ({t.kind.name} {t.name!r}) has no size")
            count *= t.nelems
            t = self.resolve(t.ref)
        raise BtfError(f"array chain from {type_id} too deep")

    def struct(self, name: str) -> Struct:
        """The layout of ``struct name`` (or ``union name``).

        :raises BtfError: no such struct.
        """
        s = self._structs.get(name)
        if s is None:
            for kind in (Kind.STRUCT, Kind.UNION):
                for tid in self.ids(name, kind):
                    s = Struct(self, self.type(tid))
                    break
                if s is not None:
                    break
            else:
                raise BtfError(f"BTF has no struct or union named {name!r}")
            self._structs[name] = s
        return s

    def datasec_var(self, section: str, var: str) -> tuple[int, int]:
        """(offset, size) of variable ``var`` inside DATASEC ``section``.

        :raises BtfError: no such section or variable.
        """
        sec = self.find(section, Kind.DATASEC)
        for item in sec.items:
            if item.name == var:
                return item.bit_offset, item.bit_size
        raise BtfError(f"BTF datasec {section!r} has no variable {var!r}")


def _enum64(lo: int, hi: int, signed: bool) -> int:
    v = hi << 32 | lo
    return v - (1 << 64) if signed and v >> 63 else v


class Struct:
    """A struct or union layout with memoised member lookups."""

    def __init__(self, btf: Btf, t: BtfType) -> None:
        self.btf = btf
        self.type = t
        self.name = t.name
        self.size = t.size
        self._cache: dict[str, Member] = {}

    def __repr__(self) -> str:
        return f"Struct({self.name!r}, size={self.size})"

    def has_member(self, path: str) -> bool:
        try:
            self.member(path)
        except MissingMember:
            return False
        return True

    def member(self, path: str) -> Member:
        """Resolve a dotted member path (``"cfs.nr_running"``), looking through anonymous
        structs and unions.

        :raises MissingMember: a component does not exist.
        """
        m = self._cache.get(path)
        if m is None:
            m = self._resolve(path)
            self._cache[path] = m
        return m

    def _resolve(self, path: str) -> Member:
        t, bits = self.type, 0
        found: BtfMember | None = None
        for part in path.split("."):
            if t.kind not in (Kind.STRUCT, Kind.UNION):
                raise MissingMember(f"{self.name}.{path}: {part!r} follows a non-struct member")
            hit = _find_member(self.btf, t, part, 0)
            if hit is None:
                raise MissingMember(f"struct {self.name} has no member {path!r}")
            found, off = hit
            bits += off
            t = self.btf.resolve(found.type_id)
        assert found is not None
        return Member(
            found.name,
            bits // 8,
            bits,
            found.bit_size,
            self.btf.type(found.type_id),
            self.btf.size_of(found.type_id),
        )


def _find_member(btf: Btf, t: BtfType, name: str, depth: int) -> tuple[BtfMember, int] | None:
    """(member, bit offset within ``t``), searching anonymous members breadth-last."""
    if depth > _MAX_CHAIN:
        raise BtfError(f"anonymous member nesting too deep in {t.name!r}")
    for m in t.items:
        if m.name == name:
            return m, m.bit_offset
    for m in t.items:
        if m.name:
            continue
        inner = btf.resolve(m.type_id)
        if inner.kind in (Kind.STRUCT, Kind.UNION):
            hit = _find_member(btf, inner, name, depth + 1)
            if hit is not None:
                return hit[0], m.bit_offset + hit[1]
    return None
