"""XArrays (:linux:`include/linux/xarray.h`, ``lib/xarray.c``), walked from the host.

The radix tree behind an IDR is an XArray. ``xa_head`` is NULL, a single entry (index 0),
or a node: an internal entry (low bits ``10``, above 4096) pointing 2 bytes past a
``struct xa_node``. A node has ``shift`` (a multiple of the chunk bits), ``offset`` in its
parent, ``parent`` and ``slots[XA_CHUNK_SIZE]``; a slot's index is the node's base plus
``slot << shift``. Value entries (low bit 1), sibling, retry and zero entries hold no
pointer. Everything is bounded: nodes must be consistent with their parent (shift, offset,
back-pointer), the tree at most :data:`MAX_NODES` nodes, the result ``limit`` entries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from monitor_proc.btf import BtfError
from monitor_proc.program import BadDataError, Program

__all__ = ("MAX_ENTRIES", "MAX_NODES", "xa_entries")

MAX_NODES = 4096
MAX_ENTRIES = 1 << 16
_KERNEL_HALF = 1 << 63
_INTERNAL_NODE_MIN = 4096  # xa_is_node(): an internal entry above this is a node pointer
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class _XaPlan:
    head_off: int  # xarray.xa_head
    shift_off: int
    offset_off: int
    parent_off: int
    slots_off: int
    chunk: int  # XA_CHUNK_SIZE
    chunk_shift: int
    node_read: int  # bytes of a node that hold the fields above


def _plan(prog: Program) -> _XaPlan:
    plan = prog.cache.get("xa_plan")
    if plan is None:
        try:
            node = prog.struct("xa_node")
            slots = node.member("slots")
            chunk = slots.type.nelems if slots.type.nelems else 64
            plan = _XaPlan(
                head_off=prog.member_offset("xarray", "xa_head"),
                shift_off=node.member("shift").offset,
                offset_off=node.member("offset").offset,
                parent_off=node.member("parent").offset,
                slots_off=slots.offset,
                chunk=chunk,
                chunk_shift=chunk.bit_length() - 1,
                node_read=slots.offset + 8 * chunk,
            )
        except BtfError as exc:
            raise BadDataError(f"this kernel's BTF has no usable struct xa_node: {exc}") from exc
        if plan.chunk & (plan.chunk - 1) or not 2 <= plan.chunk <= 256:
            raise BadDataError(f"XA_CHUNK_SIZE {plan.chunk} from BTF is not a power of two")
        prog.cache["xa_plan"] = plan
    return plan


def _is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > _INTERNAL_NODE_MIN


def _is_pointer(entry: int) -> bool:
    """A plain (non-internal, non-value) entry that looks like a kernel object."""
    return entry & 7 == 0 and entry >= _KERNEL_HALF


def xa_entries(prog: Program, xa: int, limit: int = MAX_ENTRIES) -> list[tuple[int, int]]:
    """``(index, entry)`` of every pointer entry of the XArray at ``xa``, by index.

    >>> xa_entries(prog, prog.symbol("prog_idr"))  # the IDR's idr_rt is at offset 0
    [(1, 18446683600570023936), ...]

    :param xa: ``struct xarray *``.
    :param limit: most entries to return.
    :raises BadDataError: an inconsistent node (shift, offset or parent wrong), more than
        :data:`MAX_NODES` nodes or ``limit`` entries, or a node pointer outside the kernel.
    :raises FaultError: a node that cannot be read.
    """
    plan = _plan(prog)
    head = prog.read_u64(xa + plan.head_off)
    if head == 0:
        return []
    if not _is_node(head):
        return [(0, head)] if _is_pointer(head) else []
    out: list[tuple[int, int]] = []
    # (node entry, expected parent, expected shift or -1 for the root, expected offset, base)
    stack: list[tuple[int, int, int, int, int]] = [(head, 0, -1, 0, 0)]
    nodes = 0
    while stack:
        entry, parent, want_shift, want_offset, base = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BadDataError(f"xarray at {xa:#x} has more than {MAX_NODES} nodes")
        node = entry - 2
        if node < _KERNEL_HALF:
            raise BadDataError(f"xa_node {node:#x} is not a kernel address")
        raw = prog.read(node, plan.node_read)
        shift, offset = raw[plan.shift_off], raw[plan.offset_off]
        back = _U64.unpack_from(raw, plan.parent_off)[0]
        if shift % plan.chunk_shift or shift >= 64:
            raise BadDataError(f"xa_node {node:#x}: shift {shift}")
        if want_shift >= 0 and (shift != want_shift or offset != want_offset or back != parent):
            raise BadDataError(f"xa_node {node:#x} does not belong to its parent {parent:#x}")
        slots = struct.unpack_from(f"<{plan.chunk}Q", raw, plan.slots_off)
        children = []
        for i, slot in enumerate(slots):
            index = base + (i << shift)
            if _is_node(slot):
                if shift == 0:
                    raise BadDataError(f"xa_node {node:#x}: a node below a leaf")
                children.append((slot, node, shift - plan.chunk_shift, i, index))
            elif _is_pointer(slot):  # above a leaf: a multi-index entry covering a range
                if len(out) >= limit:
                    raise BadDataError(f"xarray at {xa:#x} has more than {limit} entries")
                out.append((index, slot))
        stack.extend(reversed(children))  # depth first, lowest index first
    out.sort()
    return out
