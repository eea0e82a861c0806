"""snapshot_codec: round trip of the engine's state types, and refusal of damaged input."""

import dataclasses

import msgpack
import pytest

from vmm_proc.devices.i8042 import I8042State
from vmm_proc.devices.serial import SerialState
from vmm_proc.devices.virtio.mmio import MmioState
from vmm_proc.devices.virtio.queue import QueueState
from vmm_proc.engines.kvm import snapshot_codec as codec
from vmm_proc.engines.kvm.devices_state import DevicesState
from vmm_proc.engines.kvm.snapshot_codec import SnapshotError
from vmm_proc.engines.kvm.snapshot_state import MachineSnapshot, SnapshotMeta
from vmm_proc.kvm.persist import VcpuSaved, VmSaved
from vmm_proc.kvm.state_types import ClockData, DebugRegs, IoapicState, PicState, PitState, Xcr
from vmm_proc.kvm.types import CpuidEntry, Regs, Sregs


def _snapshot():
    vcpu = VcpuSaved(
        3, [CpuidEntry(1, ebx=3 << 24)], 0, Regs(rax=7, rip=0x1000), Sregs(cr0=0x11),
        bytes(4096), [Xcr(0, 7)], DebugRegs(dr7=0x400), b"\x01" * 1024,
        {0x10: 123456789, 0x6E0: 0}, bytes(64), 2_400_000,
    )  # fmt: skip
    vm = VmSaved(PicState(imr=0xFB), PicState(), IoapicState(id=2), PitState(), ClockData(5, 2))
    devices = DevicesState(
        uarts={"console": SerialState(scr=9, rx_fifo=b"ab")},
        i8042=I8042State(pending_cmd=0x60, out=[0xFA]),
        console_transport=MmioState(status=15, queues=[QueueState(256, signalled_used=None)]),
    )
    meta = SnapshotMeta({"kernel": "k"}, 16 << 20, [3], 1.5, {"ready": "x"})
    return MachineSnapshot(meta, vm, [vcpu], devices)


def test_round_trip_rebuilds_equal_dataclasses():
    snap = _snapshot()
    back = codec.decode(MachineSnapshot, codec.encode(snap))
    assert back == snap
    assert back.vcpus[0].msrs == {0x10: 123456789, 0x6E0: 0}
    assert isinstance(back.vcpus[0].sregs.interrupt_bitmap, tuple)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b[:10], "truncated"),
        (lambda b: b"X" + b[1:], "bad magic"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum mismatch"),
    ],
)
def test_damaged_files_are_refused(mangle, message):
    with pytest.raises(SnapshotError, match=message):
        codec.decode(MachineSnapshot, mangle(codec.encode(_snapshot())))


def test_a_field_of_the_wrong_type_is_named():
    plain = codec.to_plain(_snapshot())
    plain["vcpus"][0]["regs"]["rax"] = "seven"
    with pytest.raises(SnapshotError, match=r"state.vcpus\[0\].regs.rax: expected an integer"):
        codec.from_plain(MachineSnapshot, plain)
    plain = codec.to_plain(_snapshot())
    del plain["vm"]["clock"]
    with pytest.raises(SnapshotError, match="state.vm.clock: missing"):
        codec.from_plain(MachineSnapshot, plain)
    plain = codec.to_plain(_snapshot())
    plain["meta"]["surprise"] = 1
    with pytest.raises(SnapshotError, match="unknown fields"):
        codec.from_plain(MachineSnapshot, plain)


def test_another_format_version_is_refused():
    blob = codec.encode(_snapshot())
    head = codec._HEADER.unpack_from(blob)
    other = codec._HEADER.pack(head[0], codec.FORMAT_VERSION + 1, head[2])
    with pytest.raises(SnapshotError, match="format 2"):
        codec.decode(MachineSnapshot, other + blob[codec._HEADER.size :])


def test_payload_is_plain_msgpack():
    blob = codec.encode(_snapshot())
    data = msgpack.unpackb(blob[codec._HEADER.size :], strict_map_key=False)
    assert data["meta"]["key"] == {"kernel": "k"}
    assert dataclasses.is_dataclass(codec.from_plain(SnapshotMeta, data["meta"]))
