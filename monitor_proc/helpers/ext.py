"""sched_ext state (:linux:`kernel/sched/ext.c`, ``ext_internal.h``): is a BPF scheduler
attached, which, and what it has done (event counters, DSQ depths, watchdog).

Missing symbols mean a kernel without sched_ext (``CONFIG_SCHED_CLASS_EXT=n``). Layouts
moved between kernels; BTF member presence picks the one this kernel has:

* event counters: a global per-CPU ``event_stats_cpu`` (v6.15), ``scx_sched.event_stats_cpu``
  (v6.16 - 6.17.6), ``scx_sched.pcpu->event_stats`` (v6.17.7, v6.18 and later);
* watchdog timeout: static ``scx_watchdog_timeout`` before v7.1, ``scx_sched.watchdog_timeout``
  since ("sched_ext: Make watchdog sub-sched aware");
* user DSQs: the global ``dsq_hash`` before v6.16, ``scx_sched.dsq_hash`` since.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from monitor_proc.btf import BtfError, Kind, Member, Struct
from monitor_proc.helpers.percpu import per_cpu_offsets, percpu_symbol
from monitor_proc.program import BadDataError, Program
from monitor_proc.symbols import SymbolNotFound

__all__ = (
    "scx_dsqs",
    "scx_enable_state",
    "scx_events",
    "scx_ops_name",
    "scx_root",
    "scx_sample",
    "scx_sched_sample",
    "scx_watchdog_target",
)


def scx_enable_state(prog: Program) -> str | None:
    """Name of ``scx_enable_state_var`` (``"SCX_ENABLED"``, ``"SCX_DISABLED"``...), or None
    without sched_ext.

    >>> scx_enable_state(prog)
    'SCX_DISABLED'
    """
    try:
        addr = prog.symbol("scx_enable_state_var")
    except SymbolNotFound:
        return None
    value = prog.read_s32(addr)
    try:
        enum = prog.btf.find("scx_enable_state", Kind.ENUM)
    except BtfError:
        return str(value)
    return next((m.name for m in enum.items if m.value == value), str(value))


def scx_ops_name(prog: Program) -> str | None:
    """``ops.name`` of the attached BPF scheduler, or None when none is attached.

    Since "sched_ext: Introduce scx_sched" (v6.16) the ops live in ``*scx_root``; before,
    in the global ``scx_ops``.
    """
    try:
        root = prog.read_u64(prog.symbol("scx_root"))
        if root == 0:
            return None
        name = prog.member("scx_sched", "ops.name")
        addr = root + name.offset
    except SymbolNotFound:
        try:
            addr = prog.symbol("scx_ops")
            name = prog.member("sched_ext_ops", "name")
            addr += name.offset
        except (SymbolNotFound, BtfError):
            return None
    raw = prog.read(addr, min(name.size, 256)).split(b"\0", 1)[0]
    return raw.decode("utf-8", "replace") or None


def scx_sample(prog: Program) -> dict[str, str | None]:
    """``{"scx_state": scx_enable_state(), "scx_ops": scx_ops_name()}``."""
    return {"scx_state": scx_enable_state(prog), "scx_ops": scx_ops_name(prog)}


# -- the attached scheduler's state, each sample ------------------------------------------

_U64 = (1 << 64) - 1
_KERNEL_HALF = 1 << 63
_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}
# sample key -> struct scx_sched member; each may be missing from this kernel.
_SCHED_FIELDS = {
    "exit_kind": "exit_kind",  # atomic_t
    "aborting": "aborting",  # "sched_ext: Add scx_sched->aborting" (v6.18)
    "bypass_depth": "bypass_depth",  # per scheduler since sub-scheduler support (v7.0)
    "watchdog_timeout": "watchdog_timeout",  # per scheduler since v7.1
}


@dataclass(frozen=True)
class _ScxPlan:
    """Offsets resolved once per session (BTF decides every one)."""

    root_sym: int | None  # &scx_root (v6.16+), else None
    sched_size: int
    ops_name: tuple[int, int] | None  # (offset, size) of ops.name in scx_sched
    fields: tuple[tuple[str, int, str], ...]  # (key, offset in scx_sched, struct format)
    events: tuple[tuple[str, int], ...]  # (SCX_EV_* name, offset in scx_event_stats)
    ev_unpack: struct.Struct | None
    event_names: tuple[str, ...]  # the names of ``events``, in ``ev_unpack``'s order
    ev_layout: str  # "pcpu" | "sched_percpu" | "global" | ""
    ev_ptr_off: int  # scx_sched.pcpu / .event_stats_cpu offset
    ev_inner: int  # scx_sched_pcpu.event_stats offset
    ev_global: int  # &event_stats_cpu (v6.15 global per-CPU variable)
    watchdog_sym: int | None  # &scx_watchdog_timeout (before v7.1)
    dsq_hash_off: int | None  # scx_sched.dsq_hash
    dsq_hash_sym: int | None  # the global dsq_hash (before v6.16)
    dsq_node_off: int
    dsq_nr_off: int
    dsq_id_off: int


def _int_format(prog: Program, member: Member) -> str | None:
    """struct format of an integer-like member (atomic_t, bool, enums): its sign from BTF."""
    t = prog.btf.resolve(member.type.id)
    if member.bit_size or member.size not in _UNSIGNED:
        return None
    signed = False
    if t.kind == Kind.INT:
        signed = bool(t.extra >> 24 & 1)
        if t.name == "_Bool":
            return "?"
    elif t.kind == Kind.STRUCT:  # atomic_t / atomic64_t: { int counter; }
        signed = True
    elif t.kind not in (Kind.ENUM, Kind.ENUM64):
        return None
    code = _UNSIGNED[member.size]
    return code.lower() if signed else code


def _symbol_or_none(prog: Program, name: str) -> int | None:
    try:
        return prog.symbol(name)
    except SymbolNotFound:
        return None


def _event_layout(prog: Program, sched: Struct | None) -> tuple[str, int, int, int]:
    """(layout, pointer offset in scx_sched, event_stats offset in the pointee, global)."""
    if sched is not None and sched.has_member("pcpu"):
        try:  # "sched_ext: Move event_stats_cpu into scx_sched_pcpu" (v6.18, 6.17.7)
            inner = prog.member_offset("scx_sched_pcpu", "event_stats")
            return "pcpu", sched.member("pcpu").offset, inner, 0
        except BtfError:
            pass
    if sched is not None and sched.has_member("event_stats_cpu"):  # v6.16 - 6.17.6
        return "sched_percpu", sched.member("event_stats_cpu").offset, 0, 0
    try:  # v6.15: static DEFINE_PER_CPU(struct scx_event_stats, event_stats_cpu)
        return "global", 0, 0, percpu_symbol(prog, "event_stats_cpu")
    except (SymbolNotFound, BadDataError, BtfError):
        return "", 0, 0, 0


def _struct_or_none(prog: Program, name: str) -> Struct | None:
    try:
        return prog.struct(name)
    except BtfError:
        return None


def _scx_plan(prog: Program) -> _ScxPlan | None:
    """The plan, or None on a kernel without sched_ext."""
    if "scx_plan" in prog.cache:
        return prog.cache["scx_plan"]
    root_sym = _symbol_or_none(prog, "scx_root")
    sched = _struct_or_none(prog, "scx_sched") if root_sym is not None else None
    stats = _struct_or_none(prog, "scx_event_stats")
    plan = None
    if sched is not None or stats is not None or _symbol_or_none(prog, "scx_enable_state_var"):
        plan = _build_plan(prog, root_sym, sched, stats)
    prog.cache["scx_plan"] = plan
    return plan


def _build_plan(
    prog: Program, root_sym: int | None, sched: Struct | None, stats: Struct | None
) -> _ScxPlan:
    fields, ops_name = [], None
    if sched is not None:
        for key, path in _SCHED_FIELDS.items():
            if sched.has_member(path):
                fmt = _int_format(prog, sched.member(path))
                if fmt is not None:
                    fields.append((key, sched.member(path).offset, "<" + fmt))
        if sched.has_member("ops.name"):
            m = sched.member("ops.name")
            ops_name = (m.offset, min(m.size, 256))
    events = tuple(
        (m.name, m.bit_offset // 8)
        for m in (stats.type.items if stats else ())
        if m.name.startswith("SCX_EV_") and prog.btf.size_of(m.type_id) == 8
    )
    layout, ptr_off, inner, glob = _event_layout(prog, sched) if events else ("", 0, 0, 0)
    ev_unpack = (
        struct.Struct(
            "<"
            + "".join(
                f"{off - prev}xq" if off > prev else "q"
                for (_, off), prev in zip(
                    events, [0] + [o + 8 for _, o in events[:-1]], strict=True
                )
            )
        )
        if events
        else None
    )
    dsq_hash_off = (
        sched.member("dsq_hash").offset
        if sched is not None and sched.has_member("dsq_hash")
        else None
    )
    dsq = _struct_or_none(prog, "scx_dispatch_q")
    walkable = dsq is not None and all(dsq.has_member(m) for m in ("hash_node", "nr", "id"))
    return _ScxPlan(
        root_sym=root_sym if sched is not None else None,
        sched_size=sched.size if sched is not None else 0,
        ops_name=ops_name,
        fields=tuple(fields),
        events=events,
        ev_unpack=ev_unpack,
        event_names=tuple(name for name, _ in events),
        ev_layout=layout,
        ev_ptr_off=ptr_off,
        ev_inner=inner,
        ev_global=glob,
        watchdog_sym=(
            None
            if sched is not None and sched.has_member("watchdog_timeout")
            else _symbol_or_none(prog, "scx_watchdog_timeout")
        ),
        dsq_hash_off=dsq_hash_off if walkable else None,
        dsq_hash_sym=(
            None if dsq_hash_off is not None or not walkable else _symbol_or_none(prog, "dsq_hash")
        ),
        dsq_node_off=dsq.member("hash_node").offset if walkable and dsq is not None else 0,
        dsq_nr_off=dsq.member("nr").offset if walkable and dsq is not None else 0,
        dsq_id_off=dsq.member("id").offset if walkable and dsq is not None else 0,
    )


def scx_root(prog: Program) -> int:
    """``scx_root``: the attached root scheduler (``struct scx_sched *``), 0 when none is
    attached or the kernel predates it (v6.16) or lacks sched_ext."""
    plan = _scx_plan(prog)
    if plan is None or plan.root_sym is None:
        return 0
    return prog.read_u64(plan.root_sym)


def scx_events(
    prog: Program, sch: int = 0, sched_raw: bytes = b"", offsets: tuple[int, ...] | None = None
) -> dict[str, int]:
    """The scheduler's event counters (``struct scx_event_stats``), summed over CPUs.

    :param sch: ``struct scx_sched *`` (layouts that keep the counters in it).
    :param sched_raw: ``*sch`` already read (saves a read), optional.
    :param offsets: ``__per_cpu_offset[]`` already read, optional.
    :returns: ``{"SCX_EV_SELECT_CPU_FALLBACK": n, ...}``, ``{}`` where this kernel keeps none.
    """
    plan = _scx_plan(prog)
    if plan is None or plan.ev_unpack is None or not plan.ev_layout:
        return {}
    if plan.ev_layout == "global":
        base = plan.ev_global
    else:
        if not sch:
            return {}
        raw = sched_raw or prog.read(sch + plan.ev_ptr_off, 8)
        at = plan.ev_ptr_off if sched_raw else 0
        base = (struct.unpack_from("<Q", raw, at)[0] + plan.ev_inner) & _U64
    offsets = offsets if offsets is not None else per_cpu_offsets(prog)
    size, unpack, read = plan.ev_unpack.size, plan.ev_unpack.unpack, prog.read
    per_cpu = [unpack(read((base + off) & _U64, size)) for off in offsets]
    # one sum per counter over the CPUs' rows (the sampler's hot path: few Python steps)
    return dict(zip(plan.event_names, map(sum, zip(*per_cpu, strict=True)), strict=True))


def scx_dsqs(prog: Program, sch: int = 0) -> list[dict[str, int]]:
    """User DSQs of the scheduler (its ``dsq_hash``; the global one before v6.16) with
    their depths: ``[{"id": dsq id, "nr": queued tasks}]``.

    :raises BadDataError: the table could not be walked safely (see
        :func:`monitor_proc.helpers.rhashtable.rhashtable_entries`).
    """
    from monitor_proc.helpers.rhashtable import rhashtable_entries
    from schedlab_shared.monitor_schema import MAX_DSQS

    plan = _scx_plan(prog)
    if plan is None:
        return []
    if plan.dsq_hash_off is not None and sch:
        ht = sch + plan.dsq_hash_off
    elif plan.dsq_hash_sym is not None:
        ht = plan.dsq_hash_sym
    else:
        return []
    out = []
    need = max(plan.dsq_nr_off + 4, plan.dsq_id_off + 8)
    for dsq in rhashtable_entries(prog, ht, plan.dsq_node_off, MAX_DSQS):
        raw = prog.read(dsq, need)
        out.append(
            {
                "id": struct.unpack_from("<Q", raw, plan.dsq_id_off)[0],
                "nr": struct.unpack_from("<I", raw, plan.dsq_nr_off)[0],
            }
        )
    return out


def scx_watchdog_target(prog: Program, sch: int) -> tuple[int, str] | None:
    """Where the attached scheduler's watchdog timeout (jiffies, ``unsigned long``) lives:
    ``(address, what)``; None when this kernel has neither place."""
    plan = _scx_plan(prog)
    if plan is None:
        return None
    for key, off, _ in plan.fields:
        if key == "watchdog_timeout" and sch:
            return sch + off, "scx_sched.watchdog_timeout"
    if plan.watchdog_sym is not None:
        return plan.watchdog_sym, "scx_watchdog_timeout"
    return None


def scx_sched_sample(
    prog: Program, offsets: tuple[int, ...] | None = None, dsqs: bool = True
) -> dict[str, Any] | None:
    """The attached scheduler's state, or None when none is attached.

    >>> scx_sched_sample(prog)
    {'ops': 'qmap', 'exit_kind': 0, 'aborting': False, 'bypass_depth': 0,
     'watchdog_timeout': 1250, 'events': {'SCX_EV_SELECT_CPU_FALLBACK': 3, ...},
     'dsqs': [{'id': 0, 'nr': 2}]}

    Fields are those of :data:`schedlab_shared.monitor_schema.SCX_FIELDS` this kernel
    has. Before ``scx_root`` (v6.16) "attached" means ``scx_enable_state`` is enabled.
    """
    plan = _scx_plan(prog)
    if plan is None:
        return None
    out: dict[str, Any] = {}
    sch, raw = 0, b""
    if plan.root_sym is not None:
        sch = prog.read_u64(plan.root_sym)
        if sch == 0:
            return None
        if sch < _KERNEL_HALF:
            raise BadDataError(f"scx_root {sch:#x} is not a kernel address")
        raw = prog.read(sch, plan.sched_size)
        if plan.ops_name is not None:
            off, size = plan.ops_name
            out["ops"] = raw[off : off + size].split(b"\0", 1)[0].decode("utf-8", "replace")
        for key, off, fmt in plan.fields:
            out[key] = struct.unpack_from(fmt, raw, off)[0]
    else:
        if scx_enable_state(prog) not in ("SCX_ENABLED", "SCX_OPS_ENABLED"):
            return None
        name = scx_ops_name(prog)
        if name is not None:
            out["ops"] = name
    if plan.watchdog_sym is not None and "watchdog_timeout" not in out:
        out["watchdog_timeout"] = prog.read_u64(plan.watchdog_sym)
    events = scx_events(prog, sch, raw, offsets)
    if events:
        out["events"] = events
    if dsqs:
        try:
            out["dsqs"] = scx_dsqs(prog, sch)
        except BadDataError as exc:  # torn or odd table: the rest of the sample stands
            out["dsqs_error"] = str(exc)
    return out
