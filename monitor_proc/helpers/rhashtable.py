"""Resizable hash tables (:linux:`include/linux/rhashtable.h`, ``lib/rhashtable.c``), walked
from the host with a bound on everything the guest hands us.

A table is ``struct rhashtable`` whose ``tbl`` points at a ``struct bucket_table``: ``size``
buckets, each a ``struct rhash_lock_head *`` whose bit 0 is the bucket lock. A chain of
``struct rhash_head`` ends at a "nulls" marker (an odd value), not NULL. During a resize some
entries already live in ``tbl->future_tbl``: both tables are walked, each entry once.
"""

from __future__ import annotations

import struct

from monitor_proc.program import BadDataError, Program

__all__ = ("MAX_BUCKETS", "MAX_CHAIN", "MAX_ENTRIES", "rhashtable_entries")

MAX_BUCKETS = 1 << 16
MAX_CHAIN = 1024
MAX_ENTRIES = 4096
_MAX_TABLES = 2  # the table and, mid-resize, its future table
_KERNEL_HALF = 1 << 63


def _kernel_ptr(p: int, what: str) -> int:
    if p < _KERNEL_HALF:
        raise BadDataError(f"{what} {p:#x} is not a kernel address")
    return p


def _offsets(prog: Program) -> tuple[int, int, int, int, int, int]:
    """The members the walk reads, looked up once per Program (the sampler walks each
    sample)."""
    got = prog.cache.get("rhashtable_offsets")
    if got is None:
        bt = prog.struct("bucket_table")
        got = prog.cache["rhashtable_offsets"] = (
            prog.member_offset("rhashtable", "tbl"),
            bt.member("size").offset,
            bt.member("nest").offset,
            bt.member("future_tbl").offset,
            bt.member("buckets").offset,
            prog.member_offset("rhash_head", "next"),
        )
    return got


def rhashtable_entries(
    prog: Program, ht: int, head_offset: int, limit: int = MAX_ENTRIES
) -> list[int]:
    """Addresses of the objects in a hash table.

    >>> [hex(d) for d in rhashtable_entries(prog, sch + dsq_hash_off, hash_node_off)]

    :param ht: ``struct rhashtable *``.
    :param head_offset: offset of the ``struct rhash_head`` member in each object.
    :param limit: most entries to return.
    :raises BadDataError: a nested (``nest != 0``) or absurdly sized table, a chain longer
        than :data:`MAX_CHAIN`, more than ``limit`` entries, or a non-kernel pointer.
    """
    tbl_off, size_off, nest_off, future_off, buckets_off, next_off = _offsets(prog)
    seen: set[int] = set()
    out: list[int] = []
    tbl = prog.read_u64(ht + tbl_off)
    for _ in range(_MAX_TABLES):
        if tbl == 0:
            break
        hdr = prog.read(_kernel_ptr(tbl, "bucket_table"), buckets_off)
        size, nest = (
            struct.unpack_from("<I", hdr, size_off)[0],
            struct.unpack_from("<I", hdr, nest_off)[0],
        )
        if nest:
            raise BadDataError(f"bucket_table at {tbl:#x} is nested (nest={nest}): not walked")
        if not 0 < size <= MAX_BUCKETS or size & (size - 1):
            raise BadDataError(f"bucket_table at {tbl:#x} has {size} buckets")
        buckets = struct.unpack(f"<{size}Q", prog.read(tbl + buckets_off, 8 * size))
        for b in buckets:
            node = b & ~1  # bit 0: the bucket's lock
            for _ in range(MAX_CHAIN):
                if node == 0 or node & 1:  # empty bucket, or the nulls marker ending a chain
                    break
                obj = _kernel_ptr(node, "rhash_head") - head_offset
                if obj not in seen:
                    if len(out) >= limit:
                        raise BadDataError(f"hash table at {ht:#x} has more than {limit} entries")
                    seen.add(obj)
                    out.append(obj)
                node = prog.read_u64(node + next_off)
            else:
                raise BadDataError(f"hash chain at {tbl:#x} longer than {MAX_CHAIN}")
        tbl = struct.unpack_from("<Q", hdr, future_off)[0]
    return out
