"""BTF objects in guest memory (``struct btf``, :linux:`kernel/bpf/btf.c`): the type
information a BPF object loaded with its maps, e.g. the layout of a scheduler's ``.bss``.

``btf->data`` holds the raw blob user space handed to ``BPF_BTF_LOAD`` (header, types,
strings), ``data_size`` bytes; it is parsed here with :class:`monitor_proc.btf.Btf`, after
bounding its size. Split BTF (``base_btf`` set: module or split user BTF) refers to types
of another object and is not read. Parsed objects are memoised per (address, id, data,
size) in ``prog.cache``, so a listing every few seconds does not parse again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from monitor_proc.btf import Btf, BtfError
from monitor_proc.program import BadDataError, Program

__all__ = ("MAX_BTF_SIZE", "guest_btf")

MAX_BTF_SIZE = 4 << 20  # a BPF object's BTF is tens of KiB; vmlinux's is not read this way
_KERNEL_HALF = 1 << 63
_CACHE_MAX = 64


@dataclass(frozen=True)
class _BtfPlan:
    size: int
    data_off: int
    data_size_off: int
    id_off: int
    base_off: int | None


def _plan(prog: Program) -> _BtfPlan:
    plan = prog.cache.get("btf_object_plan")
    if plan is None:
        try:
            s = prog.struct("btf")
            plan = _BtfPlan(
                size=s.size,
                data_off=s.member("data").offset,
                data_size_off=s.member("data_size").offset,
                id_off=s.member("id").offset,
                base_off=s.member("base_btf").offset if s.has_member("base_btf") else None,
            )
        except BtfError as exc:
            raise BadDataError(f"this kernel's BTF has no usable struct btf: {exc}") from exc
        prog.cache["btf_object_plan"] = plan
    return plan


def guest_btf(prog: Program, addr: int) -> Btf:
    """The parsed ``struct btf`` at ``addr``.

    >>> guest_btf(prog, map_btf_pointer).find(".bss", Kind.DATASEC)

    :raises BadDataError: not a kernel pointer, split BTF, an absurd size, or a blob that
        does not parse (its :class:`~monitor_proc.btf.BtfError` text).
    :raises FaultError: unreadable memory.
    """
    if addr < _KERNEL_HALF:
        raise BadDataError(f"struct btf {addr:#x} is not a kernel address")
    plan = _plan(prog)
    raw = prog.read(addr, plan.size)
    data = struct.unpack_from("<Q", raw, plan.data_off)[0]
    size = struct.unpack_from("<I", raw, plan.data_size_off)[0]
    ident = struct.unpack_from("<I", raw, plan.id_off)[0]
    if plan.base_off is not None and struct.unpack_from("<Q", raw, plan.base_off)[0]:
        raise BadDataError(f"btf {ident} is split BTF (on a base): not read")
    if not 0 < size <= MAX_BTF_SIZE or data < _KERNEL_HALF:
        raise BadDataError(f"btf {ident}: data {data:#x}, {size} bytes")
    cache: dict[tuple[int, int, int, int], Btf] = prog.cache.setdefault("guest_btf", {})
    key = (addr, ident, data, size)
    btf = cache.get(key)
    if btf is None:
        blob = prog.read(data, size)
        try:
            btf = Btf(blob)
        except (BtfError, ValueError, struct.error) as exc:
            raise BadDataError(f"btf {ident} does not parse: {exc}") from exc
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = btf
    return btf
