import pytest

from monitor_proc.helpers.percpu import per_cpu_offset, per_cpu_ptr, percpu_symbol
from monitor_proc.program import BadDataError
from monitor_proc.symbols import SymbolTable


def test_per_cpu_ptr_points_at_each_cpus_copy(synthetic_guest):
    g = synthetic_guest(ncpus=3)
    prog = g.program()
    rq = percpu_symbol(prog, "runqueues")
    assert rq == g.syms["runqueues"]
    for cpu in range(3):
        assert per_cpu_ptr(prog, rq, cpu) == g.rq_va[cpu]
    with pytest.raises(IndexError):
        per_cpu_offset(prog, 3)
    with pytest.raises(IndexError):
        per_cpu_ptr(prog, rq, -1)


def test_symbol_missing_falls_back_to_btf_datasec(synthetic_guest):
    g = synthetic_guest()
    syms = {n: a for n, a in g.syms.items() if n != "runqueues"}
    prog = g.program(symbols=SymbolTable(((n, a, "D") for n, a in syms.items()), "partial"))
    assert percpu_symbol(prog, "runqueues") == g.syms["__per_cpu_start"] + 0x800


def test_symbol_and_btf_disagreeing_is_an_error(synthetic_guest):
    g = synthetic_guest()
    syms = dict(g.syms, runqueues=g.syms["runqueues"] + 0x40)
    prog = g.program(symbols=SymbolTable(((n, a, "D") for n, a in syms.items()), "bad"))
    with pytest.raises(BadDataError, match="BTF offset"):
        percpu_symbol(prog, "runqueues")


def test_zero_based_percpu_symbols(synthetic_guest):
    """Older x86_64: per-CPU symbols are offsets and __per_cpu_start is 0."""
    g = synthetic_guest()
    start = g.syms["__per_cpu_start"]
    for cpu in range(2):  # __per_cpu_offset[cpu] now holds the area's base address
        off = g.mem.read(g.pa(g.syms["__per_cpu_offset"]) + 8 * cpu, 8)
        base = (int.from_bytes(off, "little") + start) & (2**64 - 1)
        g.write_u64(g.syms["__per_cpu_offset"] + 8 * cpu, base)
    syms = dict(g.syms, __per_cpu_start=0, runqueues=0x800)
    prog = g.program(symbols=SymbolTable(((n, a, "D") for n, a in syms.items()), "zero-based"))
    assert per_cpu_ptr(prog, percpu_symbol(prog, "runqueues"), 1) == g.rq_va[1]
