"""Loaded BPF programs (:linux:`include/linux/bpf.h`, ``kernel/bpf/syscall.c``), from the
host: ``prog_idr`` maps each program ID to its ``struct bpf_prog`` (vmalloc memory), whose
``aux`` (``struct bpf_prog_aux``) holds the ID, name and ``verified_insns``. With the
``kernel.bpf_stats_enabled`` sysctl on (the static key ``bpf_stats_enabled_key``) each
program counts its runs and their time in the per-CPU ``prog->stats``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from monitor_proc.btf import BtfError, Kind
from monitor_proc.helpers.idr import idr_for_each
from monitor_proc.helpers.percpu import per_cpu_offsets
from monitor_proc.memory import FaultError
from monitor_proc.program import BadDataError, Program
from monitor_proc.symbols import SymbolNotFound

__all__ = ("MAX_PROGS", "bpf_prog_list", "bpf_stats_enabled", "enum_names")

MAX_PROGS = 1024
_KERNEL_HALF = 1 << 63
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class _ProgPlan:
    idr: int
    prog_size: int
    type_off: int
    len_off: int
    jited_len_off: int
    stats_off: int
    aux_off: int
    aux_size: int
    aux_id_off: int
    aux_prog_off: int
    aux_name: tuple[int, int]
    aux_verified_off: int | None  # bpf_prog_aux.verified_insns (v5.16+)
    stats_cnt_off: int
    stats_nsecs_off: int
    types: dict[int, str]


def enum_names(prog: Program, enum: str, prefix: str) -> dict[int, str]:
    """``value -> name`` of a kernel enum without ``prefix`` (first name of a value wins)."""
    try:
        t = prog.btf.find(enum, Kind.ENUM)
    except BtfError:
        return {}
    out: dict[int, str] = {}
    for m in t.items:
        if not m.name.startswith("__"):
            out.setdefault(m.value, m.name.removeprefix(prefix))
    return out


def _plan(prog: Program) -> _ProgPlan | None:
    if "bpf_prog_plan" in prog.cache:
        return prog.cache["bpf_prog_plan"]
    plan = None
    try:
        p, aux = prog.struct("bpf_prog"), prog.struct("bpf_prog_aux")
        stats = prog.struct("bpf_prog_stats")
        name = aux.member("name")
        plan = _ProgPlan(
            idr=prog.symbol("prog_idr"),
            prog_size=p.size,
            type_off=p.member("type").offset,
            len_off=p.member("len").offset,
            jited_len_off=p.member("jited_len").offset,
            stats_off=p.member("stats").offset,
            aux_off=p.member("aux").offset,
            aux_size=aux.size,
            aux_id_off=aux.member("id").offset,
            aux_prog_off=aux.member("prog").offset,
            aux_name=(name.offset, min(name.size, 64)),
            aux_verified_off=(
                aux.member("verified_insns").offset if aux.has_member("verified_insns") else None
            ),
            stats_cnt_off=stats.member("cnt").offset,
            stats_nsecs_off=stats.member("nsecs").offset,
            types=enum_names(prog, "bpf_prog_type", "BPF_PROG_TYPE_"),
        )
    except (BtfError, SymbolNotFound):
        plan = None  # a kernel without BPF syscall support (or its BTF)
    prog.cache["bpf_prog_plan"] = plan
    return plan


def bpf_stats_enabled(prog: Program) -> bool | None:
    """Whether ``kernel.bpf_stats_enabled`` is on (None when this kernel has no such key)."""
    try:
        key = prog.symbol("bpf_stats_enabled_key")
        off = prog.member_offset("static_key", "enabled")
    except (SymbolNotFound, BtfError):
        return None
    return prog.read_s32(key + off) > 0


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _prog_entry(
    prog: Program, plan: _ProgPlan, ident: int, addr: int, stats: tuple[int, ...] | None
) -> dict[str, Any]:
    raw = prog.read(addr, plan.prog_size)
    aux = struct.unpack_from("<Q", raw, plan.aux_off)[0]
    if aux < _KERNEL_HALF:
        raise BadDataError(f"bpf_prog {addr:#x}: aux {aux:#x} is not a kernel address")
    a = prog.read(aux, plan.aux_size)
    if struct.unpack_from("<Q", a, plan.aux_prog_off)[0] != addr:
        raise BadDataError(f"bpf_prog {addr:#x}: its aux does not point back")
    if struct.unpack_from("<I", a, plan.aux_id_off)[0] != ident:
        raise BadDataError(f"bpf_prog {addr:#x}: aux id differs from its IDR slot {ident}")
    ptype = struct.unpack_from("<I", raw, plan.type_off)[0]
    off, size = plan.aux_name
    out: dict[str, Any] = {
        "id": ident,
        "name": _cstr(a[off : off + size]),
        "type": plan.types.get(ptype, str(ptype)),
        "insns": struct.unpack_from("<I", raw, plan.len_off)[0],
        "jited_len": struct.unpack_from("<I", raw, plan.jited_len_off)[0],
    }
    if plan.aux_verified_off is not None:
        out["verified_insns"] = struct.unpack_from("<I", a, plan.aux_verified_off)[0]
    if stats is not None:
        pcpu = struct.unpack_from("<Q", raw, plan.stats_off)[0]
        cnt = nsecs = 0
        need = max(plan.stats_cnt_off, plan.stats_nsecs_off) + 8
        for cpu_off in stats:
            s = prog.read((pcpu + cpu_off) & _U64, need)
            cnt += struct.unpack_from("<Q", s, plan.stats_cnt_off)[0]
            nsecs += struct.unpack_from("<Q", s, plan.stats_nsecs_off)[0]
        out["run_cnt"], out["run_time_ns"] = cnt, nsecs
    return out


def bpf_prog_list(prog: Program, offsets: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Every loaded BPF program: ``[{"id", "name", "type", "insns", "jited_len",
    "verified_insns"?, "run_cnt"?, "run_time_ns"?}]`` by ID; a program that cannot be read
    consistently is ``{"id", "error"}``. Run counts only while bpf stats are enabled.

    >>> [p["name"] for p in bpf_prog_list(prog) if p.get("type") == "STRUCT_OPS"]
    ['qmap_select_cpu', 'qmap_enqueue', ...]

    :raises BadDataError: ``prog_idr`` cannot be walked.
    """
    plan = _plan(prog)
    if plan is None:
        return []
    stats = None
    if bpf_stats_enabled(prog):
        stats = offsets if offsets is not None else per_cpu_offsets(prog)
    out = []
    for ident, addr in idr_for_each(prog, plan.idr, MAX_PROGS):
        try:
            out.append(_prog_entry(prog, plan, ident, addr, stats))
        except (BadDataError, FaultError, struct.error) as exc:
            out.append({"id": ident, "error": f"unreadable: {exc}"})
    return out
