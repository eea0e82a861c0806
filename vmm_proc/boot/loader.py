"""Place a Linux kernel (ELF vmlinux or bzImage) and an initrd in guest memory.

The loader only writes guest memory and reports where things went; it never touches vCPU
state (the VMM turns :class:`LoadResult` into registers). Boot protocol:
:linux:`Documentation/arch/x86/boot.rst`, "64-bit BOOT PROTOCOL".

>>> res = load_kernel(mem, image, low_ram_end=512 << 20)  # doctest: +SKIP
>>> initrd = load_initrd(mem, res, initrd_bytes, low_ram_end=512 << 20)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from vmm_proc.arch.x86_64.layout import HIGH_MEMORY_START
from vmm_proc.boot import bootparam as bp
from vmm_proc.mem.access import GuestMemoryAccess, GuestMemoryError

__all__ = (
    "InitrdPlacement",
    "LoadResult",
    "LoaderError",
    "load_bzimage",
    "load_elf",
    "load_initrd",
    "load_kernel",
    "place_initrd",
)

PAGE_SIZE = 4096
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
STARTUP_64_OFFSET = 0x200  # boot.rst: 64-bit entry is the protected-mode start + 0x200
ELF_MAGIC = b"\x7fELF"
# The kernel image must start at or above 1 MiB (below is real-mode/BIOS territory).
MIN_KERNEL_GPA = HIGH_MEMORY_START
# For an ELF vmlinux (no header of its own) we promise what every x86-64 kernel accepts.
ELF_INITRD_ADDR_MAX = 0x7FFF_FFFF
ELF_CMDLINE_SIZE = 2047


class LoaderError(Exception):
    """The image cannot be loaded; ``step`` names the check that failed."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass(frozen=True)
class LoadResult:
    """Where a kernel went and how to enter it.

    :ivar kind: ``"elf"`` or ``"bzimage"``.
    :ivar kernel_load: gpa of the first byte written.
    :ivar kernel_end: first gpa past all memory the kernel may use before it reads the
        e820 map (bzImage: runtime start + init_size); keep initrd and data above it.
    :ivar entry_64: gpa of the 64-bit entry point (rip at boot).
    :ivar setup_header: bytes 0x1f1.. of the image's setup header (bzImage), else None.
    :ivar protocol: boot protocol version (0x020f claimed for ELF).
    :ivar initrd_addr_max: highest gpa the initrd may occupy.
    :ivar cmdline_size: longest command line (without NUL) the kernel accepts.
    """

    kind: str
    kernel_load: int
    kernel_end: int
    entry_64: int
    setup_header: bytes | None
    protocol: int
    initrd_addr_max: int
    cmdline_size: int


@dataclass(frozen=True)
class InitrdPlacement:
    """An initrd's location in guest memory."""

    gpa: int
    size: int


def _write(mem: GuestMemoryAccess, gpa: int, data: bytes, step: str) -> None:
    try:
        mem.write(gpa, data)
    except GuestMemoryError as e:
        raise LoaderError(step, f"guest memory refused {len(data)} bytes at {gpa:#x}: {e}") from e


def _check_range(step: str, start: int, size: int, low_ram_end: int) -> int:
    """Checked ``start + size``; the range must lie in [MIN_KERNEL_GPA, low_ram_end)."""
    end = start + size
    if start < 0 or size < 0 or end > U64_MAX:
        raise LoaderError(step, f"range {start:#x}+{size:#x} overflows 64 bits")
    if start < MIN_KERNEL_GPA or end > low_ram_end:
        raise LoaderError(
            step,
            f"[{start:#x}, {end:#x}) is outside guest RAM [{MIN_KERNEL_GPA:#x}, {low_ram_end:#x})",
        )
    return end


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def load_kernel(mem: GuestMemoryAccess, image: bytes, low_ram_end: int) -> LoadResult:
    """Load ``image`` as an ELF vmlinux if it starts with the ELF magic, else as a bzImage.

    :param low_ram_end: end of the RAM region that starts at gpa 0 (the kernel must fit).
    """
    if image[:4] == ELF_MAGIC:
        return load_elf(mem, image, low_ram_end)
    return load_bzimage(mem, image, low_ram_end)


