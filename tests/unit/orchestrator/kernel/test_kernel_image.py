"""bzImage parsing and payload extraction on synthetic fixtures and a real kernel."""

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess

import pytest
import zstandard

from orchestrator.kernel.image import (
    ImageError,
    detect_compression,
    extract_vmlinux,
    is_bzimage,
    parse_bzimage,
)
from tests.framework.prereq import missing

FAKE_ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 64


def make_bzimage(
    payload: bytes,
    *,
    setup_sects=1,
    version=0x20F,
    poff=0x40,
    plen=None,
    vstring=b"6.99.0-test (x@y) #1",
) -> bytes:
    prot = (setup_sects + 1) * 512
    buf = bytearray(prot + poff + len(payload) + 16)
    buf[0x1F1] = setup_sects
    buf[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", buf, 0x206, version)
    struct.pack_into("<H", buf, 0x20E, 0x300 - 0x200)
    buf[0x300 : 0x300 + len(vstring) + 1] = vstring + b"\0"
    struct.pack_into("<II", buf, 0x248, poff, len(payload) if plen is None else plen)
    buf[prot + poff : prot + poff + len(payload)] = payload
    return bytes(buf)


def size_append(data: bytes) -> bytes:
    return struct.pack("<I", len(FAKE_ELF))  # the kernel's trailing size word


COMPRESSORS = {
    "zstd": lambda d: zstandard.ZstdCompressor(level=3).compress(d) + size_append(d),
    "gzip": lambda d: gzip.compress(d, mtime=0),
    "xz": lambda d: (
        lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) + size_append(d)
    ),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE) + size_append(d),
    "bzip2": lambda d: bz2.compress(d) + size_append(d),
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_synthetic_extract(kind):
    image = make_bzimage(COMPRESSORS[kind](FAKE_ELF))
    hdr = parse_bzimage(image)
    assert hdr.setup_sects == 1 and hdr.payload_start == 1024 + 0x40
    assert hdr.kernel_version == "6.99.0-test"
    assert detect_compression(image[hdr.payload_start :]) == kind
    assert extract_vmlinux(image) == FAKE_ELF


def test_synthetic_lz4_legacy():
    if shutil.which("lz4") is None:
        missing("lz4 is not installed (apt-get install lz4)")
    comp = subprocess.run(
        ["lz4", "-l", "-c", "-q"], input=FAKE_ELF, capture_output=True, check=True
    ).stdout
    assert extract_vmlinux(make_bzimage(comp + size_append(FAKE_ELF))) == FAKE_ELF


def test_rejects_non_bzimage():
    assert not is_bzimage(b"\0" * 4096)
    with pytest.raises(ImageError, match="HdrS"):
        parse_bzimage(b"\0" * 4096)


def test_rejects_old_protocol():
    with pytest.raises(ImageError, match="2.08"):
        parse_bzimage(make_bzimage(b"x", version=0x206))


def test_rejects_payload_outside_file():
    with pytest.raises(ImageError, match="outside"):
        parse_bzimage(make_bzimage(b"abc", plen=1 << 30))


def test_rejects_unknown_compression():
    with pytest.raises(ImageError, match="unknown payload compression"):
        extract_vmlinux(make_bzimage(b"\x11\x22\x33\x44garbage"))


def test_rejects_non_elf_result():
    with pytest.raises(ImageError, match="not an ELF"):
        extract_vmlinux(make_bzimage(gzip.compress(b"just text", mtime=0)))


def test_rejects_corrupt_payload():
    good = COMPRESSORS["xz"](FAKE_ELF)
    bad = good[:12] + bytes(b ^ 0xFF for b in good[12:40]) + good[40:]
    with pytest.raises(ImageError, match="does not decompress|truncated or corrupt"):
        extract_vmlinux(make_bzimage(bad))


def test_real_kernel(real_vmlinuz):
    data = real_vmlinuz.read_bytes()
    hdr = parse_bzimage(data)
    assert hdr.kernel_version and hdr.kernel_version[0].isdigit()
    assert real_vmlinuz.parent.name in (hdr.kernel_version, real_vmlinuz.parent.name)
    elf = extract_vmlinux(data)
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # ELFCLASS64
    assert len(elf) > 3 * len(data)


def test_rejects_truncated_payload():
    comp = COMPRESSORS["zstd"](FAKE_ELF)
    with pytest.raises(ImageError, match="truncated"):
        extract_vmlinux(make_bzimage(comp[: len(comp) // 2]))
