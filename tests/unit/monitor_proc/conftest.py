"""Builders for synthetic kernels: BTF blobs, kallsyms tables and guest memory images."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

# -- BTF --------------------------------------------------------------------------------

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)


class BtfBuilder:
    """Appends BTF type records; each add returns the new type id."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.records: list[bytes] = []

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(self, kind: int, name: str, vlen: int, size_or_type: int, kflag: bool = False,
            trailer: bytes = b"") -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.records.append(struct.pack("<III", self.s(name), info, size_or_type) + trailer)
        return len(self.records)

    def int(self, name: str, size: int, signed: bool = False) -> int:
        return self.add(INT, name, 0, size, trailer=struct.pack("<I", (signed << 24) | size * 8))

    def ptr(self, t: int) -> int:
        return self.add(PTR, "", 0, t)

    def array(self, elem: int, index: int, n: int) -> int:
        return self.add(ARRAY, "", 0, 0, trailer=struct.pack("<III", elem, index, n))

    def struct(self, name: str, size: int, members: list[tuple], union: bool = False) -> int:
        """members: (name, type, bit_offset[, bitfield_size]); any bitfield sets kind_flag."""
        kflag = any(len(m) > 3 and m[3] for m in members)
        body = b""
        for m in members:
            off = (m[3] << 24 | m[2]) if kflag else m[2]
            body += struct.pack("<III", self.s(m[0]), m[1], off)
        return self.add(UNION if union else STRUCT, name, len(members), size, kflag, body)

    def enum(self, name: str, values: list[tuple[str, int]], signed: bool = False) -> int:
        body = b"".join(struct.pack("<Ii", self.s(n), v) for n, v in values)
        return self.add(ENUM, name, len(values), 4, signed, body)

    def enum64(self, name: str, values: list[tuple[str, int]], signed: bool = False) -> int:
        body = b"".join(struct.pack("<III", self.s(n), v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF)
                        for n, v in values)
        return self.add(ENUM64, name, len(values), 8, signed, body)

    def ref(self, kind: int, name: str, t: int) -> int:
        """FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, TYPE_TAG."""
        return self.add(kind, name, 0, t)

    def func_proto(self, ret: int, params: list[tuple[str, int]]) -> int:
        body = b"".join(struct.pack("<II", self.s(n), t) for n, t in params)
        return self.add(FUNC_PROTO, "", len(params), ret, trailer=body)

    def var(self, name: str, t: int, linkage: int = 1) -> int:
        return self.add(VAR, name, 0, t, trailer=struct.pack("<I", linkage))

    def datasec(self, name: str, size: int, entries: list[tuple[int, int, int]]) -> int:
        body = b"".join(struct.pack("<III", *e) for e in entries)
        return self.add(DATASEC, name, len(entries), size, trailer=body)

    def float(self, name: str, size: int) -> int:
        return self.add(FLOAT, name, 0, size)

    def decl_tag(self, name: str, t: int, component: int) -> int:
        return self.add(DECL_TAG, name, 0, t, trailer=struct.pack("<i", component))

    def blob(self) -> bytes:
        types = b"".join(self.records)
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                          len(self.strings))
        return hdr + types + bytes(self.strings)


@pytest.fixture
def btf_builder() -> BtfBuilder:
    return BtfBuilder()


# -- kallsyms ---------------------------------------------------------------------------

def compress_tokens() -> list[bytes]:
    """256 tokens: printable bytes stand for themselves, the other codes for substrings."""
    extra = [b"sched_", b"per_cpu", b"__", b"init_", b"sym_", b"_offset", b"run", b"queue",
             b"base", b"page", b"phys", b"text", b"top_pgt", b"nr_", b"cpu", b"ids"]
    tokens = []
    for b in range(256):
        if 0x21 <= b <= 0x7E:
            tokens.append(bytes([b]))
        else:
            tokens.append(extra[b % len(extra)] if b < len(extra) else b"t%02x" % b)
    return tokens


def compress(name: bytes, multi: dict[int, list[tuple[bytes, int]]]) -> bytes:
    """Greedy longest-token compression of one ``type+name``; ``multi``: first byte ->
    (token, code), longest first."""
    out, i = bytearray(), 0
    while i < len(name):
        for t, c in multi.get(name[i], ()):
            if name.startswith(t, i):
                out.append(c)
                i += len(t)
                break
        else:
            out.append(name[i])
            i += 1
    return bytes(out)


def _align(buf: bytearray, a: int) -> None:
    while len(buf) % a:
        buf.append(0)


