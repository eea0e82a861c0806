"""VcpuFd: ioctls valid on a vCPU fd, and KVM_RUN decoded into vmm_proc.kvm.exits values."""

from __future__ import annotations

import errno
import mmap
import struct
from functools import partial
from typing import Any

from vmm_proc.kvm import ioctls
from vmm_proc.kvm._convert import cpuid_to_c, regs_from_c, regs_to_c, sregs_from_c, sregs_to_c
from vmm_proc.kvm._ffi import ffi, lib
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.exits import (
    FailEntry,
    Hlt,
    InternalError,
    Interrupted,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Shutdown,
    SystemEvent,
    Unsupported,
    VcpuExit,
)
from vmm_proc.kvm.types import CpuidEntry, Regs, Sregs
from vmm_proc.kvm.vcpu_state_ioctls import VcpuStateIoctls

__all__ = ("VcpuFd", "LAPIC_LVT_LINT0", "LAPIC_LVT_LINT1")

# KVM_EXIT_* (include/uapi/linux/kvm.h)
_EXIT_IO, _EXIT_HLT, _EXIT_MMIO, _EXIT_SHUTDOWN = 2, 5, 6, 8
_EXIT_FAIL_ENTRY, _EXIT_INTERNAL_ERROR, _EXIT_SYSTEM_EVENT = 9, 17, 24
_IO_OUT = 1
_NO_ARG = ffi.cast("unsigned long", 0)
_HLT, _SHUTDOWN, _INTERRUPTED = Hlt(), Shutdown(), Interrupted()
_REASON = struct.Struct("<I")
_REASON_OFF = ffi.offsetof("struct kvm_run", "exit_reason")
_UNION_OFF = ffi.offsetof("struct kvm_run", "io")
_IO = struct.Struct("<BBHIQ")  # direction, size, port, count, data_offset
_MMIO = struct.Struct("<Q8sIB")  # phys_addr, data[8], len, is_write
_MMIO_DATA_OFF = 8
_MAX_MSRS = 1024

# Local APIC register offsets and LVT delivery modes (Intel SDM vol. 3, 10.5.1).
LAPIC_LVT_LINT0 = 0x350
LAPIC_LVT_LINT1 = 0x360
_LVT_DELIVERY_MASK = 0x700
_DELIVERY_NMI = 0x400
_DELIVERY_EXTINT = 0x700


