"""BPF arenas (``BPF_MAP_TYPE_ARENA``, :linux:`kernel/bpf/arena.c`): the global variables a
BPF object keeps in its arena (``__arena_global``, section ``.addr_space.1``), read by name.

scx_qmap on 7.2 keeps its counters (``qa.nr_enqueued``...) there, not in ``.bss``. The
arena map carries no BTF of its own; the object's BTF is that of a program using the map
(``bpf_prog_aux.used_maps`` -> ``aux->btf``), whose DATASEC ``.addr_space.1`` gives the
variables and their size. libbpf places that data at the end of the arena
(``arena_data_off = max_entries * PAGE_SIZE - round_up(size, PAGE_SIZE)``, tools/lib/bpf
``libbpf.c``), and the kernel maps arena page ``uaddr`` at ``kern_vm_start + (u32)uaddr``
with ``kern_vm_start = kern_vm->addr + GUARD_SZ / 2`` (GUARD_SZ: 64 KiB, the reach of a
16-bit instruction offset).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from monitor_proc.btf import BtfError, Kind
from monitor_proc.btf_value import MAX_ARRAY, decode
from monitor_proc.helpers.btf_object import guest_btf
from monitor_proc.helpers.idr import idr_for_each
from monitor_proc.program import BadDataError, Program
from monitor_proc.symbols import SymbolNotFound

if TYPE_CHECKING:
    from monitor_proc.helpers.bpf_map import BpfMap

__all__ = ("ARENA_SECTION", "arena_globals")

ARENA_SECTION = ".addr_space.1"
_GUARD_HALF = 1 << 15
_PAGE = 4096
_MAX_USED_MAPS = 64  # MAX_USED_MAPS in the verifier
_MAX_PROGS = 1024
_MAX_SIZE = 1 << 20
_KERNEL_HALF = 1 << 63


def _object_btf(prog: Program, arena: int) -> int:
    """``struct btf *`` of a program that uses the map at ``arena``, or 0."""
    try:
        aux_off = prog.member_offset("bpf_prog", "aux")
        used, cnt = (
            prog.member_offset("bpf_prog_aux", "used_maps"),
            prog.member_offset("bpf_prog_aux", "used_map_cnt"),
        )
        btf_off = prog.member_offset("bpf_prog_aux", "btf")
        idr = prog.symbol("prog_idr")
    except (BtfError, SymbolNotFound):
        return 0
    for _, p in idr_for_each(prog, idr, _MAX_PROGS):
        aux = prog.read_u64(p + aux_off)
        if aux < _KERNEL_HALF:
            continue
        n = prog.read_u32(aux + cnt)
        maps = prog.read_u64(aux + used)
        if not 0 < n <= _MAX_USED_MAPS or maps < _KERNEL_HALF:
            continue
        if arena in struct.unpack(f"<{n}Q", prog.read(maps, 8 * n)):
            btf = prog.read_u64(aux + btf_off)
            if btf:
                return btf
    return 0


def arena_globals(prog: Program, m: BpfMap, max_array: int = MAX_ARRAY) -> Any:
    """The arena's global variables decoded by name (``{"qa": {"nr_enqueued": ...}}``),
    or None when no program of its object says what they are.

    :raises BadDataError: an inconsistent arena (no kernel mapping, data beyond it).
    :raises FaultError: the data page is not mapped.
    """
    btf_ptr = _object_btf(prog, m.address)
    if not btf_ptr:
        return None
    btf = guest_btf(prog, btf_ptr)
    try:
        sec = btf.find(ARENA_SECTION, Kind.DATASEC)
        arena = prog.struct("bpf_arena")
        user_off = arena.member("user_vm_start").offset
        kern_off = arena.member("kern_vm").offset
        addr_off = prog.member_offset("vm_struct", "addr")
    except BtfError:
        return None
    size = sec.size
    raw = prog.read(m.address, max(user_off, kern_off) + 8)
    user_start = struct.unpack_from("<Q", raw, user_off)[0]
    kern_vm = struct.unpack_from("<Q", raw, kern_off)[0]
    data_off = m.max_entries * _PAGE - (size + _PAGE - 1) // _PAGE * _PAGE
    if not 0 < size <= _MAX_SIZE or data_off < 0 or kern_vm < _KERNEL_HALF:
        raise BadDataError(f"arena {m.name}: {size} bytes of globals, kern_vm {kern_vm:#x}")
    kern_start = prog.read_u64(kern_vm + addr_off) + _GUARD_HALF
    at = kern_start + ((user_start + data_off) & 0xFFFF_FFFF)
    return decode(btf, sec.id, prog.read(at, size), max_array=max_array)
