import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from schedlab_shared.topology import Cpu, Topology
from tests.framework.fake_memory import FakeGuestMemory
from tests.framework.prereq import missing
from vmm_proc.acpi.build import build_acpi_tables
from vmm_proc.acpi.dsdt import VirtioMmioDevice
from vmm_proc.acpi.madt import build_madt
from vmm_proc.acpi.numa import split_memory_by_node
from vmm_proc.arch.x86_64.layout import ACPI_TABLES_ADDR, ram_regions, virtio_mmio_slot

MIB, GIB = 1 << 20, 1 << 30


def _need(tool):
    if shutil.which(tool) is None:
        reason = f"{tool} not installed (Debian package acpica-tools)"
        missing(reason)


def disassemble(tables):
    """iasl -d every table except the RSDP (iasl cannot read one from a file)."""
    _need("iasl")
    names = {gpa: sig for sig, gpa in tables.tables.items()}
    out = {}
    with tempfile.TemporaryDirectory(prefix="schedlab-h3-acpi-") as tmp:
        for gpa, blob in tables.blobs:
            sig = names[gpa]
            if sig == "RSDP":
                continue
            path = Path(tmp, f"{sig.lower()}.dat")
            path.write_bytes(blob)
            res = subprocess.run(
                ["iasl", "-vs", "-d", str(path)], capture_output=True, text=True, timeout=60
            )
            text = path.with_suffix(".dsl").read_text()
            assert res.returncode == 0, res.stdout + res.stderr
            assert "Incorrect checksum" not in text and "Error" not in res.stdout + res.stderr
            out[sig] = text
    return out


def build(topo=None, n_virtio=3, mem=512 * MIB, **kw):
    return build_acpi_tables(
        topo or Topology(1, 1, 2, 1),
        ram_regions(mem),
        [virtio_mmio_slot(i) for i in range(n_virtio)],
        **kw,
    )


def test_every_table_disassembles_cleanly():
    dis = disassemble(build())
    assert set(dis) == {"DSDT", "APIC", "FACP", "XSDT"}
    dsdt = dis["DSDT"]
    assert dsdt.count('Name (_HID, "LNRO0005")') == 3
    for i, (base, _size, gsi) in enumerate(virtio_mmio_slot(i) for i in range(3)):
        assert f"Device (VR{i:02X})" in dsdt
        assert f"0x{base:08X},         // Address Base" in dsdt
        assert f"0x{gsi:08X}," in dsdt
    assert "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive" in dsdt
    assert 'EisaId ("PNP0501")' in dsdt and "0x03F8" in dsdt and "{4}" in dsdt
    assert re.search(r"Name \(_S5, Package \(0x04\)[^{]*\{\s*0x05,", dsdt)
    facp = dis["FACP"]
    assert re.search(r"Hardware Reduced \(V5\) : 1", facp)
    assert re.search(r"Reset Register Supported \(V2\) : 1", facp)
    assert re.search(r"Address : 0000000000000064", facp) and "Value to cause reset : FE" in facp
    assert "Address : 0000000000000600" in facp and "Address : 0000000000000601" in facp
    apic = dis["APIC"]
    assert re.findall(r"Local Apic ID : (\w+)", apic) == ["00", "01"]
    assert "Address : FEC00000" in apic
    assert re.search(r"Source : 00\s*\n.*Interrupt : 00000002", apic)


def test_madt_apic_ids_follow_topology():
    topo = Topology(1, 2, 3, 2)  # sparse APIC IDs: 3 cores use 2 bits
    apic = disassemble(build(topo))["APIC"]
    ids = [int(x, 16) for x in re.findall(r"Local Apic ID : (\w+)", apic)]
    assert ids == [c.apic_id for c in topo.cpus()]
    assert [int(x, 16) for x in re.findall(r"Processor ID : (\w+)", apic)][:-1] == list(range(12))


class _BigApicTopology:
    def cpus(self):
        return [Cpu(0, 0, 0, 0, 0, 0), Cpu(1, 0, 0, 1, 0, 300)]


def test_madt_uses_x2apic_entries_for_large_ids():
    _need("iasl")
    blob = build_madt(_BigApicTopology())
    with tempfile.TemporaryDirectory(prefix="schedlab-h3-acpi-") as tmp:
        path = Path(tmp, "apic.dat")
        path.write_bytes(blob)
        subprocess.run(
            ["iasl", "-vs", "-d", str(path)], capture_output=True, check=True, timeout=60
        )
        text = path.with_suffix(".dsl").read_text()
    assert "Processor Local x2APIC" in text and "Local x2APIC NMI" in text
    assert "Processor x2Apic ID : 0000012C" in text
    assert "Incorrect checksum" not in text


