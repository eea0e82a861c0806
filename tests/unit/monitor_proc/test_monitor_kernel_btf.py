"""The sample plans against the real 7.2 kernel's BTF: every sched_ext layout decision."""

import pytest

from monitor_proc.helpers.ext import _scx_plan, scx_watchdog_target
from monitor_proc.helpers.sched import _plan
from monitor_proc.program import Program
from schedlab_shared.monitor_schema import CPU_FIELDS
from tests.framework.prereq import missing


@pytest.fixture(scope="module")
def prog_72(real_vmlinux):
    prog = Program(real_vmlinux, memory=None)
    if not prog.btf.ids("scx_sched"):
        missing(f"{real_vmlinux} has no sched_ext")
    return prog


def test_rq_plan_has_every_scx_and_schedstat_field(prog_72):
    fields = {k: off for k, off, _ in _plan(prog_72).fields}
    scx = prog_72.member("rq", "scx").offset
    assert fields["local_dsq_nr"] == scx + prog_72.member_offset("scx_dispatch_q", "nr")
    assert fields["scx_flags"] == scx + prog_72.member_offset("scx_rq", "flags")
    assert {
        "run_delay",
        "pcount",
        "yld_count",
        "sched_count",
        "sched_goidle",
        "ttwu_count",
        "ttwu_local",
        "scx_clock",
    } <= set(fields)
    assert set(fields) <= set(CPU_FIELDS)


def test_scx_plan_uses_the_pcpu_layout(prog_72):
    plan = _scx_plan(prog_72)
    assert plan.ev_layout == "pcpu" and len(plan.events) == 13
    assert plan.events[0] == ("SCX_EV_SELECT_CPU_FALLBACK", 0)
    assert {k for k, _, _ in plan.fields} == {
        "exit_kind",
        "aborting",
        "bypass_depth",
        "watchdog_timeout",
    }
    assert plan.watchdog_sym is None and plan.dsq_hash_off is not None
    assert scx_watchdog_target(prog_72, 0xFFFF_8880_0000_0000)[1] == "scx_sched.watchdog_timeout"
