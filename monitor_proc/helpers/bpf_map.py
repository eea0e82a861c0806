"""BPF maps (:linux:`include/linux/bpf.h`, ``kernel/bpf/arraymap.c``, ``hashtab.c``), from
the host: ``map_idr`` maps each map ID to its ``struct bpf_map``; values of ARRAY,
PERCPU_ARRAY and the HASH kinds are read from the map's own memory and decoded with the
map's BTF (``map->btf``, ``btf_key_type_id``, ``btf_value_type_id``), so a BPF object's
``.bss`` / ``.data`` (ARRAY maps of one DATASEC value) show as named variables.

Layouts: ``struct bpf_array`` keeps ``elem_size``-strided values inline after the map
(``value``), or per-CPU pointers (``pptrs``) for PERCPU_ARRAY. ``struct bpf_htab`` has
``n_buckets`` ``struct bucket``s, each an ``hlist_nulls`` chain of ``struct htab_elem``
(ending at an odd "nulls" value) holding the key at ``key`` and the value
``round_up(key_size, 8)`` after it (a per-CPU pointer there for PERCPU_HASH).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor_proc.btf import Btf, BtfError
from monitor_proc.btf_value import MAX_ARRAY, ValueDecodeError, decode, encode_int, locate
from monitor_proc.helpers.bpf_arena import arena_globals
from monitor_proc.helpers.bpf_prog import enum_names
from monitor_proc.helpers.btf_object import guest_btf
from monitor_proc.helpers.idr import idr_for_each
from monitor_proc.helpers.percpu import per_cpu_offsets
from monitor_proc.memory import FaultError
from monitor_proc.program import BadDataError, Program
from monitor_proc.symbols import SymbolNotFound

__all__ = (
    "GLOBAL_SUFFIXES",
    "MAX_ENTRIES_READ",
    "MAX_MAPS",
    "MAX_VALUE_SIZE",
    "BpfMap",
    "MapError",
    "bpf_map_list",
    "bpf_map_read",
    "bpf_map_write",
    "bpf_maps",
    "find_map",
)

MAX_MAPS = 1024
MAX_VALUE_SIZE = 1 << 20  # one value read from the guest (a large .bss is some KiB)
MAX_KEY_SIZE = 512
MAX_ENTRIES_READ = 256  # entries of one read of a whole map
LISTING_ARRAY = 16  # array elements of a value in the periodic listing (all in a read)
MAX_BUCKETS = 1 << 20
MAX_CHAIN = 1024
MAX_HASH_SCAN = 1 << 16  # elements one key lookup may walk
GLOBAL_SUFFIXES = (".bss", ".data", ".rodata")  # libbpf's global-data maps: <obj>.<section>
_KERNEL_HALF = 1 << 63
_U64 = (1 << 64) - 1
_PAGE = 4096
ARRAY_KINDS = ("ARRAY", "PERCPU_ARRAY")
HASH_KINDS = ("HASH", "LRU_HASH", "PERCPU_HASH", "LRU_PERCPU_HASH")


class MapError(Exception):
    """A map operation that cannot be done: no such map, a key or field that does not fit,
    a map kind not read. The message is one line for the user."""


@dataclass(frozen=True)
class BpfMap:
    """One map's header as read from ``struct bpf_map``."""

    id: int
    address: int
    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf: int  # struct btf *, 0 when loaded without BTF
    btf_key_type_id: int
    btf_value_type_id: int

    def info(self) -> dict[str, Any]:
        """The listing entry (:data:`schedlab_shared.monitor_schema.BPF_MAP_FIELDS`)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "key_size": self.key_size,
            "value_size": self.value_size,
            "max_entries": self.max_entries,
            "flags": self.flags,
            "btf": bool(self.btf and self.btf_value_type_id),
        }


@dataclass(frozen=True)
class _MapPlan:
    idr: int
    size: int
    fields: dict[str, int]  # bpf_map member -> offset
    name: tuple[int, int]
    types: dict[int, str]
    array_elem_size: int | None  # bpf_array.elem_size
    array_value: int | None  # bpf_array.value (pptrs share it)
    htab_buckets: int | None
    htab_n_buckets: int | None
    bucket_size: int
    elem_node: int  # htab_elem.hash_node
    node_next: int  # hlist_nulls_node.next
    elem_key: int  # htab_elem.key


_HEADER = (
    "map_type",
    "key_size",
    "value_size",
    "max_entries",
    "map_flags",
    "id",
    "btf",
    "btf_key_type_id",
    "btf_value_type_id",
)


def _opt(prog: Program, struct_name: str, path: str) -> int | None:
    try:
        return prog.member_offset(struct_name, path)
    except BtfError:
        return None


def _plan(prog: Program) -> _MapPlan | None:
    if "bpf_map_plan" in prog.cache:
        return prog.cache["bpf_map_plan"]
    plan = None
    try:
        m = prog.struct("bpf_map")
        name = m.member("name")
        bucket_size, buckets = 0, _opt(prog, "bpf_htab", "buckets")
        if buckets is not None:  # "struct bucket" is a common name: take the pointee's
            bucket_size = prog.btf.size_of(prog.member("bpf_htab", "buckets").type.ref)
        plan = _MapPlan(
            idr=prog.symbol("map_idr"),
            size=m.size,
            fields={f: m.member(f).offset for f in _HEADER},
            name=(name.offset, min(name.size, 64)),
            types=enum_names(prog, "bpf_map_type", "BPF_MAP_TYPE_"),
            array_elem_size=_opt(prog, "bpf_array", "elem_size"),
            array_value=_opt(prog, "bpf_array", "value"),
            htab_buckets=buckets,
            htab_n_buckets=_opt(prog, "bpf_htab", "n_buckets"),
            bucket_size=bucket_size,
            elem_node=_opt(prog, "htab_elem", "hash_node") or 0,
            node_next=_opt(prog, "hlist_nulls_node", "next") or 0,
            elem_key=_opt(prog, "htab_elem", "key") or 0,
        )
    except (BtfError, SymbolNotFound):
        plan = None
    prog.cache["bpf_map_plan"] = plan
    return plan


def _u32(raw: bytes, off: int) -> int:
    return struct.unpack_from("<I", raw, off)[0]


def _read_map(prog: Program, plan: _MapPlan, ident: int, addr: int) -> BpfMap:
    raw = prog.read(addr, plan.size)
    f = plan.fields
    if _u32(raw, f["id"]) != ident:
        raise BadDataError(f"bpf_map {addr:#x}: id differs from its IDR slot {ident}")
    off, size = plan.name
    mtype = _u32(raw, f["map_type"])
    return BpfMap(
        id=ident,
        address=addr,
        name=raw[off : off + size].split(b"\0", 1)[0].decode("utf-8", "replace"),
        type=plan.types.get(mtype, str(mtype)),
        key_size=_u32(raw, f["key_size"]),
        value_size=_u32(raw, f["value_size"]),
        max_entries=_u32(raw, f["max_entries"]),
        flags=_u32(raw, f["map_flags"]),
        btf=struct.unpack_from("<Q", raw, f["btf"])[0],
        btf_key_type_id=_u32(raw, f["btf_key_type_id"]),
        btf_value_type_id=_u32(raw, f["btf_value_type_id"]),
    )


def bpf_maps(prog: Program) -> list[BpfMap | dict[str, Any]]:
    """Every map: a :class:`BpfMap`, or ``{"id", "error"}`` for one that cannot be read.

    :raises BadDataError: ``map_idr`` cannot be walked.
    """
    plan = _plan(prog)
    if plan is None:
        return []
    out: list[BpfMap | dict[str, Any]] = []
    for ident, addr in idr_for_each(prog, plan.idr, MAX_MAPS):
        try:
            out.append(_read_map(prog, plan, ident, addr))
        except (BadDataError, FaultError, struct.error) as exc:
            out.append({"id": ident, "error": f"unreadable: {exc}"})
    return out


def find_map(prog: Program, name: str) -> BpfMap:
    """The map named ``name`` (or with ID ``name``, all digits).

    :raises MapError: none, or several of that name.
    """
    maps = [m for m in bpf_maps(prog) if isinstance(m, BpfMap)]
    hits = [m for m in maps if (str(m.id) == name if name.isdigit() else m.name == name)]
    if not hits:
        known = ", ".join(sorted({m.name for m in maps})) or "none"
        raise MapError(f"no BPF map {name!r} in the guest (maps: {known})")
    if len(hits) > 1:
        ids = ", ".join(str(m.id) for m in hits)
        raise MapError(f"{len(hits)} BPF maps are named {name!r} (IDs {ids}): give the ID")
    return hits[0]


def _map_btf(prog: Program, m: BpfMap) -> Btf | None:
    if not m.btf or not m.btf_value_type_id:
        return None
    return guest_btf(prog, m.btf)


def _decoded(btf: Btf | None, tid: int, raw: bytes, max_array: int = MAX_ARRAY) -> Any:
    if btf is None or not tid:
        return raw.hex()
    try:
        return decode(btf, tid, raw, max_array=max_array)
    except ValueDecodeError as exc:
        return {"error": f"undecodable: {exc}"}


def _check_sizes(m: BpfMap) -> None:
    if not 0 < m.value_size <= MAX_VALUE_SIZE or not 0 < m.key_size <= MAX_KEY_SIZE:
        raise BadDataError(f"map {m.name}: key {m.key_size} / value {m.value_size} bytes")


def _array_value_addr(prog: Program, plan: _MapPlan, m: BpfMap, index: int) -> int:
    """Address of element ``index``'s value (ARRAY) or of its per-CPU pointer."""
    if plan.array_elem_size is None or plan.array_value is None:
        raise MapError("this kernel's BTF has no struct bpf_array")
    if not 0 <= index < m.max_entries:
        raise MapError(f"map {m.name}: key {index} is not below max_entries {m.max_entries}")
    if m.type == "PERCPU_ARRAY":
        return m.address + plan.array_value + 8 * index
    elem = prog.read_u32(m.address + plan.array_elem_size)
    if elem != (m.value_size + 7) // 8 * 8:
        raise BadDataError(f"map {m.name}: elem_size {elem} for value_size {m.value_size}")
    return m.address + plan.array_value + elem * index


