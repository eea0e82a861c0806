"""The qemu-system-x86_64 command line for a VmConfig: a pure function, tested on its own."""

from __future__ import annotations

from dataclasses import dataclass

from guest.wire import SHELL_PORT_NAME
from schedlab_shared.guest_ram import node_path
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig

__all__ = ("QemuSockets", "qemu_argv", "ram_regions", "BULK_PORT_NAME")

BULK_PORT_NAME = "org.schedlab.bulk"
# Below this the pc machine keeps guest RAM contiguous from gpa 0 (file offset == gpa).
_LOWMEM_LIMIT_MIB = 2816


@dataclass(frozen=True)
class QemuSockets:
    """Unix sockets vmm_proc listens on; QEMU connects to each as a client at startup."""

    com1: str
    com2: str
    hvc0: str
    bulk: str
    shell: str = ""  # the shell port (schedlab shell); "" only in old callers' tests
    qmp: str = ""  # QEMU's own QMP server socket (vCPU thread ids); "" for none


def ram_regions(config: VmConfig) -> list[dict]:
    """Guest RAM as one file per NUMA node, laid out back to back from gpa 0."""
    topo = config.topology
    if config.mem_mib > _LOWMEM_LIMIT_MIB:
        raise ValueError(
            f"--mem {config.mem_mib} MiB: at most {_LOWMEM_LIMIT_MIB} MiB are supported"
        )
    if config.mem_mib % topo.nodes or config.mem_mib // topo.nodes < 64:
        raise ValueError(
            f"--mem {config.mem_mib} MiB does not split into {topo.nodes} NUMA nodes of >= 64 MiB"
        )
    per_node = (config.mem_mib // topo.nodes) << 20
    base = config.guest_ram_path
    return [
        {
            "gpa": i * per_node,
            "size": per_node,
            "path": node_path(base, i, topo.nodes),
            "offset": 0,
        }
        for i in range(topo.nodes)
    ]


def _smp(topo: Topology) -> str:
    # QEMU's x86 CPUID reports L3 as shared by one die: dies model our LLCs.
    return (
        f"cpus={topo.nr_cpus},sockets={topo.nodes},dies={topo.llcs},"
        f"cores={topo.cores},threads={topo.threads}"
    )


def qemu_argv(
    config: VmConfig, sockets: QemuSockets, qemu: str = "qemu-system-x86_64"
) -> list[str]:
    topo = config.topology
    accel = "kvm" if config.qemu_accel == "kvm" else f"tcg,thread={config.tcg_threads}"
    cpu = "host" if config.qemu_accel == "kvm" else "max"
    argv = [
        qemu,
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-M",
        "pc",
        "-m",
        str(config.mem_mib),
        "-smp",
        _smp(topo),
        "-kernel",
        config.kernel,
        "-initrd",
        config.initrd,
        "-append",
        config.cmdline,
        "-monitor",
        "none",
        "-chardev",
        f"socket,id=com1,path={sockets.com1}",
        "-serial",
        "chardev:com1",
        "-chardev",
        f"socket,id=com2,path={sockets.com2}",
        "-serial",
        "chardev:com2",
        "-device",
        "virtio-serial-pci,id=vser0,max_ports=3",
        "-chardev",
        f"socket,id=hvc0,path={sockets.hvc0}",
        "-device",
        "virtconsole,chardev=hvc0,bus=vser0.0,nr=0",
        "-chardev",
        f"socket,id=bulk,path={sockets.bulk}",
        "-device",
        f"virtserialport,chardev=bulk,bus=vser0.0,nr=1,name={config.bulk_port_name or BULK_PORT_NAME}",
    ]
    if sockets.shell:
        argv += [
            "-chardev",
            f"socket,id=shell,path={sockets.shell}",
            "-device",
            f"virtserialport,chardev=shell,bus=vser0.0,nr=2,name={SHELL_PORT_NAME}",
        ]
    if sockets.qmp:
        argv += ["-qmp", f"unix:{sockets.qmp},server=on,wait=off"]
    regions = ram_regions(config)
    if topo.nodes == 1:
        r = regions[0]
        argv += [
            "-object",
            f"memory-backend-file,id=ram0,size={r['size']},mem-path={r['path']},share=on",
            "-machine",
            "memory-backend=ram0",
        ]
    else:
        per_node = topo.nr_cpus // topo.nodes
        for i, r in enumerate(regions):
            first = i * per_node
            argv += [
                "-object",
                f"memory-backend-file,id=ram{i},size={r['size']},mem-path={r['path']},share=on",
                "-numa",
                f"node,nodeid={i},memdev=ram{i},cpus={first}-{first + per_node - 1}",
            ]
    return argv