def load_elf(mem: GuestMemoryAccess, image: bytes, low_ram_end: int) -> LoadResult:
    """Copy the PT_LOAD segments of an x86-64 vmlinux to their physical addresses.

    :return: a :class:`LoadResult` whose ``entry_64`` is the physical ``e_entry``
        (translated through the segments if the ELF gives a virtual one).
    """
    try:
        elf = ELFFile(io.BytesIO(image))
        header = elf.header
        segments = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    except (ELFError, struct.error, ValueError) as e:
        raise LoaderError("elf header", f"not a readable ELF file: {e}") from e
    if elf.elfclass != 64 or not elf.little_endian:
        raise LoaderError("elf header", "not a little-endian ELF64 file")
    if header["e_machine"] != "EM_X86_64":
        raise LoaderError("elf header", f"machine is {header['e_machine']}, not EM_X86_64")
    if header["e_type"] != "ET_EXEC":
        raise LoaderError("elf header", f"type is {header['e_type']}, not ET_EXEC")
    if not segments:
        raise LoaderError("elf segments", "no PT_LOAD segment")
    load, end = U64_MAX, 0
    for seg in segments:
        paddr, filesz, memsz = seg["p_paddr"], seg["p_filesz"], seg["p_memsz"]
        if filesz > memsz:
            raise LoaderError("elf segments", f"segment at {paddr:#x}: filesz > memsz")
        if seg["p_offset"] + filesz > len(image):
            raise LoaderError("elf segments", f"segment at {paddr:#x} runs past the file end")
        seg_end = _check_range("elf segments", paddr, memsz, low_ram_end)
        _write(mem, paddr, seg.data(), "elf segments")
        if memsz > filesz:
            _write(mem, paddr + filesz, bytes(memsz - filesz), "elf segments")
        load, end = min(load, paddr), max(end, seg_end)
    entry = _elf_entry_gpa(header["e_entry"], segments)
    return LoadResult(
        kind="elf",
        kernel_load=load,
        kernel_end=_align_up(end, PAGE_SIZE),
        entry_64=entry,
        setup_header=None,
        protocol=bp.PROTOCOL_SYNTHESIZED,
        initrd_addr_max=ELF_INITRD_ADDR_MAX,
        cmdline_size=ELF_CMDLINE_SIZE,
    )


def _elf_entry_gpa(e_entry: int, segments: list) -> int:
    for seg in segments:
        if seg["p_paddr"] <= e_entry < seg["p_paddr"] + seg["p_memsz"]:
            return e_entry
    for seg in segments:
        if seg["p_vaddr"] <= e_entry < seg["p_vaddr"] + seg["p_memsz"]:
            return e_entry - seg["p_vaddr"] + seg["p_paddr"]
    raise LoaderError("elf entry", f"e_entry {e_entry:#x} is in no PT_LOAD segment")


def _u(image: bytes, offset: int, fmt: str) -> int:
    return struct.unpack_from("<" + fmt, image, offset)[0]


def _parse_bzimage_header(image: bytes) -> tuple[int, int]:
    """Validate the setup header; return (protocol version, protected-mode code offset)."""
    if len(image) < bp.HDR_MIN_END:
        raise LoaderError(
            "bzimage header", f"image too short ({len(image)} bytes) for a setup header"
        )
    if _u(image, bp.HDR_BOOT_FLAG, "H") != bp.BOOT_FLAG_MAGIC:
        raise LoaderError("bzimage header", "bad boot_flag (expected 0xaa55)")
    if _u(image, bp.HDR_HEADER, "I") != bp.HDRS_MAGIC:
        raise LoaderError("bzimage header", 'bad magic (expected "HdrS")')
    version = _u(image, bp.HDR_VERSION, "H")
    if version < bp.PROTOCOL_XLOADFLAGS:
        raise LoaderError(
            "bzimage protocol",
            f"boot protocol {version >> 8}.{version & 0xFF:02d} is older than 2.12 (no 64-bit entry)",
        )
    if not image[bp.HDR_LOADFLAGS] & bp.LOADED_HIGH:
        raise LoaderError("bzimage loadflags", "LOADED_HIGH not set (zImage, not a bzImage)")
    if not _u(image, bp.HDR_XLOADFLAGS, "H") & bp.XLF_KERNEL_64:
        raise LoaderError("bzimage xloadflags", "XLF_KERNEL_64 not set: no 64-bit entry point")
    setup_sects = image[bp.HDR_SETUP_SECTS] or 4  # boot.rst: 0 means 4
    code_offset = (setup_sects + 1) * 512
    if code_offset >= len(image):
        raise LoaderError("bzimage size", f"setup_sects {setup_sects} reaches past the image end")
    return version, code_offset