def _percpu_values(prog: Program, m: BpfMap, pptr: int, btf: Btf | None) -> list[Any]:
    if pptr < _KERNEL_HALF:
        raise BadDataError(f"map {m.name}: per-CPU pointer {pptr:#x}")
    out = []
    for off in per_cpu_offsets(prog):
        out.append(_decoded(btf, m.btf_value_type_id, prog.read((pptr + off) & _U64, m.value_size)))
    return out


def _array_entry(
    prog: Program, plan: _MapPlan, m: BpfMap, i: int, btf: Btf | None, max_array: int = MAX_ARRAY
) -> Any:
    addr = _array_value_addr(prog, plan, m, i)
    if m.type == "PERCPU_ARRAY":
        return _percpu_values(prog, m, prog.read_u64(addr), btf)
    return _decoded(btf, m.btf_value_type_id, prog.read(addr, m.value_size), max_array)


def _hash_elems(prog: Program, plan: _MapPlan, m: BpfMap, limit: int) -> list[int]:
    """Addresses of the map's ``struct htab_elem``s, at most ``limit``."""
    if plan.htab_buckets is None or plan.htab_n_buckets is None or plan.bucket_size < 8:
        raise MapError("this kernel's BTF has no struct bpf_htab")
    buckets = prog.read_u64(m.address + plan.htab_buckets)
    n = prog.read_u32(m.address + plan.htab_n_buckets)
    if not 0 < n <= MAX_BUCKETS or n & (n - 1) or buckets < _KERNEL_HALF:
        raise BadDataError(f"map {m.name}: {n} buckets at {buckets:#x}")
    out: list[int] = []
    seen: set[int] = set()
    step = plan.bucket_size
    chunk = max(1, 65536 // step)
    for first in range(0, n, chunk):
        count = min(chunk, n - first)
        raw = prog.read(buckets + first * step, count * step)
        for b in range(count):
            node = struct.unpack_from("<Q", raw, b * step)[0]  # hlist_nulls_head.first
            for _ in range(MAX_CHAIN):
                if node & 1 or node == 0:  # the nulls marker ends a chain
                    break
                if node < _KERNEL_HALF or node in seen:
                    raise BadDataError(f"map {m.name}: element {node:#x} (bad or looping chain)")
                seen.add(node)
                out.append(node - plan.elem_node)
                if len(out) >= limit:
                    return out
                node = prog.read_u64(node + plan.node_next)
            else:
                raise BadDataError(f"map {m.name}: a hash chain longer than {MAX_CHAIN}")
    return out


def _hash_entries(
    prog: Program, plan: _MapPlan, m: BpfMap, btf: Btf | None, key: bytes | None, limit: int
) -> list[dict[str, Any]]:
    kbytes = (m.key_size + 7) // 8 * 8
    percpu = "PERCPU" in m.type
    out = []
    scan = limit if key is None else MAX_HASH_SCAN  # a key lookup walks the table
    for elem in _hash_elems(prog, plan, m, max(1, min(scan, m.max_entries))):
        base = elem + plan.elem_key
        raw_key = prog.read(base, m.key_size)
        if key is not None and raw_key != key:
            continue
        if percpu:
            value: Any = _percpu_values(prog, m, prog.read_u64(base + kbytes), btf)
        else:
            value = _decoded(btf, m.btf_value_type_id, prog.read(base + kbytes, m.value_size))
        out.append({"key": _decoded(btf, m.btf_key_type_id, raw_key), "value": value})
        if key is not None or len(out) >= limit:
            break
    return out


def bpf_map_read(
    prog: Program, m: BpfMap, key: int | bytes | None = None, limit: int = MAX_ENTRIES_READ
) -> list[dict[str, Any]]:
    """Entries of ``m``: ``[{"key", "value"}]`` decoded with its BTF (hex without BTF; a
    list over CPUs for the per-CPU kinds). ``key``: an index (ARRAY kinds) or the key's
    bytes (an int is packed little-endian in ``key_size`` bytes); None reads up to
    ``limit`` entries.

    :raises MapError: a kind not read, or a key that does not fit.
    :raises BadDataError: inconsistent map memory.
    :raises FaultError: unreadable memory.
    """
    plan = _plan(prog)
    if plan is None:
        raise MapError("this kernel's BTF has no struct bpf_map")
    if m.type == "ARENA":
        k = int.from_bytes(key, "little") if isinstance(key, bytes) else key
        if k:
            raise MapError(f"map {m.name} is an arena: its globals are read as key 0")
        values = arena_globals(prog, m)
        if values is None:
            raise MapError(f"arena {m.name}: no program of its object describes its globals")
        return [{"key": 0, "value": values}]
    _check_sizes(m)
    btf = _map_btf(prog, m)
    if m.type in ARRAY_KINDS:
        if isinstance(key, bytes):
            key = int.from_bytes(key, "little")
        keys = range(min(m.max_entries, limit)) if key is None else [key]
        return [{"key": i, "value": _array_entry(prog, plan, m, i, btf)} for i in keys]
    if m.type in HASH_KINDS:
        raw_key = None
        if isinstance(key, int):
            if not 0 <= key < 1 << (8 * m.key_size):
                raise MapError(f"map {m.name}: key {key} does not fit {m.key_size} bytes")
            raw_key = key.to_bytes(m.key_size, "little")
        elif key is not None:
            if len(key) != m.key_size:
                raise MapError(f"map {m.name}: key of {len(key)} bytes, want {m.key_size}")
            raw_key = key
        return _hash_entries(prog, plan, m, btf, raw_key, limit)
    raise MapError(
        f"map {m.name} is a {m.type} map: only ARRAY, PERCPU_ARRAY, HASH and ARENA are read"
    )


def is_global_data(m: BpfMap) -> bool:
    """A libbpf global-data map with BTF: ``<obj>.bss``/``.data``/``.rodata``, or a custom
    section's (``.data.<name>``): one ARRAY element holding a DATASEC."""
    named = m.name.endswith(GLOBAL_SUFFIXES) or m.name.startswith(GLOBAL_SUFFIXES)
    return m.type == "ARRAY" and m.max_entries == 1 and named and bool(m.btf_value_type_id)


def global_values(prog: Program, m: BpfMap, max_array: int = MAX_ARRAY) -> Any:
    """The decoded globals of a global-data map (``<obj>.bss``...) or of an arena, or None
    for other maps."""
    if m.type == "ARENA":
        return arena_globals(prog, m, max_array)
    if not is_global_data(m):
        return None
    plan = _plan(prog)
    assert plan is not None
    _check_sizes(m)
    return _array_entry(prog, plan, m, 0, _map_btf(prog, m), max_array)


def bpf_map_list(
    prog: Program, values: bool = True, max_array: int = LISTING_ARRAY
) -> list[dict[str, Any]]:
    """Every map's listing entry, with ``values`` (the decoded globals, arrays cut to
    ``max_array``) for global-data maps and arenas when asked; a map whose globals cannot
    be read gets ``values_error`` instead."""
    out = []
    for m in bpf_maps(prog):
        if not isinstance(m, BpfMap):
            out.append(m)
            continue
        entry = m.info()
        if values and (is_global_data(m) or m.type == "ARENA"):
            try:
                v = global_values(prog, m, max_array)
                if v is not None:
                    entry["values"] = v
            except (MapError, BadDataError, FaultError, struct.error) as exc:
                entry["values_error"] = str(exc)
        out.append(entry)
    return out


Writer = Callable[[int, bytes], None]


def bpf_map_write(
    prog: Program, m: BpfMap, key: int, path: str, value: int | bool, write: Writer | None = None
) -> dict[str, Any]:
    """Store ``value`` in field ``path`` of ARRAY map ``m``'s element ``key`` and read it
    back: ``{"map", "key", "field", "previous", "value"}``.

    :param write: ``(kernel virtual address, bytes)``; :meth:`Program.write` by default.
    :raises MapError: not an ARRAY map with BTF, no such field, a value out of its range.
    """
    plan = _plan(prog)
    if plan is None:
        raise MapError("this kernel's BTF has no struct bpf_map")
    if m.type != "ARRAY":
        raise MapError(f"map {m.name} is a {m.type} map: only ARRAY values are written")
    _check_sizes(m)
    btf = _map_btf(prog, m)
    if btf is None:
        raise MapError(f"map {m.name} has no BTF: its fields have no names")
    try:
        f = locate(btf, m.btf_value_type_id, path)
        data = encode_int(f, value)
    except ValueDecodeError as exc:
        raise MapError(f"map {m.name}: {exc}") from None
    if f.offset + f.size > m.value_size:
        raise MapError(f"map {m.name}: {path} lies outside the {m.value_size}-byte value")
    addr = _array_value_addr(prog, plan, m, key) + f.offset
    if addr % _PAGE + f.size > _PAGE:
        raise MapError(f"map {m.name}: {path} crosses a page: not written")

    def read_field() -> Any:
        return decode(btf, f.type_id, prog.read(addr, f.size))

    previous = read_field()
    (write or prog.write)(addr, data)
    return {"map": m.name, "key": key, "field": path, "previous": previous, "value": read_field()}
