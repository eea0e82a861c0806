"""A thin typed layer over the KVM ioctl ABI (after rust-vmm kvm-ioctls).

One wrapper per fd kind, each owning its fd (context manager + idempotent ``close()``);
every failure raises ``KvmError(op, errno)`` (an OSError); nothing returns -1.

API summary::

    from vmm_proc.kvm import Kvm, Cap, KvmError
    from vmm_proc.kvm.exits import IoIn, IoOut, MmioRead, MmioWrite, Hlt, Shutdown, \
        SystemEvent, FailEntry, InternalError, Interrupted, Unsupported
    from vmm_proc.mem import GuestMemory

    kvm = Kvm.open()                      # /dev/kvm, O_CLOEXEC, API version checked
    kvm.require(Cap.IRQCHIP, Cap.IRQFD)   # one KvmError(ENOTSUP) naming all missing caps
    kvm.check_extension(Cap.NR_VCPUS) -> int;  kvm.has(cap) -> bool
    kvm.supported_cpuid() -> list[CpuidEntry];  kvm.msr_index_list() -> list[int]
    vm = kvm.create_vm()                  # VmFd
    mem = GuestMemory.create("/dev/shm/schedlab-<run>-mem", size)
    for slot, r in enumerate(mem.regions):
        vm.set_user_memory_region(slot, r.gpa, r.size, r.host_addr)
    vm.set_tss_addr(0xFFFBD000); vm.set_identity_map_addr(0xFFFBC000)
    vm.create_irqchip(); vm.create_pit2()
    vm.irqfd(efd, gsi) / vm.irqfd_deassign(efd, gsi);  vm.set_irq_line(irq, level)
    vm.ioeventfd(efd, addr, length, datamatch=None, pio=False) / vm.ioeventfd_deassign(...)
    cpu = vm.create_vcpu(0)               # VcpuFd, kvm_run mapped
    cpu.get_regs()/set_regs(Regs); get_sregs()/set_sregs(Sregs); set_cpuid2(list[CpuidEntry])
    cpu.get_msrs([idx]) -> {idx: val}; set_msrs({idx: val}); set_fpu(); get_mp_state()
    cpu.set_mp_state(0); cpu.get_tsc_khz(); cpu.set_tsc_khz(khz)
    cpu.get_lapic()/set_lapic(bytes); cpu.configure_lints()   # BSP: LINT0 ExtINT, LINT1 NMI
    match cpu.run():                      # one frozen dataclass per exit
        case IoOut(port=p, data=d): ...
        case IoIn(port=p, size=n) as e: e.reply(bytes(n))      # before the next run()
        case MmioRead(addr=a, length=n) as e: e.reply(bytes(n))
        case Interrupted(): ...           # EINTR/EAGAIN: check the control queue
    cpu.immediate_exit = True             # property on kvm_run

    from vmm_proc.kvm.kick import install_kick_handler, kick
    install_kick_handler()                # once, from the main thread
    kick(cpu, vcpu_thread.ident)          # immediate_exit + pthread_kill(KICK_SIGNAL)

    from vmm_proc.kvm.minivm import MiniVm, CODE_ADDR   # micro-guest VM (probe, bench, tests)
    with MiniVm(mem_size=1 << 20, vcpus=1) as m:
        m.load(CODE_ADDR, code); m.real_mode(0, CODE_ADDR, rcx=5)   # or m.long_mode(...)
        m.vcpus[0].run()

Threading: run() releases the GIL inside KVM_RUN; close a VcpuFd only after its thread has
left run(). IoIn/MmioRead replies must be given before the next run() of that vCPU.

Types (Regs, Sregs, Segment, DTable, CpuidEntry) live in ``vmm_proc.kvm.types``; ioctl
numbers in ``ioctls``; capability numbers in ``cap``. cffi stays in ``_ffi`` (and vmm_proc.mem).
"""

from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.system import Kvm
from vmm_proc.kvm.vcpu import VcpuFd
from vmm_proc.kvm.vm import VmFd

__all__ = ("Cap", "Kvm", "KvmError", "VcpuFd", "VmFd")
