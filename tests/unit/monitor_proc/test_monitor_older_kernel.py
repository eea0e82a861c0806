"""The same code on a 6.12 kernel (the testbed's L1): zero-based per-CPU symbols, kallsyms
with absolute per-CPU entries and a relative base, no sched_ext."""

import pytest

from monitor_proc.helpers.percpu import percpu_symbol
from monitor_proc.image import KernelImage
from monitor_proc.kallsyms import find_kallsyms
from monitor_proc.program import Program
from tests.framework.prereq import require, under_ci


@pytest.fixture(scope="module")
def vmlinux_612(tmp_path_factory):
    from orchestrator.kernel.image import extract_vmlinux
    from orchestrator.testbed.l1kernel import ensure_l1_kernel, testbed_dir

    found = sorted(testbed_dir().glob("l1-6.12*/vmlinuz"))
    if not found and under_ci():
        ensure_l1_kernel()
        found = sorted(testbed_dir().glob("l1-6.12*/vmlinuz"))
    require(bool(found), f"no 6.12 testbed L1 kernel under {testbed_dir()}")
    out = tmp_path_factory.mktemp("k612") / "vmlinux"
    out.write_bytes(extract_vmlinux(found[-1].read_bytes()))
    return out


def test_kallsyms_encoding_is_detected(vmlinux_612):
    img = KernelImage.open(vmlinux_612)
    try:
        ro, text = img.section(".rodata"), img.section(".text")
        tables, syms = find_kallsyms(
            img.data, img.offset_to_vaddr, text.vaddr, (ro.offset, ro.offset + ro.size)
        )
    finally:
        img.close()
    assert tables.encoding == "abs_percpu" and tables.relative_base == text.vaddr
    by_name = {n: a for n, a, _ in syms}
    assert by_name["__per_cpu_start"] == 0 and by_name["_text"] == text.vaddr


def test_zero_based_percpu_symbol_agrees_with_btf(vmlinux_612, tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path))
    prog = Program(vmlinux_612, memory=None)
    off, _ = prog.btf.datasec_var(".data..percpu", "runqueues")
    assert percpu_symbol(prog, "runqueues") == off
    assert not prog.struct("rq").has_member("scx.nr_running")
    assert prog.member("rq", "nr_running").size == 4
    assert prog.member("rq", "cfs.h_nr_queued").size == 4  # new name already


def test_612_has_schedstat_elsewhere_and_no_sched_ext_state(vmlinux_612, tmp_path, monkeypatch):
    """6.12 (CONFIG_SCHED_CLASS_EXT=n): the schedstat fields sit at other offsets of a
    smaller struct rq, and neither scx fields nor event counters are in the plan."""
    from monitor_proc.helpers.ext import _scx_plan
    from monitor_proc.helpers.sched import _plan

    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path))
    prog = Program(vmlinux_612, memory=None)
    fields = {k: off for k, off, _ in _plan(prog).fields}
    rq = prog.struct("rq")
    assert fields["run_delay"] == rq.member("rq_sched_info.run_delay").offset
    assert fields["run_delay"] != 4232 + 8  # 7.2's offset
    assert {"pcount", "sched_count", "ttwu_count", "ttwu_local", "yld_count"} <= set(fields)
    assert not {"scx_nr_running", "scx_flags", "local_dsq_nr", "scx_clock"} & set(fields)
    assert _scx_plan(prog) is None
    assert _plan(prog).sd_off == rq.member("sd").offset