def test_numa_tables_for_two_nodes():
    topo = Topology(2, 1, 2, 1)
    tables = build(topo, mem=4 * GIB)
    dis = disassemble(tables)
    assert {"SRAT", "SLIT"} <= set(dis)
    srat = dis["SRAT"]
    cpu_domains = re.findall(r"Proximity Domain Low\(8\) : (\w+)", srat)
    assert [int(d, 16) for d in cpu_domains] == [0, 0, 1, 1]
    mem = re.findall(
        r"Proximity Domain : (\w+)\s*\n.*\n.*Base Address : (\w+)\s*\n.*Address Length : (\w+)",
        srat,
    )
    assert [(int(d, 16), int(b, 16), int(n, 16)) for d, b, n in mem] == [
        (0, 0, 2 * GIB),
        (1, 2 * GIB, GIB),
        (1, 4 * GIB, GIB),
    ]
    assert "Locality   0 : 0A 14" in dis["SLIT"] and "Locality   1 : 14 0A" in dis["SLIT"]
    assert len(re.findall(r"ACPI Table Address   \d : ", dis["XSDT"])) == 4


def test_split_memory_aligns_and_covers_everything():
    parts = split_memory_by_node([(0, 3 * GIB), (4 * GIB, GIB)], 3)
    assert sum(s for _, s, _ in parts) == 4 * GIB
    assert [n for _, _, n in parts] == sorted(n for _, _, n in parts)
    assert all(b % (8 * MIB) == 0 for b, _, _ in parts)
    with pytest.raises(ValueError):
        split_memory_by_node([(0, 8 * MIB)], 2)


def _read_table(mem, gpa):
    sig, length = struct.unpack("<4sI", mem.read(gpa, 8))
    data = mem.read(gpa, length)
    assert sum(data) % 256 == 0, sig
    return sig, data


def test_linux_style_walk_from_rsdp():
    """RSDP -> XSDT -> every table (checksums), FADT -> DSDT, as Linux's ACPICA walks them."""
    mem = FakeGuestMemory(1 * MIB)
    tables = build(Topology(2, 1, 1, 1), mem=1 * GIB)
    rsdp_gpa = tables.write(mem)
    assert rsdp_gpa == ACPI_TABLES_ADDR and rsdp_gpa % 16 == 0
    rsdp = mem.read(rsdp_gpa, 36)
    assert rsdp[:8] == b"RSD PTR " and sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0
    revision, length, xsdt_gpa = rsdp[15], *struct.unpack_from("<IQ", rsdp, 20)
    assert (revision, length) == (2, 36)
    sig, xsdt = _read_table(mem, xsdt_gpa)
    assert sig == b"XSDT"
    entries = struct.unpack(f"<{(len(xsdt) - 36) // 8}Q", xsdt[36:])
    sigs = {_read_table(mem, gpa)[0]: gpa for gpa in entries}
    assert set(sigs) == {b"FACP", b"APIC", b"SRAT", b"SLIT"}
    _, fadt = _read_table(mem, sigs[b"FACP"])
    assert _read_table(mem, struct.unpack_from("<Q", fadt, 140)[0])[0] == b"DSDT"
    assert all(tables.area_gpa <= gpa < tables.area_end for gpa, _ in tables.blobs)


def test_acpica_interpreter_loads_the_dsdt():
    """acpiexec runs the ACPICA interpreter Linux uses: the namespace and _CRS must parse."""
    _need("acpiexec")
    tables = build(n_virtio=2)
    names = {gpa: sig for sig, gpa in tables.tables.items()}
    with tempfile.TemporaryDirectory(prefix="schedlab-h3-acpi-") as tmp:
        path = Path(tmp, "dsdt.dat")
        path.write_bytes(next(b for gpa, b in tables.blobs if names[gpa] == "DSDT"))
        res = subprocess.run(
            ["acpiexec", "-b", "resources \\_SB.VR01; evaluate \\_S5; namespace", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp,
        )
    out = res.stdout + res.stderr
    assert re.search(
        r"32-Bit Fixed Memory Range Resource\s*\n.*ReadWrite\s*\n\s*Address : D0001000", out
    )
    assert "Dword00 : 00000006" in out and "Triggering : Edge" in out
    assert re.search(r"\[Integer\] = 0+5", out)
    assert out.count('"LNRO0005"') == 2 and "000000000105D041" in out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"place_at_gpa": ACPI_TABLES_ADDR + 4}, "aligned"),
        ({"area_size": 256}, "need"),
    ],
)
def test_build_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_device_validation():
    with pytest.raises(ValueError, match="overlap"):
        build_acpi_tables(
            Topology(), ram_regions(GIB), [(0xD0000000, 0x1000, 5), (0xD0000800, 0x1000, 6)]
        )
    with pytest.raises(ValueError, match="GSI"):
        VirtioMmioDevice(0xD0000000, 0x1000, 24)
    with pytest.raises(ValueError, match="4 GiB"):
        VirtioMmioDevice(0xFFFFF000, 0x2000, 5)
