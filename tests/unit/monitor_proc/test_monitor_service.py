"""The monitor's sample loop against a synthetic guest and a fake VMM."""

from __future__ import annotations

import json
from pathlib import Path

from monitor_proc.service import Monitor
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.exitcodes import ProcExit
from tests.framework.fake_vmm import FakeVmm


def test_one_status_timeout_while_sampling_is_not_fatal(tmp_path: Path, synthetic_guest) -> None:
    ep = {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "mctl", "mpub")}
    vm = FakeVmm("mt", ep["vctl"], ep["vpub"])
    mon = Monitor(
        vm_id="mt",
        vm_ctl=ep["vctl"],
        collector_ctl=ep["cctl"],
        vmlinux="unused",
        run_dir=str(tmp_path),
        ctl=ep["mctl"],
        pub=ep["mpub"],
        interval_s=0.3,
        grace_s=30.0,
        max_samples=6,
    )
    real_request, failed = mon.vmm.request, []

    def flaky_request(msg, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if isinstance(msg, vmm_proto.Status_) and not failed:
            failed.append(msg)  # the first status check gets no reply in time
            raise BusError(Status.TIMEOUT, "Status: no reply (test)")
        return real_request(msg, *a, **kw)

    mon.vmm.request = flaky_request
    try:
        result = mon._sample_loop(synthetic_guest(ncpus=2).program(), 0.0)
    finally:
        mon.close_sockets()
        mon.ctx.term()
        vm.close()
    assert failed and result is ProcExit.DONE and mon.samples == 6
    lines = (tmp_path / "monitor-monitor.jsonl").read_text().splitlines()
    assert [len(json.loads(x)["cpus"]) for x in lines] == [2] * 6


def test_samples_carry_scx_state_and_domains_once(tmp_path: Path) -> None:
    from schedlab_shared.monitor_schema import check_sample
    from tests.unit.monitor_proc.scx_guest import ScxGuest

    ep = {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "mctl", "mpub")}
    vm = FakeVmm("ms", ep["vctl"], ep["vpub"])  # serves no VcpuTimes: the monitor stops asking
    mon = Monitor(
        vm_id="ms",
        vm_ctl=ep["vctl"],
        collector_ctl=ep["cctl"],
        vmlinux="unused",
        run_dir=str(tmp_path),
        ctl=ep["mctl"],
        pub=ep["mpub"],
        interval_s=0.01,
        max_samples=4,
    )
    try:
        g = ScxGuest(ncpus=2)
        assert mon._sample_loop(g.program(), 0.0) is ProcExit.DONE
    finally:
        mon.close_sockets()
        mon.ctx.term()
        vm.close()
    lines = [
        check_sample(json.loads(x))
        for x in (tmp_path / "monitor-monitor.jsonl").read_text().splitlines()
    ]
    assert len(lines) == 4 and not mon._ask_vcpu_times
    assert [("domains" in s) for s in lines] == [True, False, False, False]
    assert lines[0]["domains"][1][1]["name"] == "PKG"
    assert all(
        s["scx"]["ops"] == "qmap" and s["scx"]["events"] == g.expected_events() for s in lines
    )
    assert lines[-1]["cpus"][0]["local_dsq_nr"] == 5 and "vcpus" not in lines[-1]


def test_a_sustained_violation_asks_the_guest_for_one_dump(tmp_path: Path) -> None:
    import struct

    from guest.control import DUMP_REQUEST
    from tests.unit.monitor_proc.scx_guest import ScxGuest

    ep = {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "mctl", "mpub")}
    vm = FakeVmm("md", ep["vctl"], ep["vpub"])
    mon = Monitor(
        vm_id="md",
        vm_ctl=ep["vctl"],
        collector_ctl=ep["cctl"],
        vmlinux="unused",
        run_dir=str(tmp_path),
        ctl=ep["mctl"],
        pub=ep["mpub"],
        interval_s=0.01,
        max_samples=8,
        thresholds={"warmup_s": 0, "sustained_samples": 2, "fail_on_stall": False},
        dump_on_violation=True,
    )
    try:
        g = ScxGuest(ncpus=2)
        g.write_va(g.rq_va[0], struct.pack("<I", 9))  # CPU 0: 9 runnable, CPU 1: 2
        assert mon._sample_loop(g.program(), 0.0) is ProcExit.DONE
    finally:
        mon.close_sockets()
        mon.ctx.term()
        vm.close()
    assert vm.console == [DUMP_REQUEST] and mon.dumps_requested == 1  # once, not per sample
    assert [v["check"] for v in mon.judge.violations] == ["imbalance"]
