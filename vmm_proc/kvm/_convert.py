"""Copies between cffi structs and the plain dataclasses of vmm_proc.kvm.types."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.types import CpuidEntry, DTable, Regs, Segment, Sregs

_REG_NAMES = tuple(f.name for f in fields(Regs))
_SEG_NAMES = tuple(f.name for f in fields(Segment))
_SEGMENTS = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")
_TABLES = ("gdt", "idt")
_CONTROL = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")


def regs_from_c(c: Any) -> Regs:
    """``struct kvm_regs`` -> Regs."""
    return Regs(*(getattr(c, n) for n in _REG_NAMES))


def regs_to_c(regs: Regs) -> Any:
    """Regs -> new ``struct kvm_regs *``."""
    c = ffi.new("struct kvm_regs *")
    for n in _REG_NAMES:
        setattr(c, n, getattr(regs, n))
    return c


def sregs_from_c(c: Any) -> Sregs:
    """``struct kvm_sregs`` -> Sregs."""
    out = Sregs()
    for name in _SEGMENTS:
        seg = getattr(c, name)
        setattr(out, name, Segment(*(getattr(seg, n) for n in _SEG_NAMES)))
    for name in _TABLES:
        tab = getattr(c, name)
        setattr(out, name, DTable(tab.base, tab.limit))
    for name in _CONTROL:
        setattr(out, name, getattr(c, name))
    out.interrupt_bitmap = tuple(int(c.interrupt_bitmap[i]) for i in range(4))  # type: ignore[assignment]
    return out


def sregs_to_c(sregs: Sregs) -> Any:
    """Sregs -> new ``struct kvm_sregs *``."""
    c = ffi.new("struct kvm_sregs *")
    for name in _SEGMENTS:
        src, dst = getattr(sregs, name), getattr(c, name)
        for n in _SEG_NAMES:
            setattr(dst, n, getattr(src, n))
    for name in _TABLES:
        src, dst = getattr(sregs, name), getattr(c, name)
        dst.base, dst.limit = src.base, src.limit
    for name in _CONTROL:
        setattr(c, name, getattr(sregs, name))
    for i, word in enumerate(sregs.interrupt_bitmap):
        c.interrupt_bitmap[i] = word
    return c


def cpuid_from_c(buf: Any) -> list[CpuidEntry]:
    """``struct kvm_cpuid2 *`` -> CpuidEntry list."""
    out = []
    for i in range(min(int(buf.nent), len(buf.entries))):
        e = buf.entries[i]
        out.append(CpuidEntry(e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx))
    return out


def cpuid_to_c(entries: list[CpuidEntry]) -> Any:
    """CpuidEntry list -> new ``struct kvm_cpuid2 *``."""
    buf = ffi.new("struct kvm_cpuid2 *", {"nent": len(entries), "entries": len(entries)})
    for i, src in enumerate(entries):
        dst = buf.entries[i]
        dst.function, dst.index, dst.flags = src.function, src.index, src.flags
        dst.eax, dst.ebx, dst.ecx, dst.edx = src.eax, src.ebx, src.ecx, src.edx
    return buf
