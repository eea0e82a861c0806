"""System description table plumbing: the common header, checksums, GAS, RSDP and XSDT.

ACPI 6.5 section 5.2 ("ACPI System Description Tables").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = (
    "HEADER_SIZE",
    "OEM_ID",
    "OEM_TABLE_ID",
    "RSDP_SIZE",
    "checksum",
    "gas_io",
    "rsdp",
    "table",
    "xsdt",
)

HEADER_SIZE = 36
RSDP_SIZE = 36
OEM_ID = b"SCHLAB"
OEM_TABLE_ID = b"SCHEDLAB"
OEM_REVISION = 1
CREATOR_ID = b"SLAB"
CREATOR_REVISION = 1
GAS_SYSTEM_IO = 1
GAS_ACCESS_BYTE = 1


def checksum(data: bytes | bytearray) -> int:
    """The byte that makes ``data`` (with it) sum to 0 mod 256."""
    return (-sum(data)) & 0xFF


def table(signature: bytes, revision: int, body: bytes) -> bytes:
    """A table: 36-byte header (length and checksum filled in) followed by ``body``."""
    if len(signature) != 4:
        raise ValueError(f"bad table signature {signature!r}")
    length = HEADER_SIZE + len(body)
    header = struct.pack(
        "<4sIBB6s8sI4sI",
        signature,
        length,
        revision,
        0,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        CREATOR_ID,
        CREATOR_REVISION,
    )
    raw = bytearray(header + body)
    raw[9] = checksum(raw)
    return bytes(raw)


def gas_io(port: int, width_bits: int = 8) -> bytes:
    """A Generic Address Structure for an I/O port accessed ``width_bits`` wide."""
    access = {8: 1, 16: 2, 32: 3, 64: 4}[width_bits]
    return struct.pack("<BBBBQ", GAS_SYSTEM_IO, width_bits, 0, access, port)


def rsdp(xsdt_gpa: int) -> bytes:
    """RSDP revision 2 pointing at the XSDT (no RSDT: every x86-64 Linux reads the XSDT)."""
    raw = bytearray(
        struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, OEM_ID, 2, 0, RSDP_SIZE, xsdt_gpa, 0, bytes(3))
    )
    raw[8] = checksum(raw[:20])
    raw[32] = checksum(raw)
    return bytes(raw)


def xsdt(entries: Sequence[int]) -> bytes:
    """XSDT listing the 64-bit addresses of the other tables (the DSDT goes via the FADT)."""
    return table(b"XSDT", 1, struct.pack(f"<{len(entries)}Q", *entries))
