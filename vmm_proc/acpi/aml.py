"""A small AML encoder: just what a DSDT of devices, resources and one package needs.

Encodings from ACPI 6.5 chapter 20 ("ACPI Machine Language Specification"); resource
descriptors from section 6.4. Every function returns the encoded bytes.

>>> device("\\\\_SB_.VR00", name("_HID", string("LNRO0005")))[:2].hex()
'5b82'
"""

from __future__ import annotations

import re
import struct

__all__ = (
    "buffer",
    "device",
    "eisa_id",
    "integer",
    "interrupt",
    "io_port",
    "irq_no_flags",
    "memory32_fixed",
    "method",
    "name",
    "name_string",
    "package",
    "pkg_length",
    "resource_template",
    "return_",
    "scope",
    "string",
)

ZERO_OP, ONE_OP = 0x00, 0x01
BYTE_PREFIX, WORD_PREFIX, DWORD_PREFIX, QWORD_PREFIX = 0x0A, 0x0B, 0x0C, 0x0E
STRING_PREFIX = 0x0D
NAME_OP, SCOPE_OP, BUFFER_OP, PACKAGE_OP, METHOD_OP, RETURN_OP = 0x08, 0x10, 0x11, 0x12, 0x14, 0xA4
EXT_OP_PREFIX, DEVICE_OP = 0x5B, 0x82
ROOT_CHAR, PARENT_PREFIX, DUAL_NAME_PREFIX, MULTI_NAME_PREFIX = 0x5C, 0x5E, 0x2E, 0x2F
_SEG = re.compile(r"^[A-Z_][A-Z0-9_]{0,3}$")


def pkg_length(body_len: int) -> bytes:
    """PkgLength for ``body_len`` bytes that follow it (the encoding counts itself)."""
    if body_len < 0:
        raise ValueError("negative package length")
    if body_len + 1 <= 0x3F:
        return bytes([body_len + 1])
    for extra in (1, 2, 3):
        total = body_len + 1 + extra
        if total < 1 << (4 + 8 * extra):
            rest = [(total >> (4 + 8 * i)) & 0xFF for i in range(extra)]
            return bytes([(extra << 6) | (total & 0xF), *rest])
    raise ValueError(f"package of {body_len} bytes is too long for AML")


def _name_seg(seg: str) -> bytes:
    if not _SEG.match(seg):
        raise ValueError(f"bad AML name segment {seg!r}")
    return seg.ljust(4, "_").encode("ascii")


def name_string(path: str) -> bytes:
    """Encode ``\\\\_SB_.VR00``, ``^FOO`` or ``_HID`` as a NameString."""
    prefix = b""
    while path.startswith(("\\", "^")):
        prefix += bytes([ROOT_CHAR if path[0] == "\\" else PARENT_PREFIX])
        path = path[1:]
    segs = [_name_seg(s) for s in path.split(".")] if path else []
    if not segs:
        return prefix + b"\x00"  # NullName
    if len(segs) == 1:
        return prefix + segs[0]
    if len(segs) == 2:
        return prefix + bytes([DUAL_NAME_PREFIX]) + b"".join(segs)
    return prefix + bytes([MULTI_NAME_PREFIX, len(segs)]) + b"".join(segs)