def build_kallsyms(symbols: list[tuple[str, int, str]], *, layout: str, base_va: int,
                   align: int = 4, lead: bytes = b"some rodata before\0") -> bytes:
    """Emit tables in one of the orders/encodings scripts/kallsyms.c has used.

    layout: "pcrel" (7.x), "relbase" (6.x: offsets + base after the token index),
    "old_relbase" (offsets, base, num_syms first), "abs_percpu" (like relbase, with
    small absolute per-CPU values), "seqs" (6.2: seqs_of_names between markers and tokens).
    """
    tokens = compress_tokens()
    multi: dict[int, list[tuple[bytes, int]]] = {}
    for c, t in sorted(enumerate(tokens), key=lambda e: -len(e[1])):
        if len(t) > 1:
            multi.setdefault(t[0], []).append((t, c))
    names, markers = bytearray(), []
    for i, (name, _addr, typ) in enumerate(symbols):
        if i % 256 == 0:
            markers.append(len(names))
        c = compress((typ + name).encode(), multi)
        names += (bytes([len(c)]) if len(c) < 0x80 else
                  bytes([(len(c) & 0x7F) | 0x80, len(c) >> 7])) + c
    n = len(symbols)
    rb = min(a for _, a, _ in symbols if a >= 1 << 63)
    buf = bytearray(lead)
    _align(buf, 8)

    def emit_offsets(pcrel: bool) -> None:
        for i, (_, addr, _) in enumerate(symbols):
            if pcrel:
                buf.extend(struct.pack("<i", addr - (base_va + len(buf))))
            elif layout == "abs_percpu":
                buf.extend(struct.pack("<i", addr if addr < 1 << 31 else rb - 1 - addr))
            else:
                buf.extend(struct.pack("<I", addr - rb))

    if layout == "old_relbase":
        emit_offsets(False)
        _align(buf, 8)
        buf += struct.pack("<Q", rb)
    _align(buf, align)
    buf += struct.pack("<I", n)
    _align(buf, align)
    buf += names
    _align(buf, align)
    buf += b"".join(struct.pack("<I", m) for m in markers)
    if layout == "seqs":
        _align(buf, align)
        buf += b"".join(struct.pack(">I", i)[1:] for i in range(n))
    _align(buf, align)
    index, off = [], 0
    for t in tokens:
        index.append(off)
        buf += t + b"\0"
        off += len(t) + 1
    _align(buf, 2 if align < 8 else 8)
    buf += struct.pack("<256H", *index)
    if layout in ("pcrel", "relbase", "abs_percpu", "seqs"):
        _align(buf, align)
        emit_offsets(layout == "pcrel")
        if layout != "pcrel":
            _align(buf, 8)
            buf += struct.pack("<Q", rb)
    buf += b"\0" * 64
    return bytes(buf)


def symbol_list(count: int = 700) -> list[tuple[str, int, str]]:
    """Sorted-by-address symbols including the ones the monitor requires."""
    text = 0xFFFFFFFF81000000
    named = ["_text", "runqueues", "__per_cpu_offset", "page_offset_base", "phys_base",
             "init_top_pgt", "nr_cpu_ids", "linux_banner"]
    syms = [(name, text + 0x40 * i, "T" if i == 0 else "D") for i, name in enumerate(named)]
    for i in range(count - len(named)):
        syms.append((f"sym_{i:05d}_sched_{'x' * (i % 150)}", text + 0x1000 + 0x10 * i, "t"))
    return syms


@pytest.fixture
def kallsyms_builder():
    return build_kallsyms


@pytest.fixture
def sample_symbols():
    return symbol_list


# -- the real development kernel ---------------------------------------------------------

def find_kernel_dir() -> tuple[Path, Path | None] | None:
    """(vmlinux, vmlinuz or None): ~/.cache/schedlab/kernels/* first, /root/dev-kernel next."""
    from schedlab_shared.cache import kernels_dir
    for d in sorted(kernels_dir().glob("*")) if kernels_dir().is_dir() else []:
        if (d / "vmlinux").is_file():
            z = d / "vmlinuz"
            return d / "vmlinux", z if z.is_file() else None
    dev = Path("/root/dev-kernel/vmlinux")
    if dev.is_file():
        zs = sorted(Path("/root/dev-kernel/x/usr/lib/modules").glob("*/vmlinuz"))
        return dev, zs[0] if zs else None
    return None


@pytest.fixture(scope="session")
def real_vmlinux() -> Path:
    found = find_kernel_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no kernel: run `schedlab kernel fetch` (CI must have one)")
        pytest.skip("no kernel in ~/.cache/schedlab/kernels or /root/dev-kernel")
    return found[0]