def load_bzimage(
    mem: GuestMemoryAccess, image: bytes, low_ram_end: int, load_gpa: int = HIGH_MEMORY_START
) -> LoadResult:
    """Copy a bzImage's protected-mode part to ``load_gpa`` (1 MiB by default).

    The 64-bit entry is ``load_gpa + 0x200``; the decompressor then moves the kernel to
    max(load aligned up to kernel_alignment, pref_address) and needs init_size bytes there.
    """
    version, code_offset = _parse_bzimage_header(image)
    code = image[code_offset:]
    _check_range("bzimage load", load_gpa, len(code), low_ram_end)
    align = _u(image, bp.HDR_KERNEL_ALIGNMENT, "I") or 1
    pref = _u(image, bp.HDR_PREF_ADDRESS, "Q")
    if image[bp.HDR_RELOCATABLE]:
        runtime = max(_align_up(load_gpa, align), pref)
    else:
        runtime = pref or load_gpa
    init_size = _u(image, bp.HDR_INIT_SIZE, "I")
    runtime_end = _check_range("bzimage init_size", runtime, init_size, low_ram_end)
    _write(mem, load_gpa, code, "bzimage load")
    header_end = min(bp.HDR_JUMP + 2 + image[bp.HDR_JUMP + 1], bp.BP_HDR_END, len(image))
    return LoadResult(
        kind="bzimage",
        kernel_load=load_gpa,
        kernel_end=_align_up(max(runtime_end, load_gpa + len(code)), PAGE_SIZE),
        entry_64=load_gpa + STARTUP_64_OFFSET,
        setup_header=bytes(image[bp.BP_HDR : header_end]),
        protocol=version,
        initrd_addr_max=_u(image, bp.HDR_INITRD_ADDR_MAX, "I"),
        cmdline_size=_u(image, bp.HDR_CMDLINE_SIZE, "I"),
    )


def place_initrd(
    size: int, kernel: LoadResult, low_ram_end: int, avoid: list[tuple[int, int]] | None = None
) -> int:
    """Choose the gpa for an initrd of ``size`` bytes: page-aligned, as high as allowed.

    :param avoid: extra ``(gpa, size)`` ranges the initrd must not overlap.
    :return: the initrd's gpa; it ends at or below min(initrd_addr_max + 1, low_ram_end).
    """
    if size <= 0:
        raise LoaderError("initrd placement", f"initrd size must be positive, got {size}")
    top = min(kernel.initrd_addr_max + 1, low_ram_end, U32_MAX + 1)
    gpa = (top - size) // PAGE_SIZE * PAGE_SIZE
    floor = kernel.kernel_end
    # Highest range first: moving below one range can then only meet lower ones.
    for start, length in sorted(avoid or [], reverse=True):
        if start < gpa + size and gpa < start + length:
            gpa = (start - size) // PAGE_SIZE * PAGE_SIZE
    if gpa < floor:
        raise LoaderError(
            "initrd placement",
            f"initrd of {size} bytes does not fit between the kernel end {floor:#x} "
            f"and {top:#x}; give the guest more memory",
        )
    return gpa


def load_initrd(
    mem: GuestMemoryAccess,
    kernel: LoadResult,
    initrd: bytes,
    low_ram_end: int,
    avoid: list[tuple[int, int]] | None = None,
) -> InitrdPlacement:
    """Place ``initrd`` with :func:`place_initrd` and copy it into guest memory."""
    gpa = place_initrd(len(initrd), kernel, low_ram_end, avoid)
    _write(mem, gpa, initrd, "initrd load")
    return InitrdPlacement(gpa, len(initrd))
