"""BPF programs listed from synthetic guest memory (prog_idr, vmalloc'ed bpf_prog)."""

from __future__ import annotations

import struct

from monitor_proc.helpers.bpf_prog import bpf_prog_list, bpf_stats_enabled
from monitor_proc.symbols import SymbolTable
from tests.unit.monitor_proc.bpf_guest import AUX_PROG, PROG_AUX, STATS_KEY, BpfGuest, ProgSpec

PROGS = [
    ProgSpec(1, "qmap_select_cpu", insns=40, verified=123, run_cnt=(3, 4), run_ns=(10, 20)),
    ProgSpec(2, "qmap_enqueue", insns=300, verified=4567),
    ProgSpec(90, "qmap_dispatch", type="TRACING", insns=7, verified=7),
]


def test_programs_by_id_with_names_types_and_verified_insns() -> None:
    g = BpfGuest(progs=PROGS)
    progs = bpf_prog_list(g.writable_program())
    assert [(p["id"], p["name"], p["type"]) for p in progs] == [
        (1, "qmap_select_cpu", "STRUCT_OPS"),
        (2, "qmap_enqueue", "STRUCT_OPS"),
        (90, "qmap_dispatch", "TRACING"),
    ]
    assert [(p["insns"], p["verified_insns"]) for p in progs] == [(40, 123), (300, 4567), (7, 7)]


def test_run_counts_summed_over_cpus_only_with_stats_enabled() -> None:
    g = BpfGuest(progs=PROGS)
    prog = g.writable_program()
    assert bpf_stats_enabled(prog) is True
    first = bpf_prog_list(prog)[0]
    assert (first["run_cnt"], first["run_time_ns"]) == (7, 30)
    g.write_va(STATS_KEY, struct.pack("<i", 0))
    assert bpf_stats_enabled(prog) is False
    assert all("run_cnt" not in p and "run_time_ns" not in p for p in bpf_prog_list(prog))


def test_a_program_whose_aux_does_not_point_back_is_unreadable_not_fatal() -> None:
    g = BpfGuest(progs=PROGS)
    aux = struct.unpack("<Q", g.read_vm(g.prog_addr[2] + PROG_AUX, 8))[0]
    g.write_u64(aux + AUX_PROG, 0xFFFF_8880_DEAD_0000)
    progs = bpf_prog_list(g.writable_program())
    assert progs[1]["id"] == 2 and progs[1]["error"].startswith("unreadable")
    assert progs[0]["name"] == "qmap_select_cpu" and progs[2]["name"] == "qmap_dispatch"


def test_an_unmapped_program_page_is_unreadable_not_fatal() -> None:
    g = BpfGuest(progs=PROGS)
    leaf = g.xa_nodes[1]  # ids 0..63 under the root (shift 6)
    g.write_u64(leaf + 40 + 8 * 2, 0xFFFF_C900_7770_0000)  # id 2 -> unmapped vmalloc
    progs = bpf_prog_list(g.writable_program())
    assert "error" in progs[1] and progs[0]["verified_insns"] == 123


def test_a_kernel_without_bpf_lists_none() -> None:
    g = BpfGuest(progs=PROGS)
    syms = SymbolTable(
        ((n, a, "D") for n, a in g.syms.items() if n not in ("prog_idr", "bpf_stats_enabled_key")),
        "no-bpf",
    )
    prog = g.program(symbols=syms)
    assert bpf_prog_list(prog) == [] and bpf_stats_enabled(prog) is None