def integer(value: int) -> bytes:
    """The shortest integer encoding (ZeroOp, OneOp, Byte/Word/DWord/QWordConst)."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"AML integer {value} out of range")
    if value in (0, 1):
        return bytes([value])
    for prefix, fmt in ((BYTE_PREFIX, "<B"), (WORD_PREFIX, "<H"), (DWORD_PREFIX, "<I")):
        if value < 1 << (8 * struct.calcsize(fmt)):
            return bytes([prefix]) + struct.pack(fmt, value)
    return bytes([QWORD_PREFIX]) + struct.pack("<Q", value)


def string(text: str) -> bytes:
    """A String constant (ASCII, no NUL inside)."""
    raw = text.encode("ascii")
    if b"\0" in raw:
        raise ValueError("AML strings cannot hold NUL")
    return bytes([STRING_PREFIX]) + raw + b"\0"


def eisa_id(text: str) -> bytes:
    """``EisaId("PNP0501")``: three letters and four hex digits packed into a DWord."""
    if not re.fullmatch(r"[A-Z]{3}[0-9A-F]{4}", text):
        raise ValueError(f"bad EISA id {text!r}")
    letters = sum((ord(c) - 0x40) << (26 - 5 * i) for i, c in enumerate(text[:3]))
    value = letters | int(text[3:], 16)
    return integer(int.from_bytes(value.to_bytes(4, "big"), "little"))


def name(path: str, obj: bytes) -> bytes:
    """``Name(path, obj)``."""
    return bytes([NAME_OP]) + name_string(path) + obj


def _pkg(op: bytes, body: bytes) -> bytes:
    return op + pkg_length(len(body)) + body


def scope(path: str, *terms: bytes) -> bytes:
    """``Scope(path) { terms }``."""
    return _pkg(bytes([SCOPE_OP]), name_string(path) + b"".join(terms))


def device(path: str, *terms: bytes) -> bytes:
    """``Device(path) { terms }``."""
    return _pkg(bytes([EXT_OP_PREFIX, DEVICE_OP]), name_string(path) + b"".join(terms))


def method(path: str, argc: int, *terms: bytes, serialized: bool = False) -> bytes:
    """``Method(path, argc, NotSerialized|Serialized) { terms }``."""
    if not 0 <= argc <= 7:
        raise ValueError("AML methods take 0..7 arguments")
    flags = argc | (0x08 if serialized else 0)
    return _pkg(bytes([METHOD_OP]), name_string(path) + bytes([flags]) + b"".join(terms))


def return_(obj: bytes) -> bytes:
    """``Return(obj)``."""
    return bytes([RETURN_OP]) + obj


def package(*elements: bytes) -> bytes:
    """``Package() { elements }`` (at most 255 elements)."""
    if len(elements) > 0xFF:
        raise ValueError("Package() holds at most 255 elements")
    return _pkg(bytes([PACKAGE_OP]), bytes([len(elements)]) + b"".join(elements))


def buffer(data: bytes) -> bytes:
    """``Buffer() { data }``."""
    return _pkg(bytes([BUFFER_OP]), integer(len(data)) + data)


# --- resource descriptors (ACPI 6.5 section 6.4) ---


def memory32_fixed(base: int, size: int, writable: bool = True) -> bytes:
    """``Memory32Fixed(ReadWrite, base, size)`` (large item 0x86)."""
    if base < 0 or size <= 0 or base + size > 1 << 32:
        raise ValueError(f"Memory32Fixed range {base:#x}+{size:#x} not within 4 GiB")
    return struct.pack("<BHBII", 0x86, 9, 1 if writable else 0, base, size)


def interrupt(
    *gsis: int, edge: bool = True, active_low: bool = False, shared: bool = False
) -> bytes:
    """``Interrupt(ResourceConsumer, Edge|Level, ActiveHigh|ActiveLow, Exclusive|Shared)``."""
    if not gsis or len(gsis) > 0xFF:
        raise ValueError("Interrupt() needs 1..255 interrupt numbers")
    flags = 0x01 | (0x02 if edge else 0) | (0x04 if active_low else 0) | (0x08 if shared else 0)
    body = struct.pack(f"<BB{len(gsis)}I", flags, len(gsis), *gsis)
    return struct.pack("<BH", 0x89, len(body)) + body


def io_port(base: int, length: int, align: int = 1) -> bytes:
    """``IO(Decode16, base, base, align, length)``: a fixed port range (small item 0x47)."""
    if not 0 <= base <= 0xFFFF or not 0 < length <= 0xFF:
        raise ValueError(f"IO range {base:#x}+{length} out of range")
    return struct.pack("<BBHHBB", 0x47, 0x01, base, base, align, length)


def irq_no_flags(*irqs: int) -> bytes:
    """``IRQNoFlags() { irqs }``: ISA IRQs 0..15, edge active-high (small item 0x22)."""
    if not irqs or any(not 0 <= i < 16 for i in irqs):
        raise ValueError(f"IRQNoFlags takes ISA IRQs 0..15, got {irqs}")
    return struct.pack("<BH", 0x22, sum(1 << i for i in set(irqs)))


def resource_template(*descriptors: bytes) -> bytes:
    """``ResourceTemplate() { descriptors }``: a Buffer ending with an End Tag."""
    return buffer(b"".join(descriptors) + b"\x79\x00")  # checksum 0: "treat as valid"
