"""sched_ext state (:linux:`kernel/sched/ext.c`): is a BPF scheduler attached, and which.

Missing symbols mean a kernel without sched_ext (``CONFIG_SCHED_CLASS_EXT=n``).
"""

from __future__ import annotations

from monitor_proc.btf import BtfError, Kind
from monitor_proc.program import Program
from monitor_proc.symbols import SymbolNotFound

__all__ = ("scx_enable_state", "scx_ops_name", "scx_sample")


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
