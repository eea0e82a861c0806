"""The vmlinux ELF file as the monitor sees it: sections, load segments and an identity.

The image is mapped read-only; parsers (:mod:`monitor_proc.btf`, :mod:`monitor_proc.kallsyms`)
slice it without copying the whole file.
"""

from __future__ import annotations

import hashlib
import mmap
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

__all__ = ("ImageError", "KernelImage", "Section", "Segment")


class ImageError(Exception):
    """The file is not a usable vmlinux ELF."""


@dataclass(frozen=True)
class Section:
    name: str
    vaddr: int
    offset: int
    size: int


@dataclass(frozen=True)
class Segment:
    vaddr: int
    paddr: int
    offset: int
    filesz: int


class KernelImage:
    """A decompressed vmlinux, mapped read-only.

    >>> img = KernelImage.open("vmlinux"); img.section(".BTF").size
    5189156
    """

    def __init__(
        self,
        path: Path,
        data: mmap.mmap,
        sections: dict[str, Section],
        segments: list[Segment],
        build_id: str | None,
    ) -> None:
        self.path = path
        self.data = data
        self.sections = sections
        self.segments = segments
        self.build_id = build_id

    @classmethod
    def open(cls, path: str | Path) -> KernelImage:
        """Map ``path`` and read its section and program headers.

        :raises ImageError: not an ELF file.
        """
        path = Path(path)
        with open(path, "rb") as f:
            try:
                elf = ELFFile(f)
                sections = {
                    s.name: Section(s.name, s["sh_addr"], s["sh_offset"], s["sh_size"])
                    for s in elf.iter_sections()
                    if s.name
                }
                segments = [
                    Segment(p["p_vaddr"], p["p_paddr"], p["p_offset"], p["p_filesz"])
                    for p in elf.iter_segments()
                    if p["p_type"] == "PT_LOAD"
                ]
                build_id = _build_id(elf)
            except ELFError as e:
                raise ImageError(f"{path}: not an ELF file ({e})") from e
            data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        return cls(path, data, sections, segments, build_id)

    def close(self) -> None:
        self.data.close()

    def section(self, name: str) -> Section:
        """:raises ImageError: no such section."""
        try:
            return self.sections[name]
        except KeyError:
            raise ImageError(f"{self.path}: no {name} section") from None

    def section_bytes(self, name: str) -> bytes:
        s = self.section(name)
        return self.data[s.offset : s.offset + s.size]

    def offset_to_vaddr(self, offset: int) -> int | None:
        """Virtual address of a file offset inside a PT_LOAD segment, else None."""
        for seg in self.segments:
            if seg.offset <= offset < seg.offset + seg.filesz:
                return seg.vaddr + offset - seg.offset
        return None

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        """File offset of a virtual address backed by file bytes, else None."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg.offset + vaddr - seg.vaddr
        return None

    def cache_key(self) -> str:
        """The GNU build-id when present, else the file's SHA-256."""
        if self.build_id:
            return self.build_id
        return hashlib.sha256(self.data).hexdigest()


def _build_id(elf: ELFFile) -> str | None:
    for sec in elf.iter_sections():
        if not isinstance(sec, NoteSection):
            continue
        for note in sec.iter_notes():
            if note["n_name"] == "GNU" and note["n_type"] == "NT_GNU_BUILD_ID":
                desc = note["n_desc"]
                return desc.hex() if isinstance(desc, bytes) else str(desc)
    return None
