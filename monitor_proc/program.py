"""Program: one guest kernel's symbols, types and memory, bound together (drgn-style).

>>> prog = Program("vmlinux", GuestPhysMemory(layout))
>>> prog.read_u32(prog.symbol("nr_cpu_ids"))
2
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from monitor_proc.btf import Btf, Member, Struct
from monitor_proc.image import KernelImage
from monitor_proc.kallsyms import load_symbols
from monitor_proc.memory import FaultError, PhysMemory
from monitor_proc.symbols import SymbolTable
from monitor_proc.translate import (
    AddressTranslator,
    TranslationError,
    discover_layout,
    discover_phys_base,
)

__all__ = ("BadDataError", "MAX_CPUS", "Program")

MAX_CPUS = 1 << 16  # bound on any CPU count read from the guest
MAX_READ = 16 << 20  # bound on one read (sizes may come from guest data)
_PROBE_LEN = 64
# compiled once: the sampler reads a few of these per CPU per sample
_Packed = struct.Struct  # (the class's struct() method hides the module in its annotations)
_U8, _U32, _S32, _U64 = (struct.Struct(f) for f in ("<B", "<I", "<i", "<Q"))


class BadDataError(Exception):
    """A value read from the guest is out of any sane range (corrupt or not initialised)."""


class Program:
    """A guest kernel seen from the host.

    :param vmlinux_path: the decompressed kernel (BTF, kallsyms); None when ``symbols``,
        ``btf`` and ``probe`` are all given (tests).
    :param memory: guest physical memory (anything with ``read(pa, size)``).
    :param system_map: a real System.map, used instead of the image's kallsyms.
    :param probe: (virtual address, bytes) known to be in the loaded image; it proves the
        kernel is in memory before addresses are trusted. Defaults to ``linux_banner``.

    ``cache`` holds per-session derived data (resolved offsets, sample plans).
    """

    def __init__(
        self,
        vmlinux_path: str | Path | None,
        memory: PhysMemory,
        *,
        system_map: str | Path | None = None,
        symbols: SymbolTable | None = None,
        btf: Btf | None = None,
        probe: tuple[int, bytes] | None = None,
    ) -> None:
        self.memory = memory
        self.cache: dict[str, Any] = {}
        self._translator: AddressTranslator | None = None
        if vmlinux_path is None:
            if symbols is None or btf is None or probe is None:
                raise ValueError("without a vmlinux, symbols, btf and probe are required")
            self.symbols, self.btf, self._probe = symbols, btf, probe
            return
        self.symbols = symbols if symbols is not None else load_symbols(vmlinux_path, system_map)
        image = KernelImage.open(vmlinux_path)
        try:
            self.btf = btf if btf is not None else Btf(image.section_bytes(".BTF"))
            self._probe = probe if probe is not None else _image_probe(image, self.symbols)
        finally:
            image.close()

    # -- symbols and types ------------------------------------------------------------

    def symbol(self, name: str) -> int:
        """Address of kernel symbol ``name``.

        :raises SymbolNotFound: no such symbol.
        """
        return self.symbols.address(name)

    def struct(self, name: str) -> Struct:
        """Layout of ``struct name`` from BTF."""
        return self.btf.struct(name)

    def member(self, struct_name: str, path: str) -> Member:
        """``struct_name``'s member at dotted ``path``.

        :raises MissingMember: this kernel's struct has no such member.
        """
        return self.btf.struct(struct_name).member(path)

    def member_offset(self, struct_name: str, path: str) -> int:
        """Byte offset of ``path`` in ``struct struct_name``."""
        return self.member(struct_name, path).offset

    # -- memory -------------------------------------------------------------------------

    @property
    def translator(self) -> AddressTranslator:
        """The guest's virtual->physical map, discovered on first use.

        :raises TranslationError: the kernel is not (yet) in guest memory; retried next time.
        """
        if self._translator is None:
            try:
                phys_base = discover_phys_base(self.memory, self.symbol("phys_base"), *self._probe)
                layout = discover_layout(
                    self.memory,
                    phys_base=phys_base,
                    page_offset_base_sym=self.symbol("page_offset_base"),
                    init_top_pgt_sym=self.symbol("init_top_pgt"),
                    check_va=self._probe[0],
                )
            except FaultError as e:
                raise TranslationError(f"guest memory not readable yet: {e}") from e
            self._translator = AddressTranslator(self.memory, layout)
        return self._translator

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at kernel virtual ``address``.

        :raises FaultError: some page is unmapped or outside guest RAM.
        """
        if not 0 <= size <= MAX_READ:
            raise BadDataError(f"read of {size} bytes refused (limit {MAX_READ})")
        tr = self._translator or self.translator
        parts, va, left = [], address, size
        try:
            pa = tr.linear(address, size)
            if pa is not None:  # the common case: one read, no page-table walk
                return self.memory.read(pa, size)
            while left:
                n = min(left, tr.linear_extent(va))
                parts.append(self.memory.read(tr.to_phys(va), n))
                va, left = (va + n) & 0xFFFF_FFFF_FFFF_FFFF, left - n
        except FaultError:
            # The layout may be stale: early boot rewrites page_offset_base (5-level
            # paging, KASLR). Rediscover on the next call.
            self._translator = None
            raise
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write(self, address: int, data: bytes) -> None:
        """Store ``data`` at kernel virtual ``address`` (the memory must be writable).

        Only single kernel variables are written (:data:`monitor_proc.memory.MAX_WRITE`
        bytes at most); a write that would cross a page is refused, so one translation
        covers it.

        :raises FaultError: unmapped, outside guest RAM, or crossing a page.
        :raises PermissionError: the memory is read-only.
        """
        tr = self.translator
        if len(data) > tr.linear_extent(address):
            raise FaultError(address, len(data), "virtual")
        write = getattr(self.memory, "write", None)
        if write is None:
            raise PermissionError("this guest memory cannot be written")
        write(tr.to_phys(address), data)

    def _unpack(self, fmt: _Packed, address: int) -> int:
        return fmt.unpack(self.read(address, fmt.size))[0]

    def read_u8(self, address: int) -> int:
        return self._unpack(_U8, address)

    def read_u32(self, address: int) -> int:
        return self._unpack(_U32, address)

    def read_s32(self, address: int) -> int:
        return self._unpack(_S32, address)

    def read_u64(self, address: int) -> int:
        return self._unpack(_U64, address)

    # -- CPUs -----------------------------------------------------------------------------

    @property
    def nr_cpu_ids(self) -> int:
        """The guest's ``nr_cpu_ids`` (read each time: it is final only after early boot).

        :raises BadDataError: zero or absurd.
        """
        n = self.read_u32(self.symbol("nr_cpu_ids"))
        if not 0 < n <= MAX_CPUS:
            raise BadDataError(f"nr_cpu_ids = {n}")
        return n

    def _cpumask(self, symbol: str) -> list[int]:
        n = self.nr_cpu_ids
        raw = self.read(self.symbol(symbol), (n + 63) // 64 * 8)
        bits = int.from_bytes(raw, "little")
        return [cpu for cpu in range(n) if bits >> cpu & 1]

    def possible_cpus(self) -> list[int]:
        """CPUs in ``cpu_possible_mask``."""
        return self._cpumask("__cpu_possible_mask")

    def online_cpus(self) -> list[int]:
        """CPUs in ``cpu_online_mask``."""
        return self._cpumask("__cpu_online_mask")


def _image_probe(image: KernelImage, symbols: SymbolTable) -> tuple[int, bytes]:
    """Bytes of ``linux_banner`` (else the start of ``.rodata``) as the image holds them."""
    try:
        va = symbols.address("linux_banner")
    except KeyError:
        va = image.section(".rodata").vaddr
    off = image.vaddr_to_offset(va)
    if off is None:
        raise TranslationError(f"probe address {va:#x} is not in the image file")
    return va, bytes(image.data[off : off + _PROBE_LEN])
