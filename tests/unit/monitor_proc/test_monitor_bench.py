"""``schedlab bench monitor``'s measurement: the real sample loop over memory laid out from
the real kernel's BTF (figures are printed by the bench, not asserted)."""

import pytest

from monitor_proc.bench import build_guest, measure
from monitor_proc.helpers.ext import scx_sched_sample
from monitor_proc.helpers.sched import cpu_samples
from tests.framework.prereq import require


@pytest.fixture(scope="module")
def vmlinux(real_vmlinux):
    from monitor_proc.btf import Btf

    require(Btf.load(real_vmlinux).ids("scx_sched"), f"{real_vmlinux} has no sched_ext")
    return str(real_vmlinux)


def test_synthetic_guest_reads_back_through_the_real_layout(vmlinux):
    prog = build_guest(vmlinux, 3)
    cpus = cpu_samples(prog)
    assert [c["cpu"] for c in cpus] == [0, 1, 2]
    assert all(
        c["scx_nr_running"] == 2 and c["local_dsq_nr"] == 1 and c["curr_comm"] == "spinner"
        for c in cpus
    )
    scx = scx_sched_sample(prog)
    assert scx["ops"] == "qmap" and scx["watchdog_timeout"] == 1250 and len(scx["events"]) == 13
    assert sorted((q["id"], q["nr"]) for q in scx["dsqs"]) == [(0, 3), (1, 3)]
    prog.memory.close()


def test_measure_runs_the_loop_at_the_rate(vmlinux):
    fig = measure(vmlinux, ncpus=2, rate_hz=50, seconds=0.6)
    assert fig["errors"] == 0 and fig["samples"] == 30
    # asked every 50 ms without waiting, the stand-in VMM's replies reach the samples
    assert 6 <= fig["vcpu_readings"] <= 15, fig
    assert 0 < fig["sample_ms_p50"] <= fig["sample_ms_p99"]
    assert {"local_dsq_nr", "scx_flags", "run_delay"} <= set(fig["sample_fields"])
