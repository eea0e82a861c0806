"""qemu_argv: the L1 command line carries the recipe of FACTS §3 and escapes paths."""

from pathlib import Path

import pytest

from orchestrator.testbed.qemu_argv import QemuLaunch, SerialPort, VirtfsShare, qemu_argv


def _launch(**kw):
    base = dict(kernel=Path("/k/vmlinuz"), initrd=Path("/k/i.cpio"), console_log=Path("/l/c.log"))
    base.update(kw)
    return QemuLaunch(**base)


def _pairs(argv):
    return [(argv[i], argv[i + 1]) for i in range(1, len(argv) - 1) if argv[i].startswith("-")]


def test_cpu_accel_machine_and_safety_flags():
    argv = qemu_argv(_launch(mem_mib=2048, cpus=3))
    pairs = dict(_pairs(argv))
    assert argv[0] == "qemu-system-x86_64"
    assert pairs["-accel"] == "tcg,thread=multi"
    assert pairs["-cpu"] == "qemu64,+svm,+npt"
    assert pairs["-M"] == "pc"
    assert pairs["-m"] == "2048"
    assert pairs["-smp"] == "3"
    assert pairs["-serial"] == "file:/l/c.log"
    assert pairs["-kernel"] == "/k/vmlinuz" and pairs["-initrd"] == "/k/i.cpio"
    assert "panic=-1" in pairs["-append"].split()
    for flag in ("-no-reboot", "-nographic", "-nodefaults"):
        assert flag in argv


def test_virtfs_readonly_and_comma_escaping():
    shares = (
        VirtfsShare("hostroot", Path("/"), readonly=True),
        VirtfsShare("share0", Path("/work/a,b"), readonly=False),
    )
    virtfs = [v for k, v in _pairs(qemu_argv(_launch(shares=shares))) if k == "-virtfs"]
    assert virtfs == [
        "local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on",
        "local,path=/work/a,,b,mount_tag=share0,security_model=none,multidevs=remap",
    ]


def test_serial_ports_use_inherited_fds():
    ports = (SerialPort("org.x.out", 5), SerialPort("org.x.status", 7))
    argv = qemu_argv(_launch(ports=ports))
    pairs = _pairs(argv)
    assert ("-device", "virtio-serial-pci,id=vser0") in pairs
    assert ("-chardev", "socket,id=port0,fd=5") in pairs
    assert ("-chardev", "socket,id=port1,fd=7") in pairs
    assert ("-device", "virtserialport,bus=vser0.0,chardev=port1,name=org.x.status") in pairs


def test_single_threaded_tcg():
    assert dict(_pairs(qemu_argv(_launch(tcg_threads="single"))))["-accel"] == "tcg,thread=single"


def test_no_serial_bus_without_ports():
    assert not any("virtio-serial" in a for a in qemu_argv(_launch()))


@pytest.mark.parametrize(
    "kw",
    [
        {"mem_mib": 64},
        {"cpus": 0},
        {"cpus": 65},
        {"shares": (VirtfsShare("x" * 32, Path("/"), True),)},
        {"shares": (VirtfsShare("bad,tag", Path("/"), True),)},
        {"shares": (VirtfsShare("", Path("/"), True),)},
        {"tcg_threads": "dual"},
    ],
)
def test_invalid_launch_rejected(kw):
    with pytest.raises(ValueError):
        _launch(**kw)
