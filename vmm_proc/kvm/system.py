"""Kvm: the /dev/kvm system fd (KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_CREATE_VM ...)."""

from __future__ import annotations

import errno
import os

from vmm_proc.kvm import ioctls
from vmm_proc.kvm._convert import cpuid_from_c
from vmm_proc.kvm._fd import FdOwner
from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.types import CpuidEntry
from vmm_proc.kvm.vm import VmFd

__all__ = ("Kvm", "KVM_API_VERSION")

KVM_API_VERSION = 12  # the only stable value since Linux 2.6.22
_MAX_CPUID_ENTRIES = 4096  # bound on growing the KVM_GET_SUPPORTED_CPUID buffer
_MAX_MSRS = 4096


class Kvm(FdOwner):
    """The /dev/kvm handle.

    >>> with Kvm.open() as kvm, kvm.create_vm() as vm:
    ...     kvm.require(Cap.USER_MEMORY, Cap.IRQCHIP)
    """

    @classmethod
    def open(cls, path: str = "/dev/kvm") -> Kvm:
        """Open the KVM device (O_RDWR | O_CLOEXEC) and check the API version.

        :raises KvmError: if the device cannot be opened or speaks another API version.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise KvmError(f"open {path}", e.errno or errno.ENODEV) from e
        kvm = cls(fd)
        version = kvm.api_version()
        if version != KVM_API_VERSION:
            kvm.close()
            raise KvmError("KVM_GET_API_VERSION", errno.EINVAL, f"version {version}")
        return kvm

    def api_version(self) -> int:
        """KVM_GET_API_VERSION (12 on every supported kernel)."""
        return self._ioctl(ioctls.KVM_GET_API_VERSION, None, "KVM_GET_API_VERSION")

    def check_extension(self, cap: Cap) -> int:
        """KVM_CHECK_EXTENSION: 0 if absent, else a positive (sometimes meaningful) value."""
        return self._ioctl(ioctls.KVM_CHECK_EXTENSION, int(cap), "KVM_CHECK_EXTENSION")

    def has(self, cap: Cap) -> bool:
        """True if ``cap`` is present."""
        return self.check_extension(cap) > 0

    def require(self, *caps: Cap) -> None:
        """Raise one KvmError(ENOTSUP) naming every capability in ``caps`` that is missing."""
        missing = [c.name for c in caps if not self.has(c)]
        if missing:
            raise KvmError("KVM_CHECK_EXTENSION", errno.ENOTSUP, "missing " + ", ".join(missing))

    def vcpu_mmap_size(self) -> int:
        """KVM_GET_VCPU_MMAP_SIZE: bytes to mmap from each vCPU fd (struct kvm_run and more)."""
        return self._ioctl(ioctls.KVM_GET_VCPU_MMAP_SIZE, None, "KVM_GET_VCPU_MMAP_SIZE")

    def supported_cpuid(self) -> list[CpuidEntry]:
        """KVM_GET_SUPPORTED_CPUID, growing the buffer on E2BIG."""
        nent = 128
        while True:
            buf = ffi.new("struct kvm_cpuid2 *", {"nent": nent, "entries": nent})
            try:
                self._ioctl(ioctls.KVM_GET_SUPPORTED_CPUID, buf, "KVM_GET_SUPPORTED_CPUID")
            except KvmError as e:
                if e.errno == errno.E2BIG and nent < _MAX_CPUID_ENTRIES:
                    nent *= 2
                    continue
                raise
            return cpuid_from_c(buf)

    def msr_index_list(self) -> list[int]:
        """KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores for a vCPU."""
        probe = ffi.new("struct kvm_msr_list *", {"nmsrs": 0, "indices": 0})
        try:
            self._ioctl(ioctls.KVM_GET_MSR_INDEX_LIST, probe, "KVM_GET_MSR_INDEX_LIST")
        except KvmError as e:
            if e.errno != errno.E2BIG:
                raise
        n = min(int(probe.nmsrs), _MAX_MSRS)
        buf = ffi.new("struct kvm_msr_list *", {"nmsrs": n, "indices": n})
        self._ioctl(ioctls.KVM_GET_MSR_INDEX_LIST, buf, "KVM_GET_MSR_INDEX_LIST")
        return [int(buf.indices[i]) for i in range(min(int(buf.nmsrs), n))]

    def create_vm(self) -> VmFd:
        """KVM_CREATE_VM (machine type 0); the VmFd remembers the vcpu mmap size."""
        mmap_size = self.vcpu_mmap_size()
        fd = self._ioctl(ioctls.KVM_CREATE_VM, 0, "KVM_CREATE_VM")
        return VmFd(fd, mmap_size)
