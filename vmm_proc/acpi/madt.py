"""MADT: local APICs from the topology, one IOAPIC, ISA overrides (ACPI 6.5 section 5.2.12)."""

from __future__ import annotations

import struct

from schedlab_shared.topology import Topology
from vmm_proc.acpi.sdt import table
from vmm_proc.arch.x86_64.layout import IOAPIC_ADDR, LAPIC_ADDR

__all__ = ("IOAPIC_ID", "build_madt")

MADT_REVISION = 5
PCAT_COMPAT = 1  # KVM's in-kernel irqchip has the 8259 pair
IOAPIC_ID = 0  # KVM's IOAPIC resets with ID 0
LAPIC_ENABLED = 1
# Interrupt source override: ISA IRQ 0 (PIT) arrives on IOAPIC pin 2, as KVM routes it.
ISA_OVERRIDES = ((0, 2, 0),)  # (source IRQ, GSI, MPS INTI flags: conforming)
_LAPIC, _IOAPIC, _ISO, _LAPIC_NMI, _X2APIC, _X2APIC_NMI = 0, 1, 2, 4, 9, 0xA
_XAPIC_MAX_ID = 0xFE  # 0xff is the xAPIC broadcast ID


def build_madt(topology: Topology) -> bytes:
    """The MADT for ``topology`` (processor UID = Linux CPU index, in topology order)."""
    body = bytearray(struct.pack("<II", LAPIC_ADDR, PCAT_COMPAT))
    x2apic = False
    for cpu in topology.cpus():
        if cpu.apic_id <= _XAPIC_MAX_ID:
            body += struct.pack("<BBBBI", _LAPIC, 8, cpu.index, cpu.apic_id, LAPIC_ENABLED)
        else:
            x2apic = True
            body += struct.pack("<BBHIII", _X2APIC, 16, 0, cpu.apic_id, LAPIC_ENABLED, cpu.index)
    body += struct.pack("<BBBBII", _IOAPIC, 12, IOAPIC_ID, 0, IOAPIC_ADDR, 0)
    for irq, gsi, flags in ISA_OVERRIDES:
        body += struct.pack("<BBBBIH", _ISO, 10, 0, irq, gsi, flags)
    body += struct.pack("<BBBHB", _LAPIC_NMI, 6, 0xFF, 0, 1)  # LINT1 is NMI on all CPUs
    if x2apic:
        body += struct.pack("<BBHIB3s", _X2APIC_NMI, 12, 0, 0xFFFFFFFF, 1, bytes(3))
    return table(b"APIC", MADT_REVISION, bytes(body))
