"""Copies between cffi structs and the snapshot types of vmm_proc.kvm.state_types."""

from __future__ import annotations

from typing import Any

from vmm_proc.kvm._ffi import ffi
from vmm_proc.kvm.state_types import (
    IOAPIC_NUM_PINS,
    PIC_FIELDS,
    PIT_CHANNEL_FIELDS,
    DebugRegs,
    IoapicState,
    PicState,
    PitChannel,
    PitState,
    Xcr,
)

MAX_XCRS = 16  # KVM_MAX_XCRS


def xcrs_from_c(c: Any) -> list[Xcr]:
    """``struct kvm_xcrs`` -> Xcr list (bounded by KVM_MAX_XCRS)."""
    n = min(int(c.nr_xcrs), MAX_XCRS)
    return [Xcr(int(c.xcrs[i].xcr), int(c.xcrs[i].value)) for i in range(n)]


def xcrs_to_c(xcrs: list[Xcr]) -> Any:
    """Xcr list -> new ``struct kvm_xcrs *``."""
    if len(xcrs) > MAX_XCRS:
        raise ValueError(f"{len(xcrs)} XCRs (KVM takes at most {MAX_XCRS})")
    c = ffi.new("struct kvm_xcrs *", {"nr_xcrs": len(xcrs)})
    for i, x in enumerate(xcrs):
        c.xcrs[i].xcr, c.xcrs[i].value = x.xcr, x.value
    return c


def debugregs_from_c(c: Any) -> DebugRegs:
    """``struct kvm_debugregs`` -> DebugRegs."""
    db = (int(c.db[0]), int(c.db[1]), int(c.db[2]), int(c.db[3]))
    return DebugRegs(db, int(c.dr6), int(c.dr7), int(c.flags))


def debugregs_to_c(d: DebugRegs) -> Any:
    """DebugRegs -> new ``struct kvm_debugregs *``."""
    return ffi.new(
        "struct kvm_debugregs *", {"db": list(d.db), "dr6": d.dr6, "dr7": d.dr7, "flags": d.flags}
    )


def pic_from_c(c: Any) -> PicState:
    """``struct kvm_pic_state`` -> PicState."""
    return PicState(*(int(getattr(c, n)) for n in PIC_FIELDS))


def pic_to_c(p: PicState, dst: Any) -> None:
    """Fill ``dst`` (a ``struct kvm_pic_state``) from ``p``."""
    for n in PIC_FIELDS:
        setattr(dst, n, getattr(p, n))


def ioapic_from_c(c: Any) -> IoapicState:
    """``struct kvm_ioapic_state`` -> IoapicState."""
    table = [int(c.redirtbl[i]) for i in range(IOAPIC_NUM_PINS)]
    return IoapicState(int(c.base_address), int(c.ioregsel), int(c.id), int(c.irr), table)


def ioapic_to_c(s: IoapicState, dst: Any) -> None:
    """Fill ``dst`` (a ``struct kvm_ioapic_state``) from ``s``."""
    if len(s.redirtbl) != IOAPIC_NUM_PINS:
        raise ValueError(f"IOAPIC has {IOAPIC_NUM_PINS} pins, state has {len(s.redirtbl)}")
    dst.base_address, dst.ioregsel, dst.id, dst.irr = s.base_address, s.ioregsel, s.id, s.irr
    for i, entry in enumerate(s.redirtbl):
        dst.redirtbl[i] = entry


def pit_from_c(c: Any) -> PitState:
    """``struct kvm_pit_state2`` -> PitState."""
    channels = [
        PitChannel(*(int(getattr(c.channels[i], n)) for n in PIT_CHANNEL_FIELDS)) for i in range(3)
    ]
    return PitState(channels, int(c.flags))


def pit_to_c(s: PitState) -> Any:
    """PitState -> new ``struct kvm_pit_state2 *``."""
    if len(s.channels) != 3:
        raise ValueError(f"the PIT has 3 channels, state has {len(s.channels)}")
    c = ffi.new("struct kvm_pit_state2 *", {"flags": s.flags})
    for i, ch in enumerate(s.channels):
        for n in PIT_CHANNEL_FIELDS:
            setattr(c.channels[i], n, getattr(ch, n))
    return c
