"""Assemble all ACPI tables into one guest-memory area and point an RSDP at them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schedlab_shared.topology import Topology
from vmm_proc.acpi import sdt
from vmm_proc.acpi.dsdt import VirtioMmioDevice, build_dsdt
from vmm_proc.acpi.fadt import build_fadt
from vmm_proc.acpi.madt import build_madt
from vmm_proc.acpi.numa import build_slit, build_srat
from vmm_proc.arch.x86_64.layout import ACPI_TABLES_ADDR, ACPI_TABLES_SIZE, COM1
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = ("AcpiTables", "build_acpi_tables")

TABLE_ALIGN = 16  # the RSDP must be 16-byte aligned for Linux's legacy scan


@dataclass(frozen=True)
class AcpiTables:
    """Built tables: ``blobs`` are ``(gpa, bytes)`` pairs, all inside ``[area_gpa, area_end)``.

    :ivar rsdp_gpa: goes into boot_params.acpi_rsdp_addr.
    :ivar tables: signature -> gpa of each table (for logs and tests).
    """

    rsdp_gpa: int
    area_gpa: int
    area_end: int
    blobs: tuple[tuple[int, bytes], ...]
    tables: dict[str, int]

    def write(self, mem: GuestMemoryAccess) -> int:
        """Copy every blob into guest memory; return the RSDP address."""
        for gpa, data in self.blobs:
            mem.write(gpa, data)
        return self.rsdp_gpa


def _align(value: int) -> int:
    return (value + TABLE_ALIGN - 1) // TABLE_ALIGN * TABLE_ALIGN


def build_acpi_tables(
    topology: Topology,
    memory_regions: Sequence[tuple[int, int]],
    virtio_devices: Sequence[VirtioMmioDevice | tuple[int, int, int]],
    place_at_gpa: int = ACPI_TABLES_ADDR,
    *,
    area_size: int = ACPI_TABLES_SIZE,
    serial_ports: Sequence[tuple[int, int]] = (COM1,),
    numa_distances: Sequence[Sequence[int]] | None = None,
) -> AcpiTables:
    """Build RSDP, XSDT, FADT, DSDT, MADT (and SRAT + SLIT when ``topology.nodes > 1``).

    :param memory_regions: guest RAM as ``(gpa, size)``, e.g. ``layout.ram_regions(mem)``;
        used to give each node its share in the SRAT.
    :param virtio_devices: ``(base, size, gsi)`` per virtio-mmio transport.
    :param place_at_gpa: start of the area (16-byte aligned); the RSDP goes first.
    :param serial_ports: ``(port, isa_irq)`` UARTs declared as PNP0501 devices.
    :raises ValueError: tables larger than ``area_size`` or invalid inputs.
    """
    if place_at_gpa % TABLE_ALIGN:
        raise ValueError(f"ACPI area {place_at_gpa:#x} must be {TABLE_ALIGN}-byte aligned")
    devices = [
        d if isinstance(d, VirtioMmioDevice) else VirtioMmioDevice(*d) for d in virtio_devices
    ]
    built: list[tuple[str, bytes]] = [
        ("DSDT", build_dsdt(devices, serial_ports)),
        ("APIC", build_madt(topology)),
    ]
    if topology.nodes > 1:
        built.append(("SRAT", build_srat(topology, memory_regions)))
        built.append(("SLIT", build_slit(topology.nodes, numa_distances)))
    addrs: dict[str, int] = {}
    cursor = _align(place_at_gpa + sdt.RSDP_SIZE)
    blobs: list[tuple[int, bytes]] = []

    def place(sig: str, data: bytes) -> None:
        nonlocal cursor
        addrs[sig] = cursor
        blobs.append((cursor, data))
        cursor = _align(cursor + len(data))

    for sig, data in built:
        place(sig, data)
    place("FACP", build_fadt(addrs["DSDT"]))
    place("XSDT", sdt.xsdt([addrs[s] for s in addrs if s != "DSDT"]))
    rsdp = sdt.rsdp(addrs["XSDT"])
    blobs.insert(0, (place_at_gpa, rsdp))
    if cursor > place_at_gpa + area_size:
        raise ValueError(
            f"ACPI tables need {cursor - place_at_gpa} bytes, the area has {area_size}"
        )
    return AcpiTables(
        rsdp_gpa=place_at_gpa,
        area_gpa=place_at_gpa,
        area_end=place_at_gpa + area_size,
        blobs=tuple(blobs),
        tables={"RSDP": place_at_gpa, **addrs},
    )
