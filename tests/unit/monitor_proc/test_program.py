import struct

import pytest

from monitor_proc.helpers.sched import rq_sample
from monitor_proc.memory import FaultError, ReaderMemory
from monitor_proc.program import BadDataError, Program
from monitor_proc.symbols import SymbolNotFound
from monitor_proc.translate import TranslationError


def test_reads_and_symbols(synthetic_guest):
    g = synthetic_guest(levels=5, phys_base=0x200000)
    prog = g.program()
    assert prog.read(prog.symbol("linux_banner"), 13) == b"Linux version"
    assert prog.read_u64(prog.symbol("phys_base")) == 0x200000
    assert prog.read(0xFFFF_C900_0000_3000, 12) == b"vmalloc page"
    assert prog.member_offset("rq", "clock") == 24
    assert prog.member_offset("rq", "cfs.h_nr_queued") == 36
    with pytest.raises(SymbolNotFound):
        prog.symbol("nope")


def test_cpus(synthetic_guest):
    prog = synthetic_guest(ncpus=3).program()
    assert prog.nr_cpu_ids == 3
    assert prog.possible_cpus() == [0, 1, 2]
    assert prog.online_cpus() == [0]


def test_read_crossing_into_unmapped_page_faults(synthetic_guest):
    prog = synthetic_guest().program()
    with pytest.raises(FaultError):
        prog.read(0xFFFF_C900_0000_3FF0, 0x20)
    with pytest.raises(BadDataError):
        prog.read(prog.symbol("_text"), 1 << 30)


def test_absurd_nr_cpu_ids(synthetic_guest):
    g = synthetic_guest()
    g.write_va(g.syms["nr_cpu_ids"], struct.pack("<I", 0))
    with pytest.raises(BadDataError):
        _ = g.program().nr_cpu_ids


def test_translation_retries_until_the_kernel_is_there(synthetic_guest):
    g = synthetic_guest()
    banner_pa = g.pa(g.syms["linux_banner"])
    saved = g.mem.read(banner_pa, 8)
    g.mem.write(banner_pa, b"\0" * 8)  # "not booted yet"
    prog = g.program()
    with pytest.raises(TranslationError):
        prog.read_u32(prog.symbol("nr_cpu_ids"))
    g.mem.write(banner_pa, saved)
    assert prog.nr_cpu_ids == 2


def test_constructor_needs_parts_without_vmlinux():
    with pytest.raises(ValueError):
        Program(None, object())


def test_real_kernel_program_loads(real_vmlinux):
    prog = Program(real_vmlinux, memory=None)
    assert prog.member_offset("rq", "nr_running") == 0
    assert prog.symbol("_text") == 0xFFFFFFFF81000000
    assert prog._probe[1].startswith(b"Linux version")


def test_layout_is_rediscovered_after_a_fault(synthetic_guest):
    """Early boot runs on the static 4-level init_top_pgt with the L4 page_offset_base, then
    switches to 5-level paging (seen live with a 6.12 kernel under TCG -cpu max)."""
    early, late = synthetic_guest(levels=4), synthetic_guest(levels=5)
    now = [early]
    prog = Program(
        None,
        ReaderMemory(lambda pa, n: now[0].mem.read(pa, n)),
        symbols=early.program().symbols,
        btf=early.program().btf,
        probe=early.program()._probe,
    )
    assert rq_sample(prog, 1)["curr_pid"] == 101
    assert prog.translator.layout.levels == 4
    now[0] = late
    with pytest.raises(FaultError):
        rq_sample(prog, 1)  # per-CPU pointers now in the 5-level direct map
    assert rq_sample(prog, 1)["curr_pid"] == 101
    assert prog.translator.layout.levels == 5
