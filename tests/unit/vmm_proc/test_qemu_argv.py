import pytest

from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from vmm_proc.engines.qemu_argv import BULK_PORT_NAME, QemuSockets, qemu_argv, ram_regions

SOCKS = QemuSockets("/r/com1", "/r/com2", "/r/hvc0", "/r/bulk")


def _cfg(**kw) -> VmConfig:  # noqa: ANN003
    base = dict(run_id="r1", engine="qemu", kernel="/k", initrd="/i", cmdline="console=ttyS0")
    base.update(kw)
    return VmConfig(**base)


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_single_node_tcg() -> None:
    argv = qemu_argv(_cfg(topology=Topology(1, 1, 2, 1)), SOCKS)
    assert _opt(argv, "-accel") == ["tcg,thread=single"] and _opt(argv, "-cpu") == ["max"]
    assert _opt(qemu_argv(_cfg(tcg_threads="multi"), SOCKS), "-accel") == ["tcg,thread=multi"]
    assert _opt(argv, "-smp") == ["cpus=2,sockets=1,dies=1,cores=2,threads=1"]
    assert "-no-reboot" in argv and "-nodefaults" in argv
    assert _opt(argv, "-serial") == ["chardev:com1", "chardev:com2"]
    assert any(f"name={BULK_PORT_NAME}" in d for d in _opt(argv, "-device"))
    assert any("path=/r/bulk" in c for c in _opt(argv, "-chardev"))
    (obj,) = _opt(argv, "-object")
    assert "mem-path=/dev/shm/schedlab-r1-mem" in obj and "share=on" in obj
    assert _opt(argv, "-machine") == ["memory-backend=ram0"]


def test_bulk_port_rename_hook() -> None:
    devices = _opt(qemu_argv(_cfg(bulk_port_name="org.example.other"), SOCKS), "-device")
    assert any("name=org.example.other" in d for d in devices)
    assert not any(f"name={BULK_PORT_NAME}" in d for d in devices)


def test_numa_nodes_get_a_file_and_cpus_each() -> None:
    cfg = _cfg(topology=Topology(2, 1, 2, 1), mem_mib=1024)
    argv = qemu_argv(cfg, SOCKS)
    assert _opt(argv, "-numa") == [
        "node,nodeid=0,memdev=ram0,cpus=0-1",
        "node,nodeid=1,memdev=ram1,cpus=2-3",
    ]
    regions = ram_regions(cfg)
    assert [(r["gpa"], r["size"]) for r in regions] == [(0, 512 << 20), (512 << 20, 512 << 20)]
    assert regions[1]["path"].endswith("-mem1")


def test_kvm_accel_uses_host_cpu() -> None:
    argv = qemu_argv(_cfg(qemu_accel="kvm"), SOCKS)
    assert _opt(argv, "-accel") == ["kvm"] and _opt(argv, "-cpu") == ["host"]


@pytest.mark.parametrize(("mem", "nodes"), [(8192, 1), (100, 2), (513, 2)])
def test_memory_that_cannot_be_laid_out(mem: int, nodes: int) -> None:
    with pytest.raises(ValueError, match="--mem"):
        ram_regions(_cfg(mem_mib=mem, topology=Topology(nodes, 1, 1, 1)))


def test_the_shell_port_is_a_third_named_virtio_serial_port() -> None:
    from dataclasses import replace

    from guest.wire import SHELL_PORT_NAME

    argv = qemu_argv(_cfg(), replace(SOCKS, shell="/r/shell"))
    assert "virtio-serial-pci,id=vser0,max_ports=3" in argv
    assert "socket,id=shell,path=/r/shell" in argv
    assert f"virtserialport,chardev=shell,bus=vser0.0,nr=2,name={SHELL_PORT_NAME}" in argv
    assert "socket,id=shell,path=/r/shell" not in qemu_argv(_cfg(), SOCKS)
