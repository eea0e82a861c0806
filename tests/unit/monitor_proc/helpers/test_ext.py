import struct

from monitor_proc.helpers.ext import scx_enable_state, scx_ops_name, scx_sample
from monitor_proc.symbols import SymbolTable


def test_attached_scheduler(synthetic_guest):
    prog = synthetic_guest().program()
    assert scx_sample(prog) == {"scx_state": "SCX_ENABLED", "scx_ops": "simple"}


def test_detached_scheduler(synthetic_guest):
    g = synthetic_guest()
    g.write_va(g.syms["scx_enable_state_var"], struct.pack("<i", 3))
    g.write_u64(g.syms["scx_root"], 0)
    prog = g.program()
    assert (scx_enable_state(prog), scx_ops_name(prog)) == ("SCX_DISABLED", None)


def test_kernel_without_sched_ext(synthetic_guest):
    g = synthetic_guest(scx=False)
    syms = SymbolTable(((n, a, "D") for n, a in g.syms.items()), "no-scx")
    assert scx_sample(g.program(symbols=syms)) == {"scx_state": None, "scx_ops": None}


def test_pre_scx_root_kernels_use_the_global_ops(synthetic_guest):
    g = synthetic_guest()
    syms = {n: a for n, a in g.syms.items() if n != "scx_root"}
    syms["scx_ops"] = g.pob + 0x2600000 + 64  # struct sched_ext_ops scx_ops
    prog = g.program(symbols=SymbolTable(((n, a, "D") for n, a in syms.items()), "6.12"))
    assert scx_ops_name(prog) == "simple"
