"""bzImage header parsing and vmlinuz -> vmlinux extraction.

The x86 boot protocol (:linux:`Documentation/arch/x86/boot.rst`) puts a setup header at
0x1f1: ``setup_sects`` (0x1f1), the ``HdrS`` magic (0x202), the protocol version (0x206),
a pointer to the kernel version string (0x20e, relative to 0x200) and, since 2.08, the
compressed payload's ``payload_offset``/``payload_length`` (0x248/0x24c) relative to the
start of the protected-mode code at ``(setup_sects + 1) * 512``.

>>> hdr = parse_bzimage(Path("vmlinuz").read_bytes())
>>> hdr.kernel_version
'7.2.13+deb14-cloud-amd64'
>>> elf = extract_vmlinux(Path("vmlinuz").read_bytes())
"""

from __future__ import annotations

import bz2
import lzma
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zstandard

__all__ = (
    "BzImageHeader",
    "ImageError",
    "detect_compression",
    "extract_vmlinux",
    "extract_vmlinux_file",
    "is_bzimage",
    "is_elf",
    "parse_bzimage",
)

_HDR_MAGIC_OFF = 0x202
_MIN_PAYLOAD_VERSION = 0x208
#: A vmlinux larger than this is not something we will hold in memory (guards bombs).
_MAX_VMLINUX = 2 << 30

# Magic prefixes of the payload compressors the kernel supports (arch/x86/boot/compressed).
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"BZh", "bzip2"),
    (b"\x89LZO", "lzo"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x7fELF", "none"),
)


class ImageError(ValueError):
    """The bytes are not a usable kernel image; the message says why in one line."""


@dataclass(frozen=True)
class BzImageHeader:
    """The fields of the x86 setup header that schedlab uses."""

    setup_sects: int
    version: int
    payload_offset: int
    payload_length: int
    kernel_version: str | None

    @property
    def payload_start(self) -> int:
        """File offset of the compressed payload."""
        return (self.setup_sects + 1) * 512 + self.payload_offset


def is_bzimage(data: bytes) -> bool:
    """True when ``data`` carries the ``HdrS`` setup-header magic."""
    return data[_HDR_MAGIC_OFF : _HDR_MAGIC_OFF + 4] == b"HdrS"


def is_elf(data: bytes) -> bool:
    """True when ``data`` starts with the ELF magic."""
    return data[:4] == b"\x7fELF"


def _version_string(data: bytes, ptr: int) -> str | None:
    if ptr == 0:
        return None
    start = ptr + 0x200
    raw = data[start : start + 256].split(b"\0", 1)[0]
    if not raw:
        return None
    # "7.2.13+deb14-cloud-amd64 (debian-kernel@...) #1 SMP ...": the release is the first word.
    return raw.split(b" ", 1)[0].decode("ascii", "replace")


def parse_bzimage(data: bytes) -> BzImageHeader:
    """Parse and bounds-check the setup header of a bzImage.

    :param data: the whole image file.
    :return: the header; raises :class:`ImageError` if it is not a usable bzImage.
    """
    if len(data) < 0x250 or not is_bzimage(data):
        raise ImageError("no bzImage header (HdrS magic missing at 0x202)")
    setup_sects = data[0x1F1] or 4  # 0 means 4 for ancient images (boot.rst)
    (version,) = struct.unpack_from("<H", data, 0x206)
    if version < _MIN_PAYLOAD_VERSION:
        raise ImageError(
            f"boot protocol {version >> 8}.{version & 0xFF:02d} < 2.08: no payload fields"
        )
    (ver_ptr,) = struct.unpack_from("<H", data, 0x20E)
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    hdr = BzImageHeader(
        setup_sects, version, payload_offset, payload_length, _version_string(data, ver_ptr)
    )
    if payload_length == 0 or hdr.payload_start + payload_length > len(data):
        raise ImageError(
            f"payload [{hdr.payload_start:#x}+{payload_length:#x}] outside the {len(data)}-byte file"
        )
    return hdr


def detect_compression(payload: bytes) -> str:
    """Name the compressor of a payload from its magic (``zstd``, ``gzip``, ``xz``, ...)."""
    for magic, name in _MAGICS:
        if payload.startswith(magic):
            return name
    raise ImageError(f"unknown payload compression (magic {payload[:6].hex()})")


class _Decoder(Protocol):
    """What the stdlib and zstandard stream decompressors have in common."""

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, /, max_length: int = ...) -> bytes: ...


def _stream(payload: bytes, dec: _Decoder, kind: str) -> bytes:
    # Streaming decoders stop at the end of the first stream, so the trailing size word
    # the kernel build appends (size_append) is ignored; not reaching the end is an error.
    out = dec.decompress(payload, _MAX_VMLINUX) if kind != "zstd" else dec.decompress(payload)
    if not dec.eof:
        raise ImageError(f"{kind} payload is truncated or corrupt (stream did not end)")
    return out


def _zstd(payload: bytes) -> bytes:
    # Kernel payloads are made with --long=31: allow a 2 GiB window.
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
    return _stream(payload, dctx.decompressobj(), "zstd")  # type: ignore[arg-type]


def _gzip(payload: bytes) -> bytes:
    return _stream(payload, zlib.decompressobj(wbits=31), "gzip")  # type: ignore[arg-type]


def _xz(payload: bytes) -> bytes:
    return _stream(payload, lzma.LZMADecompressor(format=lzma.FORMAT_XZ), "xz")


def _lzma(payload: bytes) -> bytes:
    return _stream(payload, lzma.LZMADecompressor(format=lzma.FORMAT_ALONE), "lzma")


def _bzip2(payload: bytes) -> bytes:
    return _stream(payload, bz2.BZ2Decompressor(), "bzip2")


def _external(tool: str, args: list[str]) -> Callable[[bytes], bytes]:
    def run(payload: bytes) -> bytes:
        exe = shutil.which(tool)
        if exe is None:
            raise ImageError(f"payload needs the `{tool}` program to decompress; install it")
        # Trailing size bytes make these tools exit non-zero after a full decode: keep stdout.
        out = subprocess.run([exe, *args], input=payload, capture_output=True, check=False)
        return out.stdout

    return run


_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": _zstd,
    "gzip": _gzip,
    "xz": _xz,
    "lzma": _lzma,
    "bzip2": _bzip2,
    "lz4": _external("lz4", ["-d", "-c", "-q"]),
    "lzo": _external("lzop", ["-d", "-c", "-q"]),
    "none": lambda p: p,
}


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """Decompress the ELF vmlinux embedded in a bzImage.

    :param vmlinuz: the bzImage file content.
    :return: the ELF image; raises :class:`ImageError` when the header, the compressor or
        the result is not what a kernel image contains.
    """
    hdr = parse_bzimage(vmlinuz)
    payload = vmlinuz[hdr.payload_start : hdr.payload_start + hdr.payload_length]
    kind = detect_compression(payload)
    try:
        elf = _DECOMPRESSORS[kind](payload)
    except (zlib.error, lzma.LZMAError, zstandard.ZstdError, OSError, EOFError) as exc:
        raise ImageError(f"{kind} payload does not decompress: {exc}") from exc
    if not is_elf(elf):
        raise ImageError(f"{kind} payload decompressed to {len(elf)} bytes that are not an ELF")
    return elf


def extract_vmlinux_file(vmlinuz: Path, dest: Path) -> Path:
    """Extract ``vmlinuz`` into ``dest`` (written via a temp name, then renamed)."""
    elf = extract_vmlinux(vmlinuz.read_bytes())
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(elf)
    tmp.replace(dest)
    return dest
