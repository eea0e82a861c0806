"""The QEMU command line of the testbed's L1 VM (pure: no process is started here).

TCG emulates AMD SVM with nested paging, so ``-cpu qemu64,+svm,+npt`` gives L1 a /dev/kvm
with hardware semantics (``-cpu max`` and ``EPYC`` crashed L2 early: docs FACTS §3).

>>> qemu_argv(QemuLaunch(kernel=Path("vmlinuz"), initrd=Path("i.cpio"), console_log=Path("c.log")))[:3]
['qemu-system-x86_64', '-accel', 'tcg,thread=multi']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = (
    "KERNEL_CMDLINE",
    "QEMU_BINARY",
    "TCG_THREADS",
    "QemuLaunch",
    "SerialPort",
    "VirtfsShare",
    "qemu_argv",
)

QEMU_BINARY = "qemu-system-x86_64"
#: panic=-1 plus -no-reboot: any L1 panic ends QEMU at once instead of hanging.
KERNEL_CMDLINE = "console=ttyS0 panic=-1 nokaslr rdinit=/init"
TCG_THREADS = ("multi", "single")


@dataclass(frozen=True)
class VirtfsShare:
    """A host directory exported to L1 over virtio-9p.

    :param tag: mount tag (at most 31 bytes, QEMU's limit).
    :param path: host directory.
    :param readonly: export read-only.
    """

    tag: str
    path: Path
    readonly: bool


@dataclass(frozen=True)
class SerialPort:
    """A named virtio-serial port whose host side is an inherited, connected socket.

    :param name: port name L1 sees in ``/sys/class/virtio-ports/*/name``.
    :param fd: the socket's file descriptor number in the QEMU process.
    """

    name: str
    fd: int


@dataclass(frozen=True)
class QemuLaunch:
    """Configuration of one L1 VM.

    :param kernel: L1 bzImage.
    :param initrd: L1 initramfs.
    :param console_log: file receiving L1's ttyS0 (the kernel console).
    :param mem_mib: L1 memory.
    :param cpus: L1 vCPUs.
    :param shares: 9p exports, in device order.
    :param ports: virtio-serial ports.
    :param tcg_threads: ``"multi"`` (one host thread per vCPU) or ``"single"`` (round-robin).
    """

    kernel: Path
    initrd: Path
    console_log: Path
    mem_mib: int = 4096
    cpus: int = 2
    shares: tuple[VirtfsShare, ...] = ()
    ports: tuple[SerialPort, ...] = ()
    cmdline: str = KERNEL_CMDLINE
    tcg_threads: str = "multi"

    def __post_init__(self) -> None:
        if self.tcg_threads not in TCG_THREADS:
            raise ValueError(f"tcg_threads {self.tcg_threads!r} not one of {TCG_THREADS}")
        if not 256 <= self.mem_mib <= 1 << 20:
            raise ValueError(f"mem_mib {self.mem_mib} out of range 256..{1 << 20}")
        if not 1 <= self.cpus <= 64:
            raise ValueError(f"cpus {self.cpus} out of range 1..64")
        for s in self.shares:
            if not s.tag or len(s.tag.encode()) > 31 or not s.tag.replace("_", "").isalnum():
                raise ValueError(f"bad 9p mount tag {s.tag!r}")


def _opt(value: object) -> str:
    """Escape a value inside a QEMU ``key=value,...`` option string (``,`` doubles)."""
    return str(value).replace(",", ",,")


def qemu_argv(launch: QemuLaunch, binary: str = QEMU_BINARY) -> list[str]:
    """The argv for ``launch``; the port fds must be passed to the child (``pass_fds``)."""
    argv = [
        binary,
        "-accel", f"tcg,thread={launch.tcg_threads}",
        "-cpu", "qemu64,+svm,+npt",
        "-M", "pc",
        "-m", str(launch.mem_mib),
        "-smp", str(launch.cpus),
        "-nographic", "-nodefaults", "-no-reboot",
        "-monitor", "none",
        "-serial", f"file:{launch.console_log}",
        "-kernel", str(launch.kernel),
        "-initrd", str(launch.initrd),
        "-append", launch.cmdline,
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    for s in launch.shares:
        ro = ",readonly=on" if s.readonly else ""
        argv += [
            "-virtfs",
            f"local,path={_opt(s.path)},mount_tag={s.tag},security_model=none,multidevs=remap{ro}",
        ]
    if launch.ports:
        argv += ["-device", "virtio-serial-pci,id=vser0"]
    for i, p in enumerate(launch.ports):
        argv += [
            "-chardev",
            f"socket,id=port{i},fd={p.fd}",
            "-device",
            f"virtserialport,bus=vser0.0,chardev=port{i},name={_opt(p.name)}",
        ]
    return argv
