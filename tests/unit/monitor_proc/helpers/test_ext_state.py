"""The attached scheduler's state in each kernel layout, against synthetic memory from BTF."""

import struct

import pytest

from monitor_proc.helpers.ext import scx_dsqs, scx_events, scx_root, scx_sched_sample
from monitor_proc.helpers.rhashtable import rhashtable_entries
from monitor_proc.helpers.sched import cpu_samples
from monitor_proc.program import BadDataError
from schedlab_shared.monitor_schema import check_sample
from tests.unit.monitor_proc.scx_guest import EVENTS, ScxGuest


@pytest.mark.parametrize("layout", ["7.2", "6.16", "6.15"])
def test_events_are_summed_over_cpus_in_every_layout(layout):
    g = ScxGuest(layout=layout, ncpus=3)
    s = scx_sched_sample(g.program())
    assert s["events"] == g.expected_events()
    assert list(s["events"]) == list(EVENTS)  # BTF order, every counter by name
    assert s["ops"] == "qmap" and s["watchdog_timeout"] == 1250


def test_72_reads_every_scheduler_field():
    g = ScxGuest(layout="7.2")
    s = scx_sched_sample(g.program())
    assert (s["exit_kind"], s["aborting"], s["bypass_depth"]) == (0, True, 2)
    assert sorted((q["id"], q["nr"]) for q in s["dsqs"]) == [(7, 0), (0x8000_0000_0000_0001, 3)]
    check_sample({"elapsed_ms": 1.0, "cpus": [], "scx": s})


def test_older_layouts_lack_fields_instead_of_guessing():
    s16 = scx_sched_sample(ScxGuest(layout="6.16").program())
    assert s16["exit_kind"] == 1025 and "aborting" not in s16 and "bypass_depth" not in s16
    s15 = scx_sched_sample(ScxGuest(layout="6.15").program())
    assert set(s15) == {"ops", "watchdog_timeout", "events", "dsqs"}
    assert len(s15["dsqs"]) == 2  # the global dsq_hash


def test_detached_scheduler_has_no_state():
    g = ScxGuest(layout="7.2")
    g.write_u64(g.syms["scx_root"], 0)
    prog = g.program()
    assert scx_root(prog) == 0 and scx_sched_sample(prog) is None
    g15 = ScxGuest(layout="6.15")
    g15.write_va(g15.syms["scx_enable_state_var"], struct.pack("<i", 3))  # SCX_DISABLED
    assert scx_sched_sample(g15.program()) is None


def test_kernel_without_sched_ext(synthetic_guest):
    from monitor_proc.symbols import SymbolTable

    g = synthetic_guest(scx=False)
    prog = g.program(symbols=SymbolTable(((n, a, "D") for n, a in g.syms.items()), "no-scx"))
    assert scx_sched_sample(prog) is None and scx_events(prog) == {}


def test_per_cpu_scx_and_schedstat_fields():
    g = ScxGuest(layout="7.2", ncpus=2)
    cpus = cpu_samples(g.program())
    c1 = cpus[1]
    assert (
        c1["cpu"],
        c1["scx_nr_running"],
        c1["scx_flags"],
        c1["local_dsq_nr"],
        c1["scx_clock"],
    ) == (1, 2, 0x21, 6, 7001)
    assert (
        c1["pcount"],
        c1["run_delay"],
        c1["yld_count"],
        c1["sched_count"],
        c1["ttwu_count"],
    ) == (41, 901, 1, 61, 70)
    assert "sched_goidle" not in c1 and "ttwu_local" not in c1  # not in this BTF
    check_sample({"elapsed_ms": 0.0, "cpus": cpus})


def test_schedstat_absent_without_schedstats():
    c = cpu_samples(ScxGuest(schedstat=False).program())[0]
    assert "local_dsq_nr" in c and not {"run_delay", "pcount", "sched_count"} & set(c)


def test_many_dsqs_share_buckets():
    dsqs = tuple((i, i % 5) for i in range(40))
    g = ScxGuest(dsqs=dsqs, buckets=8)
    got = scx_dsqs(g.program(), g.sch)
    assert sorted((q["id"], q["nr"]) for q in got) == sorted(dsqs)


def test_corrupt_tables_are_refused_not_followed():
    g = ScxGuest(buckets=4)
    prog = g.program()
    tbl = g.pob + 0x2680000
    g.write_va(tbl, struct.pack("<I", 3))  # not a power of two
    with pytest.raises(BadDataError, match="3 buckets"):
        rhashtable_entries(prog, g.sch + 136, 56)
    g.write_va(tbl, struct.pack("<II", 4, 1))  # nested table
    with pytest.raises(BadDataError, match="nested"):
        rhashtable_entries(prog, g.sch + 136, 56)
    g.write_va(tbl, struct.pack("<II", 4, 0))
    dsq0 = g.pob + 0x2700000
    g.write_u64(dsq0 + 56, dsq0 + 56)  # a chain that loops on itself
    with pytest.raises(BadDataError, match="longer than"):
        rhashtable_entries(prog, g.sch + 136, 56)
    s = scx_sched_sample(prog)  # the sample survives, noted
    assert "dsqs" not in s and "longer than" in s["dsqs_error"]
    g.write_u64(dsq0 + 56, 0x1234)  # a user-space pointer
    with pytest.raises(BadDataError, match="not a kernel address"):
        rhashtable_entries(prog, g.sch + 136, 56)


def test_sched_domain_chain():
    from monitor_proc.helpers.sched import sched_domains

    g = ScxGuest(ncpus=4)
    prog = g.program()
    assert sched_domains(prog, 3) == [
        {"level": 0, "flags": 0x2F, "span_weight": 2, "name": "MC"},
        {"level": 1, "flags": 0x102F, "span_weight": 4, "name": "PKG"},
    ]
    g.write_u64(g.pob + 0x2690000 + 0x40, g.pob + 0x2690000)  # PKG's parent: back to MC
    with pytest.raises(BadDataError, match="longer than"):
        sched_domains(prog, 0)
    g.write_u64(g.rq_va[1] + g.sd_off, 0)  # no domains (yet)
    assert sched_domains(prog, 1) == []
