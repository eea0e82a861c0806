"""The monitor's BPF view end to end on synthetic memory: the listing in the sample lines
(once at start, then every BPF_EVERY_S), and the monitor.bpf.* control requests over the
real control socket while the sample loop runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import zmq

from monitor_proc.memory import ReaderMemory
from monitor_proc.service import Monitor
from schedlab_shared.bus import monitor as proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.monitor_schema import check_bpf, check_sample
from tests.framework.fake_vmm import FakeVmm
from tests.unit.monitor_proc.bpf_guest import BpfGuest, MapSpec, ProgSpec, bss_value, qmap_bss_btf


def _guest() -> BpfGuest:
    blob, sec, u32, offsets = qmap_bss_btf()
    return BpfGuest(
        progs=[ProgSpec(1, "qmap_enqueue", verified=321), ProgSpec(2, "qmap_dispatch")],
        maps=[
            MapSpec(
                3,
                "scx_qmap.bss",
                "ARRAY",
                value_size=offsets["_size"],
                values={0: bss_value()},
                btf=blob,
                key_type=u32,
                value_type=sec,
            ),
            MapSpec(4, "queue", "RINGBUF", vmalloc=False),
        ],
    )


def _monitor(
    tmp_path: Path, max_samples: int, interval_s: float = 0.01
) -> tuple[Monitor, Any, dict]:
    ep = {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "mctl", "mpub")}
    vm = FakeVmm("mb", ep["vctl"], ep["vpub"])
    mon = Monitor(
        vm_id="mb",
        vm_ctl=ep["vctl"],
        collector_ctl=ep["cctl"],
        vmlinux="unused",
        run_dir=str(tmp_path),
        ctl=ep["mctl"],
        pub=ep["mpub"],
        interval_s=interval_s,
        max_samples=max_samples,
    )
    return mon, vm, ep


def _close(mon: Monitor, vm: Any) -> None:
    mon.close_sockets()
    mon.ctx.term()
    vm.close()


def test_listing_in_the_first_sample_then_every_few_seconds(tmp_path: Path) -> None:
    mon, vm, _ = _monitor(tmp_path, max_samples=5)
    try:
        assert mon._sample_loop(_guest().writable_program(), 0.0).name == "DONE"
    finally:
        _close(mon, vm)
    lines = [
        check_sample(json.loads(x))
        for x in (tmp_path / "monitor-monitor.jsonl").read_text().splitlines()
    ]
    assert [("bpf" in s) for s in lines] == [True, False, False, False, False]
    bpf = check_bpf(lines[0]["bpf"])
    assert [p["name"] for p in bpf["progs"]] == ["qmap_enqueue", "qmap_dispatch"]
    assert bpf["progs"][0]["verified_insns"] == 321 and bpf["stats_enabled"] is True
    assert bpf["maps"][0]["values"]["nr_dispatched"] == 1200
    assert bpf["maps"][1] == {
        "id": 4,
        "name": "queue",
        "type": "RINGBUF",
        "key_size": 4,
        "value_size": 8,
        "max_entries": 1,
        "flags": 0x400,
        "btf": False,
    }


def test_a_corrupt_idr_is_an_error_in_the_listing_not_a_lost_sample(tmp_path: Path) -> None:
    from tests.unit.monitor_proc.bpf_guest import MAP_IDR

    g = _guest()
    g.write_u64(MAP_IDR + 8, 0x7F00_0000_1002)  # a node pointer into user space
    mon, vm, _ = _monitor(tmp_path, max_samples=2)
    try:
        mon._sample_loop(g.writable_program(), 0.0)
    finally:
        _close(mon, vm)
    first = json.loads((tmp_path / "monitor-monitor.jsonl").read_text().splitlines()[0])
    assert "not a kernel address" in first["bpf"]["error"] and mon.errors == 0


def test_control_requests_while_sampling(tmp_path: Path) -> None:
    g = _guest()
    prog = g.writable_program()
    mon, vm, ep = _monitor(tmp_path, max_samples=10_000, interval_s=0.02)
    mon._wmem = ReaderMemory(g.mem.read, write=g.mem.write)  # what run() would map writable
    ctx = zmq.Context()
    client = BusClient(ctx, ep["mctl"], timeout_s=5.0)
    replies: dict[str, Any] = {}
    try:
        with pytest.raises(BusError) as early:  # before sampling: not allowed
            mon._on_bpf_list(proto.BpfList("maps"))
        assert early.value.status == Status.NOT_ALLOWED
        mon.state, mon._prog = proto.MonitorState.SAMPLING, prog

        def ask() -> None:
            try:
                replies["progs"] = client.request(proto.BpfList("progs"))
                replies["read"] = client.request(proto.BpfRead("scx_qmap.bss", "0"))
                replies["write"] = client.request(
                    proto.BpfWrite("scx_qmap.bss", "0", "nr_dispatched=7")
                )
                replies["again"] = client.request(proto.BpfRead("3"))
                for bad in (
                    proto.BpfRead("nope"),
                    proto.BpfRead("scx_qmap.bss", "x"),
                    proto.BpfRead("queue"),
                    proto.BpfWrite("scx_qmap.bss", "0", "nope=1"),
                    proto.BpfList("links"),
                ):
                    try:
                        client.request(bad)
                    except BusError as exc:
                        replies.setdefault("errors", []).append((exc.status, exc.reason))
            finally:
                mon.max_samples = 1  # ends the loop at its next sample

        t = threading.Thread(target=ask)
        t.start()
        mon._sample_loop(prog, 0.0)
        t.join(10)
    finally:
        client.close()
        ctx.term()
        _close(mon, vm)
    assert [p["name"] for p in replies["progs"].items] == ["qmap_enqueue", "qmap_dispatch"]
    assert replies["read"].entries[0]["value"]["nr_dispatched"] == 1200
    w = replies["write"]
    assert (w.field, w.previous, w.value) == ("nr_dispatched", 1200, 7)
    assert replies["again"].entries[0]["value"]["nr_dispatched"] == 7
    statuses = [s for s, _ in replies["errors"]]
    assert statuses == [
        Status.NOT_FOUND,
        Status.BAD_MESSAGE,
        Status.BAD_MESSAGE,
        Status.BAD_MESSAGE,
        Status.BAD_MESSAGE,
    ]
    reasons = " | ".join(r for _, r in replies["errors"])
    assert "no BPF map 'nope'" in reasons and "RINGBUF map" in reasons
    assert "no variable 'nope'" in reasons and "not one of progs, maps" in reasons


@pytest.mark.parametrize(
    ("listing", "match"),
    [
        ({"progs": [{"name": "x"}]}, "missing 'id'"),
        ({"maps": [{"id": 1, "key_size": "4"}]}, "key_size: str"),
        ({"progs": [], "extra": 1}, "unknown field 'extra'"),
        ({"maps": [{"id": 1}] * 1025}, "at most 1024"),
        ({"stats_enabled": 1}, "stats_enabled: int"),
    ],
)
def test_bad_listings_are_refused_on_read(listing: dict, match: str) -> None:
    from schedlab_shared.monitor_schema import SchemaError

    with pytest.raises(SchemaError, match=match):
        check_bpf(listing)
    with pytest.raises(SchemaError):
        check_sample({"elapsed_ms": 1.0, "cpus": [], "bpf": listing})
