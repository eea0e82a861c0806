"""Performance mode of the KVM engine: each measure applied where the host allows it.

Measures, by name: ``pinning`` (vCPU threads on CPUs of LLCs this run holds exclusively,
the VMM's other threads on a service CPU), ``huge-pages`` (guest RAM on 2 MiB transparent
huge pages), ``fifo`` (vCPU threads SCHED_FIFO, the device thread above them),
``disable-exits`` (HLT and PAUSE stay in the guest) and ``realtime-hint`` (KVM_HINTS_REALTIME
in CPUID 0x40000001 EDX, so the guest uses no paravirtual spinlock halts). A refused
measure is reported by name with the reason and the run goes on without it.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from schedlab_shared.host_llc import performance_refusal
from vmm_proc.engines.base import EngineError
from vmm_proc.engines.kvm.llc_reservation import LlcReservation, ReservationRefused, reserve
from vmm_proc.engines.kvm.vcpu_setup import CpuidFor
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.types import CpuidEntry
from vmm_proc.kvm.vm import DISABLE_EXITS_HLT, DISABLE_EXITS_PAUSE, VmFd
from vmm_proc.mem.guest_memory import GuestMemory

__all__ = ("PerformanceMode", "VCPU_FIFO_PRIORITY", "SERVICE_FIFO_PRIORITY")

log = logging.getLogger(__name__)

VCPU_FIFO_PRIORITY = 10
SERVICE_FIFO_PRIORITY = 11  # the device thread must preempt a spinning vCPU's CPU neighbour
KVM_CPUID_FEATURES = 0x40000001
KVM_HINTS_REALTIME = 1 << 0
SHMEM_THP = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
_SHMEM_THP_OK = ("always", "within_size", "advise", "force")


class PerformanceMode:
    """The measures of one VM; ``notes`` says what was applied and what was refused.

    :param nr_vcpus: the guest's vCPUs.
    :raises EngineError: the host has too few CPUs for the vCPUs plus a service CPU.
    """

    def __init__(self, nr_vcpus: int, lock_dir: Path | None = None) -> None:
        refusal = performance_refusal(nr_vcpus)
        if refusal:
            raise EngineError(refusal)
        self.nr_vcpus = nr_vcpus
        self.notes: list[str] = []
        self.refused: dict[str, str] = {}
        self.reservation: LlcReservation | None = None
        try:
            self.reservation = (
                reserve(nr_vcpus, lock_dir=lock_dir) if lock_dir else reserve(nr_vcpus)
            )
        except ReservationRefused as exc:
            self._refuse("pinning", str(exc))

    def _refuse(self, measure: str, why: str) -> None:
        self.refused[measure] = why
        self.notes.append(f"performance: {measure} refused: {why}")
        log.warning("performance: %s refused: %s", measure, why)

    def _applied(self, measure: str, what: str) -> None:
        self.notes.append(f"performance: {measure}: {what}")

    # -- before the vCPUs exist -----------------------------------------------------------

    def disable_exits(self, vm: VmFd) -> None:
        """KVM_CAP_X86_DISABLE_EXITS for HLT and PAUSE (only before KVM_CREATE_VCPU)."""
        want = DISABLE_EXITS_HLT | DISABLE_EXITS_PAUSE
        try:
            offered = vm.check_extension(Cap.X86_DISABLE_EXITS)
        except KvmError as exc:
            offered, why = 0, str(exc)
        else:
            why = f"/dev/kvm offers mask {offered:#x}"
        mask = offered & want
        if not mask:
            self._refuse("disable-exits", f"no HLT/PAUSE exit control ({why})")
            return
        try:
            vm.enable_cap(Cap.X86_DISABLE_EXITS, mask)
        except KvmError as exc:
            self._refuse("disable-exits", str(exc))
            return
        names = [
            n
            for bit, n in ((DISABLE_EXITS_HLT, "HLT"), (DISABLE_EXITS_PAUSE, "PAUSE"))
            if mask & bit
        ]
        self._applied("disable-exits", "+".join(names))
        if mask != want:
            self._refuse("disable-exits", f"PAUSE or HLT not offered ({why})")

    def cpuid(self, base: CpuidFor) -> CpuidFor:
        """``base`` with KVM_HINTS_REALTIME set in the KVM features leaf."""

        def build(supported: list[CpuidEntry], index: int) -> list[CpuidEntry]:
            table = base(supported, index)
            for e in table:
                if e.function == KVM_CPUID_FEATURES:
                    e.edx |= KVM_HINTS_REALTIME
                    if index == 0:
                        self._applied("realtime-hint", "KVM_HINTS_REALTIME in CPUID 0x40000001")
                    return table
            if index == 0:
                self._refuse("realtime-hint", "KVM offers no CPUID leaf 0x40000001")
            return table

        return build

    def huge_pages(self, mem: GuestMemory, shmem_thp: Path = SHMEM_THP) -> None:
        """madvise(MADV_HUGEPAGE) on guest RAM, when shmem THP allows it."""
        try:
            setting = _bracketed(shmem_thp.read_text())
        except OSError as exc:
            self._refuse("huge-pages", f"{shmem_thp}: {exc.strerror}")
            return
        if setting not in _SHMEM_THP_OK:
            self._refuse("huge-pages", f"shared-memory THP is '{setting}' ({shmem_thp})")
            return
        err = mem.advise_huge()
        if err:
            self._refuse("huge-pages", f"madvise(MADV_HUGEPAGE): {os.strerror(err)}")
            return
        self._applied("huge-pages", f"2 MiB pages advised (shmem_enabled={setting})")

    # -- once the threads run -----------------------------------------------------------

    def place_threads(
        self, vcpu_tids: list[int], service_tids: Iterable[int], device_tid: int
    ) -> None:
        """Pin vCPU ``i`` to its reserved CPU and every other VMM thread to the service CPU;
        SCHED_FIFO for the vCPUs and (higher) the device thread."""
        r = self.reservation
        if r is not None:
            try:
                for tid, cpu in zip(vcpu_tids, r.vcpus, strict=True):
                    os.sched_setaffinity(tid, {cpu})
                for tid in service_tids:
                    os.sched_setaffinity(tid, {r.service})
            except OSError as exc:
                self._refuse("pinning", f"sched_setaffinity: {exc.strerror}")
            else:
                where = ", ".join(f"vcpu{i}->cpu{c}" for i, c in enumerate(r.vcpus))
                self._applied("pinning", f"{where}, service->cpu{r.service}")
        try:
            for tid in vcpu_tids:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(VCPU_FIFO_PRIORITY))
            if device_tid:
                os.sched_setscheduler(
                    device_tid, os.SCHED_FIFO, os.sched_param(SERVICE_FIFO_PRIORITY)
                )
        except OSError as exc:
            why = (
                "not permitted (needs CAP_SYS_NICE or an RLIMIT_RTPRIO)"
                if exc.errno == errno.EPERM
                else exc.strerror
            )
            self._refuse("fifo", f"sched_setscheduler: {why}")
            _back_to_normal(vcpu_tids + [device_tid])
        else:
            self._applied(
                "fifo",
                f"vCPUs at SCHED_FIFO {VCPU_FIFO_PRIORITY}, device thread at {SERVICE_FIFO_PRIORITY}",
            )

    def release(self) -> None:
        """Give the LLCs back (idempotent)."""
        if self.reservation is not None:
            self.reservation.release()


def _bracketed(text: str) -> str:
    """The selected word of a sysfs choice list, e.g. ``always [never]`` -> ``never``."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip()


def _back_to_normal(tids: list[int]) -> None:
    for tid in tids:
        if tid:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass
