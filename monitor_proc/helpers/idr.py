"""ID allocators (:linux:`include/linux/idr.h`): ``struct idr`` is an XArray of pointers
(``idr_rt``) whose index plus ``idr_base`` is the ID. The kernel keeps BPF programs,
maps, BTF objects and links in IDRs (``prog_idr``, ``map_idr``...).
"""

from __future__ import annotations

from monitor_proc.btf import BtfError
from monitor_proc.helpers.xarray import MAX_ENTRIES, xa_entries
from monitor_proc.program import BadDataError, Program

__all__ = ("idr_for_each",)

_MAX_ID = (1 << 31) - 1  # IDs are positive ints


def idr_for_each(prog: Program, idr: int, limit: int = MAX_ENTRIES) -> list[tuple[int, int]]:
    """``(id, pointer)`` of every object in the IDR at ``idr``, by ID.

    >>> idr_for_each(prog, prog.symbol("map_idr"))
    [(1, 18446683600570028032), (2, ...)]

    :raises BadDataError: a corrupt tree (see :func:`~monitor_proc.helpers.xarray.xa_entries`).
    """
    try:
        rt = prog.member_offset("idr", "idr_rt")
        base_off = prog.member_offset("idr", "idr_base")
    except BtfError as exc:
        raise BadDataError(f"this kernel's BTF has no usable struct idr: {exc}") from exc
    base = prog.read_u32(idr + base_off)
    out = []
    for index, ptr in xa_entries(prog, idr + rt, limit):
        ident = index + base
        if ident <= _MAX_ID:
            out.append((ident, ptr))
    return out
