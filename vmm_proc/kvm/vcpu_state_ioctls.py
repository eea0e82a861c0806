"""The vCPU ioctls a snapshot needs beyond registers: XSAVE, XCRs, debug registers, events,
CPUID read-back and KVM_ENABLE_CAP. Mixed into ``VcpuFd``; each raises ``KvmError``."""

from __future__ import annotations

import errno

from vmm_proc.kvm import ioctls
from vmm_proc.kvm._convert import cpuid_from_c
from vmm_proc.kvm._convert_state import debugregs_from_c, debugregs_to_c, xcrs_from_c, xcrs_to_c
from vmm_proc.kvm._fd import FdOwner
from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.state_types import DebugRegs, Xcr
from vmm_proc.kvm.types import CpuidEntry

__all__ = ("VcpuStateIoctls", "XSAVE_LEGACY_SIZE", "VCPU_EVENTS_SIZE")

XSAVE_LEGACY_SIZE = 4096  # sizeof(struct kvm_xsave) without the XSAVE2 extension
VCPU_EVENTS_SIZE = ffi.sizeof("struct kvm_vcpu_events")
_MAX_CPUID = 4096


class VcpuStateIoctls(FdOwner):
    """State ioctls of a vCPU fd (Documentation/virt/kvm/api.rst, section 4)."""

    def get_xsave(self, size: int = XSAVE_LEGACY_SIZE) -> bytes:
        """KVM_GET_XSAVE, or KVM_GET_XSAVE2 when ``size`` (Cap.XSAVE2 on the VM) exceeds 4 KiB."""
        if size < XSAVE_LEGACY_SIZE:
            raise ValueError(f"XSAVE area of {size} bytes is below {XSAVE_LEGACY_SIZE}")
        raw = ffi.new("char[]", size)
        buf = ffi.cast("struct kvm_xsave *", raw)
        if size > XSAVE_LEGACY_SIZE:
            self._ioctl(ioctls.KVM_GET_XSAVE2, buf, "KVM_GET_XSAVE2")
        else:
            self._ioctl(ioctls.KVM_GET_XSAVE, buf, "KVM_GET_XSAVE")
        return ffi.buffer(raw, size)[:]

    def set_xsave(self, area: bytes) -> None:
        """KVM_SET_XSAVE from a saved area (KVM reads as many bytes as Cap.XSAVE2 says)."""
        if len(area) < XSAVE_LEGACY_SIZE:
            raise ValueError(f"XSAVE area of {len(area)} bytes is below {XSAVE_LEGACY_SIZE}")
        raw = ffi.new("char[]", area)
        self._ioctl(ioctls.KVM_SET_XSAVE, ffi.cast("struct kvm_xsave *", raw), "KVM_SET_XSAVE")

    def get_xcrs(self) -> list[Xcr]:
        """KVM_GET_XCRS (XCR0 on today's CPUs)."""
        c = ffi.new("struct kvm_xcrs *")
        self._ioctl(ioctls.KVM_GET_XCRS, c, "KVM_GET_XCRS")
        return xcrs_from_c(c)

    def set_xcrs(self, xcrs: list[Xcr]) -> None:
        """KVM_SET_XCRS."""
        self._ioctl(ioctls.KVM_SET_XCRS, xcrs_to_c(xcrs), "KVM_SET_XCRS")

    def get_debugregs(self) -> DebugRegs:
        """KVM_GET_DEBUGREGS."""
        c = ffi.new("struct kvm_debugregs *")
        self._ioctl(ioctls.KVM_GET_DEBUGREGS, c, "KVM_GET_DEBUGREGS")
        return debugregs_from_c(c)

    def set_debugregs(self, regs: DebugRegs) -> None:
        """KVM_SET_DEBUGREGS."""
        self._ioctl(ioctls.KVM_SET_DEBUGREGS, debugregs_to_c(regs), "KVM_SET_DEBUGREGS")

    def get_vcpu_events(self) -> bytes:
        """KVM_GET_VCPU_EVENTS: pending exception/interrupt/NMI/SMI as the raw struct."""
        c = ffi.new("struct kvm_vcpu_events *")
        self._ioctl(ioctls.KVM_GET_VCPU_EVENTS, c, "KVM_GET_VCPU_EVENTS")
        return ffi.buffer(c)[:]

    def set_vcpu_events(self, raw: bytes) -> None:
        """KVM_SET_VCPU_EVENTS from :meth:`get_vcpu_events` bytes (its ``flags`` say what is valid)."""
        if len(raw) != VCPU_EVENTS_SIZE:
            raise ValueError(f"vCPU events are {VCPU_EVENTS_SIZE} bytes, got {len(raw)}")
        c = ffi.new("struct kvm_vcpu_events *")
        ffi.memmove(c, raw, VCPU_EVENTS_SIZE)
        self._ioctl(ioctls.KVM_SET_VCPU_EVENTS, c, "KVM_SET_VCPU_EVENTS")

    def get_cpuid2(self) -> list[CpuidEntry]:
        """KVM_GET_CPUID2: the table set by KVM_SET_CPUID2 (as KVM adjusted it)."""
        nent = 64
        while True:
            buf = ffi.new("struct kvm_cpuid2 *", {"nent": nent, "entries": nent})
            try:
                self._ioctl(ioctls.KVM_GET_CPUID2, buf, "KVM_GET_CPUID2")
            except KvmError as e:
                if e.errno == errno.E2BIG and nent < _MAX_CPUID:
                    nent *= 2
                    continue
                raise
            return cpuid_from_c(buf)

    def kvmclock_ctrl(self) -> bool:
        """KVM_KVMCLOCK_CTRL: tell the guest it was paused (no soft-lockup report).

        :return: False if the guest has no kvmclock page yet (EINVAL), True otherwise.
        """
        try:
            self._ioctl(ioctls.KVM_KVMCLOCK_CTRL, None, "KVM_KVMCLOCK_CTRL")
        except KvmError as e:
            if e.errno == errno.EINVAL:
                return False
            raise
        return True
