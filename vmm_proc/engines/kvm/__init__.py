"""The KVM engine: our own VMM over /dev/kvm (see ``engine.KvmEngine``).

::

    from vmm_proc.engines.kvm import KvmEngine, RawBoot
    eng = KvmEngine(config, hooks)                # boots config.vmlinux or config.kernel
    eng = KvmEngine(config, hooks, boot=RawBoot(code, mode="long"))   # a micro-guest
    eng.start(); eng.send_console(b"..."); eng.stop(ExitReason.STOPPED); eng.close()

Modules: ``vm`` (Machine: KVM fds, RAM, irqchip, vCPUs), ``device_manager`` (buses, irqfds,
ioeventfds, device thread), ``vcpu_thread``/``vcpu_control`` (the vCPU state machine),
``exit_dispatch``/``pio_x86_64`` (exit handling), ``boot_plan``/``linux_boot`` (boot
strategies), ``watchdog``/``diagnostics`` (the deadline and its report).
"""

from vmm_proc.engines.kvm.boot_plan import RawBoot
from vmm_proc.engines.kvm.engine import KvmEngine
from vmm_proc.engines.kvm.linux_boot import LinuxBoot

__all__ = ("KvmEngine", "LinuxBoot", "RawBoot")