class VcpuFd(VcpuStateIoctls):
    """One virtual CPU; made by ``VmFd.create_vcpu(id)``.

    ``close()`` unmaps kvm_run too: only call it once no thread is inside ``run()``.
    """

    def __init__(self, fd: int, vcpu_id: int) -> None:
        super().__init__(fd)
        self.vcpu_id = vcpu_id
        self._run: Any = None
        self._view: Any = None  # memoryview of the kvm_run mapping
        self._map_size = 0

    def map_run(self, size: int) -> None:
        """mmap the vCPU's shared ``struct kvm_run`` area (done by ``VmFd.create_vcpu``)."""
        if size < ffi.sizeof("struct kvm_run"):
            raise KvmError("KVM_GET_VCPU_MMAP_SIZE", errno.EINVAL, f"{size} bytes is too small")
        addr = lib.mmap(
            ffi.NULL, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, self.fd, 0
        )
        if addr == ffi.cast("void *", -1):
            raise KvmError("mmap kvm_run", ffi.errno)
        self._map_size = size
        self._run = ffi.cast("struct kvm_run *", addr)
        self._view = memoryview(ffi.buffer(ffi.cast("char *", addr), size))

    def close(self) -> None:
        """Unmap kvm_run, then close the fd; idempotent."""
        run, view, self._run, self._view = self._run, self._view, None, None
        if view is not None:
            try:
                view.release()  # stray references now fail cleanly instead of faulting
            except BufferError:
                pass  # a slice is alive elsewhere; our own accessors already see None
        if run is not None:
            lib.munmap(run, self._map_size)
        super().close()

    def _kvm_run(self, op: str) -> Any:
        if self._run is None:
            raise KvmError(op, errno.EBADF, "vCPU closed")
        return self._run

    # -- KVM_RUN -----------------------------------------------------------------

    @property
    def immediate_exit(self) -> bool:
        """kvm_run.immediate_exit: when set, KVM_RUN returns EINTR at once (Cap.IMMEDIATE_EXIT)."""
        return bool(self._kvm_run("immediate_exit").immediate_exit)

    @immediate_exit.setter
    def immediate_exit(self, value: bool) -> None:
        self._kvm_run("immediate_exit").immediate_exit = 1 if value else 0

    def run(self) -> VcpuExit:
        """KVM_RUN until the next exit, decoded into one ``vmm_proc.kvm.exits`` value.

        EINTR and EAGAIN become Interrupted (immediate_exit is cleared first, so a kick
        arriving after this return still stops the next run). Other errors raise KvmError.
        """
        ret = lib.ioctl(self._fd, ioctls.KVM_RUN, _NO_ARG)
        if ret < 0:
            err = ffi.errno
            if err in (errno.EINTR, errno.EAGAIN) and self._run is not None:
                self._run.immediate_exit = 0
                return _INTERRUPTED
            raise KvmError("KVM_RUN", err)
        view = self._view
        (reason,) = _REASON.unpack_from(view, _REASON_OFF)
        if reason == _EXIT_IO:
            return self._decode_io(view)
        if reason == _EXIT_MMIO:
            return self._decode_mmio(view)
        if reason == _EXIT_HLT:
            return _HLT
        if reason == _EXIT_SHUTDOWN:
            return _SHUTDOWN
        run = self._run
        if reason == _EXIT_SYSTEM_EVENT:
            ev = run.system_event
            n = min(int(ev.ndata), 16)
            return SystemEvent(int(ev.type), tuple(int(ev.data[i]) for i in range(n)))
        if reason == _EXIT_FAIL_ENTRY:
            fe = run.fail_entry
            return FailEntry(int(fe.hardware_entry_failure_reason), int(fe.cpu))
        if reason == _EXIT_INTERNAL_ERROR:
            ie = run.internal
            n = min(int(ie.ndata), 16)
            return InternalError(int(ie.suberror), tuple(int(ie.data[i]) for i in range(n)))
        return Unsupported(int(reason))

    # Port I/O and MMIO are the hot exits: decoded with struct from a memoryview of
    # kvm_run, which costs a fraction of per-field cffi attribute reads.
    def _decode_io(self, view: memoryview) -> IoIn | IoOut:
        direction, size, port, count, start = _IO.unpack_from(view, _UNION_OFF)
        end = start + size * count
        # The kernel picks data_offset; still never index past our mapping.
        if end > self._map_size:
            raise KvmError(
                "KVM_RUN", errno.EFAULT, f"io data [{start:#x},{end:#x}) outside kvm_run"
            )
        if direction == _IO_OUT:
            return IoOut(port, size, count, bytes(view[start:end]))
        return IoIn(port, size, count, partial(self._store, start, end))

    def _decode_mmio(self, view: memoryview) -> MmioRead | MmioWrite:
        addr, data, length, is_write = _MMIO.unpack_from(view, _UNION_OFF)
        length = min(length, 8)
        if is_write:
            return MmioWrite(addr, data[:length])
        start = _UNION_OFF + _MMIO_DATA_OFF
        return MmioRead(addr, length, partial(self._store, start, start + length))

    def _store(self, start: int, end: int, data: bytes) -> None:
        """Write a reply into kvm_run (IoIn data area or mmio.data)."""
        view = self._view
        if view is None:
            raise KvmError("reply", errno.EBADF, "vCPU closed")
        view[start:end] = data

    # -- register state -------------------------------------------------------------

    def get_regs(self) -> Regs:
        """KVM_GET_REGS."""
        c = ffi.new("struct kvm_regs *")
        self._ioctl(ioctls.KVM_GET_REGS, c, "KVM_GET_REGS")
        return regs_from_c(c)

    def set_regs(self, regs: Regs) -> None:
        """KVM_SET_REGS."""
        self._ioctl(ioctls.KVM_SET_REGS, regs_to_c(regs), "KVM_SET_REGS")

    def get_sregs(self) -> Sregs:
        """KVM_GET_SREGS."""
        c = ffi.new("struct kvm_sregs *")
        self._ioctl(ioctls.KVM_GET_SREGS, c, "KVM_GET_SREGS")
        return sregs_from_c(c)

    def set_sregs(self, sregs: Sregs) -> None:
        """KVM_SET_SREGS (interrupt_bitmap zero: no pending interrupt injected)."""
        self._ioctl(ioctls.KVM_SET_SREGS, sregs_to_c(sregs), "KVM_SET_SREGS")

    def set_cpuid2(self, entries: list[CpuidEntry]) -> None:
        """KVM_SET_CPUID2: the CPUID table this vCPU's guest sees."""
        self._ioctl(ioctls.KVM_SET_CPUID2, cpuid_to_c(entries), "KVM_SET_CPUID2")

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        """KVM_GET_MSRS for ``indices``; raises KvmError(EINVAL) naming the first unread MSR."""
        buf = self._msr_buffer({i: 0 for i in indices})
        done = self._ioctl(ioctls.KVM_GET_MSRS, buf, "KVM_GET_MSRS")
        self._check_msr_count(buf, done, "KVM_GET_MSRS")
        return {int(buf.entries[i].index): int(buf.entries[i].data) for i in range(done)}

    def set_msrs(self, values: dict[int, int]) -> None:
        """KVM_SET_MSRS; raises KvmError(EINVAL) naming the first MSR KVM refused."""
        buf = self._msr_buffer(values)
        done = self._ioctl(ioctls.KVM_SET_MSRS, buf, "KVM_SET_MSRS")
        self._check_msr_count(buf, done, "KVM_SET_MSRS")

    @staticmethod
    def _msr_buffer(values: dict[int, int]) -> Any:
        if len(values) > _MAX_MSRS:
            raise ValueError(f"{len(values)} MSRs in one call (max {_MAX_MSRS})")
        buf = ffi.new("struct kvm_msrs *", {"nmsrs": len(values), "entries": len(values)})
        for i, (index, data) in enumerate(values.items()):
            buf.entries[i].index = index
            buf.entries[i].data = data
        return buf

    @staticmethod
    def _check_msr_count(buf: Any, done: int, op: str) -> None:
        # These ioctls return how many entries they processed, stopping at the first failure.
        if done < buf.nmsrs:
            raise KvmError(op, errno.EINVAL, f"MSR {int(buf.entries[done].index):#x} refused")

    def set_fpu(self, fcw: int = 0x37F, mxcsr: int = 0x1F80) -> None:
        """KVM_SET_FPU with the x87/SSE reset defaults (all exceptions masked)."""
        fpu = ffi.new("struct kvm_fpu *", {"fcw": fcw, "mxcsr": mxcsr})
        self._ioctl(ioctls.KVM_SET_FPU, fpu, "KVM_SET_FPU")

    def get_mp_state(self) -> int:
        """KVM_GET_MP_STATE (0 runnable, 1 uninitialized, 2 INIT received, 3 halted, ...)."""
        c = ffi.new("struct kvm_mp_state *")
        self._ioctl(ioctls.KVM_GET_MP_STATE, c, "KVM_GET_MP_STATE")
        return int(c.mp_state)

    def set_mp_state(self, state: int) -> None:
        """KVM_SET_MP_STATE."""
        c = ffi.new("struct kvm_mp_state *", {"mp_state": state})
        self._ioctl(ioctls.KVM_SET_MP_STATE, c, "KVM_SET_MP_STATE")

    def get_tsc_khz(self) -> int:
        """KVM_GET_TSC_KHZ: the guest TSC frequency (Cap.GET_TSC_KHZ)."""
        return self._ioctl(ioctls.KVM_GET_TSC_KHZ, None, "KVM_GET_TSC_KHZ")

    def set_tsc_khz(self, khz: int) -> None:
        """KVM_SET_TSC_KHZ: scale the guest TSC (Cap.TSC_CONTROL)."""
        self._ioctl(ioctls.KVM_SET_TSC_KHZ, khz, "KVM_SET_TSC_KHZ")

    # -- local APIC (needs VmFd.create_irqchip) ---------------------------------------

    def get_lapic(self) -> bytes:
        """KVM_GET_LAPIC: the 1 KiB local APIC register page."""
        c = ffi.new("struct kvm_lapic_state *")
        self._ioctl(ioctls.KVM_GET_LAPIC, c, "KVM_GET_LAPIC")
        return ffi.buffer(c.regs)[:]

    def set_lapic(self, regs: bytes) -> None:
        """KVM_SET_LAPIC from a 1 KiB register page."""
        if len(regs) != 1024:
            raise ValueError(f"LAPIC state is 1024 bytes, got {len(regs)}")
        c = ffi.new("struct kvm_lapic_state *")
        ffi.memmove(c.regs, regs, 1024)
        self._ioctl(ioctls.KVM_SET_LAPIC, c, "KVM_SET_LAPIC")

    def configure_lints(self) -> None:
        """Set LINT0 to ExtINT and LINT1 to NMI, as firmware does for the BSP.

        Linux expects the PIC to reach the BSP through LINT0 in virtual-wire mode.
        """
        regs = bytearray(self.get_lapic())
        for offset, mode in ((LAPIC_LVT_LINT0, _DELIVERY_EXTINT), (LAPIC_LVT_LINT1, _DELIVERY_NMI)):
            (value,) = struct.unpack_from("<I", regs, offset)
            struct.pack_into("<I", regs, offset, (value & ~_LVT_DELIVERY_MASK) | mode)
        self.set_lapic(bytes(regs))
