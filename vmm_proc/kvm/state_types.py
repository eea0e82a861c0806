"""Plain-Python mirrors of the KVM state structures a snapshot carries (no cffi).

Field names follow arch/x86/include/uapi/asm/kvm.h and include/uapi/linux/kvm.h. Blobs the
VMM never interprets (the XSAVE area, the LAPIC page, ``struct kvm_vcpu_events``) stay
``bytes`` of their exact kernel size; ``vmm_proc.kvm.persist`` checks the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = (
    "ClockData",
    "DebugRegs",
    "IoapicState",
    "PicState",
    "PitChannel",
    "PitState",
    "Xcr",
    "IOAPIC_NUM_PINS",
    "PIC_FIELDS",
    "PIT_CHANNEL_FIELDS",
)

IOAPIC_NUM_PINS = 24  # KVM_IOAPIC_NUM_PINS

PIC_FIELDS = (
    "last_irr", "irr", "imr", "isr", "priority_add", "irq_base", "read_reg_select", "poll",
    "special_mask", "init_state", "auto_eoi", "rotate_on_auto_eoi",
    "special_fully_nested_mode", "init4", "elcr", "elcr_mask",
)  # fmt: skip

PIT_CHANNEL_FIELDS = (
    "count", "latched_count", "count_latched", "status_latched", "status", "read_state",
    "write_state", "write_latch", "rw_mode", "mode", "bcd", "gate", "count_load_time",
)  # fmt: skip


@dataclass
class Xcr:
    """struct kvm_xcr: extended control register ``xcr`` (0 is XCR0)."""

    xcr: int
    value: int


@dataclass
class DebugRegs:
    """struct kvm_debugregs (DR0-3, DR6, DR7)."""

    db: tuple[int, int, int, int] = (0, 0, 0, 0)
    dr6: int = 0
    dr7: int = 0
    flags: int = 0


@dataclass
class PicState:
    """struct kvm_pic_state: one 8259 of the in-kernel pair (16 byte registers)."""

    last_irr: int = 0
    irr: int = 0
    imr: int = 0
    isr: int = 0
    priority_add: int = 0
    irq_base: int = 0
    read_reg_select: int = 0
    poll: int = 0
    special_mask: int = 0
    init_state: int = 0
    auto_eoi: int = 0
    rotate_on_auto_eoi: int = 0
    special_fully_nested_mode: int = 0
    init4: int = 0
    elcr: int = 0
    elcr_mask: int = 0


@dataclass
class IoapicState:
    """struct kvm_ioapic_state; ``redirtbl`` holds the 24 redirection entries as u64."""

    base_address: int = 0
    ioregsel: int = 0
    id: int = 0
    irr: int = 0
    redirtbl: list[int] = field(default_factory=lambda: [0] * IOAPIC_NUM_PINS)


@dataclass
class PitChannel:
    """struct kvm_pit_channel_state."""

    count: int = 0
    latched_count: int = 0
    count_latched: int = 0
    status_latched: int = 0
    status: int = 0
    read_state: int = 0
    write_state: int = 0
    write_latch: int = 0
    rw_mode: int = 0
    mode: int = 0
    bcd: int = 0
    gate: int = 0
    count_load_time: int = 0


@dataclass
class PitState:
    """struct kvm_pit_state2: three channels and the HPET-legacy/speaker flags."""

    channels: list[PitChannel] = field(default_factory=lambda: [PitChannel() for _ in range(3)])
    flags: int = 0


@dataclass
class ClockData:
    """struct kvm_clock_data: the VM's kvmclock in ns (``flags``: KVM_CLOCK_* of GET)."""

    clock: int = 0
    flags: int = 0
