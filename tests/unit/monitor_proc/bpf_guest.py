"""A synthetic guest with loaded BPF programs and maps, laid out from BTF.

Extends the conftest's :class:`SyntheticGuest` (a 7.2-like kernel in fake memory) with the
kernel types the BPF helpers read (``idr``/``xarray``/``xa_node``, ``bpf_prog``,
``bpf_prog_aux``, ``bpf_map``, ``bpf_array``, ``bpf_htab``, ``htab_elem``, ``btf``) at
offsets of its own (not the real kernel's: the helpers must follow BTF), ``prog_idr`` and
``map_idr`` as real XArrays (nodes, shifts, parents), programs and array values in
vmalloc memory (page-table mapped, physically scattered pages), and a BPF object's own BTF
blob describing a ``.bss`` DATASEC like scx_qmap's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tests.unit.monitor_proc.conftest import CONST, INT, TEXT, TYPEDEF, BtfBuilder, SyntheticGuest

__all__ = ("BSS_VARS", "BpfGuest", "MapSpec", "ProgSpec", "bss_value", "qmap_bss_btf")

PROG_IDR = TEXT + 0x600
MAP_IDR = TEXT + 0x620
STATS_KEY = TEXT + 0x640
VMALLOC_BASE = 0xFFFF_C900_1000_0000
HEAP_PA = 0x3200000  # direct-map objects (slab-like)
PAGES_PA = 0x3A00000  # physical pages behind vmalloc, handed out top-down
XA_CHUNK = 64

# synthetic layouts (bytes): deliberately not the real kernel's
PROG_SIZE, PROG_TYPE, PROG_LEN, PROG_JLEN, PROG_STATS, PROG_AUX = 48, 4, 8, 12, 24, 40
AUX_SIZE, AUX_ID, AUX_PROG, AUX_VERIFIED, AUX_NAME = 96, 8, 16, 28, 40
AUX_USED_CNT, AUX_USED, AUX_BTF = 60, 64, 72
ARENA_SIZE, ARENA_USER, ARENA_KERN = 88, 72, 80
ARENA_USER_START = 1 << 44
ARENA_KERN_VM = 0xFFFF_C900_4000_0000
MAP_SIZE = 72
MAP_OFF = {
    "map_type": 0,
    "key_size": 4,
    "value_size": 8,
    "max_entries": 12,
    "map_flags": 16,
    "id": 20,
    "btf_key_type_id": 24,
    "btf_value_type_id": 28,
    "btf": 32,
    "name": 48,
}
ARRAY_ELEM, ARRAY_VALUE = 72, 88
HTAB_BUCKETS, HTAB_NBUCKETS, BUCKET_SIZE = 72, 80, 16
ELEM_NODE, ELEM_KEY = 8, 40  # hash_node not first, to prove the offset is used
BTFOBJ_SIZE, BTFOBJ_DATA, BTFOBJ_SIZE_OFF, BTFOBJ_ID, BTFOBJ_BASE = 40, 8, 0, 4, 24
PROG_TYPES = {
    "BPF_PROG_TYPE_UNSPEC": 0,
    "BPF_PROG_TYPE_TRACING": 26,
    "BPF_PROG_TYPE_STRUCT_OPS": 27,
}
MAP_TYPES = {
    "BPF_MAP_TYPE_UNSPEC": 0,
    "BPF_MAP_TYPE_HASH": 1,
    "BPF_MAP_TYPE_ARRAY": 2,
    "BPF_MAP_TYPE_PERCPU_HASH": 5,
    "BPF_MAP_TYPE_PERCPU_ARRAY": 6,
    "BPF_MAP_TYPE_LRU_HASH": 9,
    "BPF_MAP_TYPE_RINGBUF": 27,
    "BPF_MAP_TYPE_ARENA": 33,
}

#: qmap-like .bss: (name, size, value)
BSS_VARS = (
    ("nr_enqueued", 8, 1234),
    ("nr_dispatched", 8, 1200),
    ("nr_reenqueued", 8, 3),
    ("test_error_cnt", 4, 0),
    ("stall_user_nth", 4, 0),
)


@dataclass
class ProgSpec:
    id: int
    name: str
    type: str = "STRUCT_OPS"
    insns: int = 100
    verified: int = 250
    run_cnt: tuple[int, ...] = (5, 7)
    run_ns: tuple[int, ...] = (1000, 3000)
    used_maps: tuple[int, ...] = ()  # map IDs
    btf: int = 0  # BTF object ID (see BpfGuest.btf_object) for aux->btf


@dataclass
class MapSpec:
    id: int
    name: str
    type: str
    key_size: int = 4
    value_size: int = 8
    max_entries: int = 1
    values: dict[bytes | int, bytes | list[bytes]] = field(default_factory=dict)
    btf: bytes | None = None  # the BPF object's BTF blob
    key_type: int = 0
    value_type: int = 0
    n_buckets: int = 4
    vmalloc: bool = True
    arena_data: bytes = b""  # ARENA: the globals libbpf placed at the arena's end


def qmap_bss_btf() -> tuple[bytes, int, int, dict[str, int]]:
    """A BPF object's BTF: ``.bss`` DATASEC of :data:`BSS_VARS` plus a struct and an array
    variable; (blob, datasec id, u32 id, {var: offset})."""
    b = BtfBuilder()
    u64 = b.ref(TYPEDEF, "u64", b.int("unsigned long long", 8))
    u32 = b.ref(TYPEDEF, "u32", b.int("unsigned int", 4))
    s32 = b.int("int", 4, signed=True)
    boolean = b.add(INT, "_Bool", 0, 1, trailer=struct.pack("<I", (4 << 24) | 8))
    char = b.int("char", 1, signed=True)
    entries, offsets, off = [], {}, 0
    for name, size, _ in BSS_VARS:
        entries.append((b.var(name, u64 if size == 8 else u32), off, size))
        offsets[name] = off
        off += size
    stats = b.struct(
        "qmap_stats",
        12,
        [("lo", s32, 0, 0), ("hi", s32, 32, 0), ("flag", boolean, 64, 0), ("bits", u32, 72, 3)],
    )
    entries.append((b.var("stats", stats), off, 12))
    offsets["stats"] = off
    off += 16
    arr = b.array(b.ref(CONST, "", u64), u32, 4)
    entries.append((b.var("cpu_cnt", arr), off, 32))
    offsets["cpu_cnt"] = off
    off += 32
    entries.append((b.var("comm", b.array(char, u32, 8)), off, 8))
    offsets["comm"] = off
    off += 8
    sec = b.datasec(".bss", off, entries)
    return b.blob(), sec, u32, offsets | {"_size": off}


class BpfGuest(SyntheticGuest):
    """:class:`SyntheticGuest` plus BPF state. ``progs``/``maps`` are placed in the IDRs
    by ID; ``stats`` turns ``bpf_stats_enabled_key`` on."""

    def __init__(
        self,
        progs: list[ProgSpec] | None = None,
        maps: list[MapSpec] | None = None,
        *,
        stats: bool = True,
        ncpus: int = 2,
        **kw,
    ) -> None:
        self._heap = HEAP_PA
        self._pages = PAGES_PA
        self._vnext = VMALLOC_BASE
        super().__init__(BtfBuilder(), ncpus=ncpus, **kw)
        self.syms |= {"prog_idr": PROG_IDR, "map_idr": MAP_IDR, "bpf_stats_enabled_key": STATS_KEY}
        self.write_va(STATS_KEY, struct.pack("<i", 1 if stats else 0))
        self.prog_addr: dict[int, int] = {}
        self.map_addr: dict[int, int] = {}
        self.value_addr: dict[tuple[int, int], int] = {}
        self.btf_addr: dict[int, int] = {}
        self.xa_nodes: list[int] = []
        for m in maps or []:
            self.map_addr[m.id] = self._map(m)
        for p in progs or []:
            self.prog_addr[p.id] = self._prog(p)
        self.idr(PROG_IDR, self.prog_addr)
        self.idr(MAP_IDR, self.map_addr)

    # -- BTF of the kernel ----------------------------------------------------------------

    def _scx_btf(self, b: BtfBuilder, u32: int, u64: int):  # noqa: ANN202
        out = super()._scx_btf(b, u32, u64)
        s32 = b.int("int", 4, signed=True)
        u8 = b.int("unsigned char", 1)
        char = b.int("char", 1, signed=True)
        vp = b.ptr(0)
        atomic = b.ref(TYPEDEF, "atomic_t", b.struct("", 4, [("counter", s32, 0)]))
        b.struct("static_key", 16, [("enabled", atomic, 0)])
        xa = b.struct(
            "xarray", 16, [("xa_lock", u32, 0), ("xa_flags", u32, 32), ("xa_head", vp, 64)]
        )
        b.struct("idr", 24, [("idr_rt", xa, 0), ("idr_base", u32, 128), ("idr_next", u32, 160)])
        b.struct(
            "xa_node",
            40 + 8 * XA_CHUNK + 16,
            [
                ("shift", u8, 0),
                ("offset", u8, 8),
                ("count", u8, 16),
                ("nr_values", u8, 24),
                ("parent", vp, 64),
                ("array", vp, 128),
                ("slots", b.array(vp, u32, XA_CHUNK), 320),
            ],
        )
        ptype = b.enum("bpf_prog_type", list(PROG_TYPES.items()))
        mtype = b.enum("bpf_map_type", list(MAP_TYPES.items()))
        name = b.array(char, u32, 16)
        b.struct(
            "bpf_prog_stats",
            32,
            [("cnt", u64, 0), ("nsecs", u64, 64), ("misses", u64, 128)],
        )
        b.struct(
            "bpf_prog",
            PROG_SIZE,
            [
                ("pages", b.int("short unsigned int", 2), 0),
                ("type", ptype, PROG_TYPE * 8),
                ("len", u32, PROG_LEN * 8),
                ("jited_len", u32, PROG_JLEN * 8),
                ("stats", vp, PROG_STATS * 8),
                ("aux", vp, PROG_AUX * 8),
            ],
        )
        b.struct(
            "bpf_prog_aux",
            AUX_SIZE,
            [
                ("id", u32, AUX_ID * 8),
                ("prog", vp, AUX_PROG * 8),
                ("verified_insns", u32, AUX_VERIFIED * 8),
                ("name", name, AUX_NAME * 8),
                ("used_map_cnt", u32, AUX_USED_CNT * 8),
                ("used_maps", vp, AUX_USED * 8),
                ("btf", vp, AUX_BTF * 8),
            ],
        )
        b.struct("vm_struct", 24, [("next", vp, 0), ("addr", vp, 64), ("size", u64, 128)])
        members = [(k, mtype if k == "map_type" else u32, o * 8) for k, o in MAP_OFF.items()]
        members = [(k, vp if k == "btf" else name if k == "name" else t, o) for k, t, o in members]
        bpf_map = b.struct("bpf_map", MAP_SIZE, members)
        b.struct(
            "bpf_arena",
            ARENA_SIZE,
            [
                ("map", bpf_map, 0),
                ("user_vm_start", u64, ARENA_USER * 8),
                ("kern_vm", vp, ARENA_KERN * 8),
            ],
        )
        flex = b.array(char, u32, 0)
        empty = b.struct("", 0, [])
        inner = b.struct("", 0, [("__empty_value", empty, 0), ("value", flex, 0)])
        union = b.struct("", 0, [("", inner, 0), ("pptrs", b.array(vp, u32, 0), 0)], union=True)
        b.struct(
            "bpf_array",
            ARRAY_VALUE,
            [
                ("map", bpf_map, 0),
                ("elem_size", u32, ARRAY_ELEM * 8),
                ("index_mask", u32, (ARRAY_ELEM + 4) * 8),
                ("", union, ARRAY_VALUE * 8),
            ],
        )
        b.struct("bucket", 8, [("unrelated", u64, 0)])  # a same-named struct elsewhere
        fwd = len(b.records) + 2
        nnode = b.struct("hlist_nulls_node", 16, [("next", b.ptr(fwd), 0), ("pprev", vp, 64)])
        assert nnode == fwd
        nhead = b.struct("hlist_nulls_head", 8, [("first", b.ptr(nnode), 0)])
        bucket = b.struct("bucket", BUCKET_SIZE, [("head", nhead, 0), ("raw_lock", u32, 64)])
        b.struct(
            "bpf_htab",
            88,
            [
                ("map", bpf_map, 0),
                ("buckets", b.ptr(bucket), HTAB_BUCKETS * 8),
                ("n_buckets", u32, HTAB_NBUCKETS * 8),
                ("elem_size", u32, (HTAB_NBUCKETS + 4) * 8),
            ],
        )
        node_u = b.struct("", 16, [("hash_node", nnode, 0)], union=True)
        b.struct(
            "htab_elem",
            ELEM_KEY,
            [("hash", u32, 0), ("", node_u, ELEM_NODE * 8), ("key", flex, ELEM_KEY * 8)],
        )
        b.struct(
            "btf",
            BTFOBJ_SIZE,
            [
                ("data_size", u32, BTFOBJ_SIZE_OFF * 8),
                ("id", u32, BTFOBJ_ID * 8),
                ("data", vp, BTFOBJ_DATA * 8),
                ("base_btf", vp, BTFOBJ_BASE * 8),
            ],
        )
        return out

    # -- memory -----------------------------------------------------------------------------

    def alloc(self, size: int, align: int = 64) -> int:
        """Direct-map memory (kmalloc-like): its kernel virtual address."""
        self._heap = -(-self._heap // align) * align
        pa, self._heap = self._heap, self._heap + size
        assert self._heap < PAGES_PA - 0x400000
        return self.pob + pa

    def vmalloc(self, size: int) -> int:
        """Virtually contiguous pages on physically scattered ones (top-down, every other)."""
        va = self._vnext
        npages = -(-size // 4096)
        for i in range(npages):
            self._pages -= 0x2000
            pt = self._path(va + i * 4096, 12)
            self._set(pt, ((va + i * 4096) >> 12) & 0x1FF, self._pages | 3)
        self._vnext += (npages + 1) * 4096  # a guard page
        return va

    def write_vm(self, va: int, data: bytes) -> None:
        """Write through the synthetic page tables (vmalloc addresses too)."""
        done = 0
        while done < len(data):
            n = min(len(data) - done, 4096 - ((va + done) & 0xFFF))
            self.mem.write(self._walk(va + done), data[done : done + n])
            done += n

    def read_vm(self, va: int, size: int) -> bytes:
        out = b""
        while len(out) < size:
            n = min(size - len(out), 4096 - ((va + len(out)) & 0xFFF))
            out += self.mem.read(self._walk(va + len(out)), n)
        return out

    def _walk(self, va: int) -> int:
        if va >= 0xFFFF_FFFF_8000_0000 or self.pob <= va < self.pob + (1 << 40):
            return self.pa(va)
        pt = self._path(va, 12)
        pte = struct.unpack("<Q", self.mem.read(pt + 8 * ((va >> 12) & 0x1FF), 8))[0]
        assert pte & 1, hex(va)
        return (pte & 0x000F_FFFF_FFFF_F000) | (va & 0xFFF)

    write_any = write_vm

    # -- XArrays ----------------------------------------------------------------------------

    def idr(self, idr: int, entries: dict[int, int], base: int = 0) -> None:
        """Fill ``struct idr`` at ``idr`` with ``{id: pointer}``."""
        self.write_va(idr + 16, struct.pack("<II", base, max(entries, default=0) + 1))
        self.write_u64(idr + 8, self.xarray({i - base: p for i, p in entries.items()}))

    def xarray(self, entries: dict[int, int]) -> int:
        """The ``xa_head`` of an XArray holding ``entries`` (index -> pointer)."""
        if not entries:
            return 0
        top = max(entries)
        if top == 0:
            return entries[0]
        shift = 0
        while top >> shift >= XA_CHUNK:
            shift += 6
        return self._node(entries, shift, 0, 0, 0) | 2

    def _node(
        self, entries: dict[int, int], shift: int, base: int, parent: int, offset: int
    ) -> int:
        node = self.alloc(40 + 8 * XA_CHUNK + 16)
        self.xa_nodes.append(node)
        slots = [0] * XA_CHUNK
        for i in range(XA_CHUNK):
            lo, hi = base + (i << shift), base + ((i + 1) << shift)
            inside = {k: v for k, v in entries.items() if lo <= k < hi}
            if not inside:
                continue
            slots[i] = inside[lo] if shift == 0 else self._node(inside, shift - 6, lo, node, i) | 2
        self.write_va(node, struct.pack("<BBBB4xQQ", shift, offset, len(entries), 0, parent, 0))
        self.write_va(node + 40, struct.pack(f"<{XA_CHUNK}Q", *slots))
        return node

    # -- objects ----------------------------------------------------------------------------

    def _prog(self, p: ProgSpec) -> int:
        addr = self.vmalloc(PROG_SIZE)
        aux = self.alloc(AUX_SIZE)
        stats = self.percpu_alloc(32)
        for cpu in range(self.ncpus):
            self.write_va(
                self.percpu_addr(stats, cpu),
                struct.pack("<QQ", p.run_cnt[cpu % len(p.run_cnt)], p.run_ns[cpu % len(p.run_ns)]),
            )
        raw = bytearray(PROG_SIZE)
        struct.pack_into("<I", raw, PROG_TYPE, PROG_TYPES[f"BPF_PROG_TYPE_{p.type}"])
        struct.pack_into("<II", raw, PROG_LEN, p.insns, p.insns * 8)
        struct.pack_into("<Q", raw, PROG_STATS, stats)
        struct.pack_into("<Q", raw, PROG_AUX, aux)
        self.write_vm(addr, bytes(raw))
        a = bytearray(AUX_SIZE)
        struct.pack_into("<I", a, AUX_ID, p.id)
        struct.pack_into("<Q", a, AUX_PROG, addr)
        struct.pack_into("<I", a, AUX_VERIFIED, p.verified)
        a[AUX_NAME : AUX_NAME + 16] = p.name.encode()[:15].ljust(16, b"\0")
        if p.used_maps:
            used = self.alloc(8 * len(p.used_maps))
            self.write_va(
                used, struct.pack(f"<{len(p.used_maps)}Q", *(self.map_addr[i] for i in p.used_maps))
            )
            struct.pack_into("<IQ", a, AUX_USED_CNT, len(p.used_maps), used)
        if p.btf:
            struct.pack_into("<Q", a, AUX_BTF, self.btf_addr[p.btf])
        self.write_va(aux, bytes(a))
        return addr

    def percpu_alloc(self, size: int) -> int:
        """A per-CPU allocation: the pointer the kernel stores (&area - per-cpu base)."""
        self._pcpu = getattr(self, "_pcpu", 0x4000)
        off, self._pcpu = self._pcpu, self._pcpu + max(64, size)
        assert self._pcpu < 0x10000
        return self.syms["__per_cpu_start"] + off

    def percpu_addr(self, ptr: int, cpu: int) -> int:
        return ptr - self.syms["__per_cpu_start"] + self.pob + 0x2800000 + cpu * 0x10000

    def btf_object(self, ident: int, blob: bytes, base: int = 0) -> int:
        data = self.vmalloc(len(blob))
        self.write_vm(data, blob)
        obj = self.alloc(BTFOBJ_SIZE)
        raw = bytearray(BTFOBJ_SIZE)
        struct.pack_into("<II", raw, BTFOBJ_SIZE_OFF, len(blob), ident)
        struct.pack_into("<Q", raw, BTFOBJ_DATA, data)
        struct.pack_into("<Q", raw, BTFOBJ_BASE, base)
        self.write_va(obj, bytes(raw))
        self.btf_addr[ident] = obj
        return obj

    def _map_header(self, m: MapSpec, btf: int) -> bytes:
        raw = bytearray(MAP_SIZE)
        vals = {
            "map_type": MAP_TYPES[f"BPF_MAP_TYPE_{m.type}"],
            "key_size": m.key_size,
            "value_size": m.value_size,
            "max_entries": m.max_entries,
            "map_flags": 0x400,
            "id": m.id,
            "btf_key_type_id": m.key_type,
            "btf_value_type_id": m.value_type,
        }
        for k, v in vals.items():
            struct.pack_into("<I", raw, MAP_OFF[k], v)
        struct.pack_into("<Q", raw, MAP_OFF["btf"], btf)
        raw[MAP_OFF["name"] : MAP_OFF["name"] + 16] = m.name.encode()[:15].ljust(16, b"\0")
        return bytes(raw)

    def _map(self, m: MapSpec) -> int:
        btf = self.btf_object(100 + m.id, m.btf) if m.btf is not None else 0
        elem = -(-m.value_size // 8) * 8
        if m.type == "ARENA":
            return self._arena(m, btf)
        if m.type in ("ARRAY", "PERCPU_ARRAY"):
            slot = 8 if m.type == "PERCPU_ARRAY" else elem
            size = ARRAY_VALUE + slot * m.max_entries
            addr = self.vmalloc(size) if m.vmalloc else self.alloc(size)
            self.write_any(addr, self._map_header(m, btf))
            self.write_any(addr + ARRAY_ELEM, struct.pack("<II", elem, 0xFFFF))
            for i in range(m.max_entries):
                v = m.values.get(i, b"\0" * m.value_size)
                at = addr + ARRAY_VALUE + slot * i
                if m.type == "PERCPU_ARRAY":
                    pp = self.percpu_alloc(m.value_size)
                    self.write_any(at, struct.pack("<Q", pp))
                    for cpu in range(self.ncpus):
                        vv = v[cpu] if isinstance(v, list) else v
                        self.write_va(self.percpu_addr(pp, cpu), vv)
                else:
                    assert isinstance(v, bytes)
                    self.write_any(at, v)
                    self.value_addr[(m.id, i)] = at
            return addr
        addr = self.alloc(88)
        self.write_va(addr, self._map_header(m, btf))
        buckets = self.alloc(BUCKET_SIZE * m.n_buckets)
        self.write_va(addr + HTAB_BUCKETS, struct.pack("<QI", buckets, m.n_buckets))
        heads = {b: (b << 1) | 1 for b in range(m.n_buckets)}  # nulls markers
        kround = -(-m.key_size // 8) * 8
        for n, (k, v) in enumerate(m.values.items()):
            assert isinstance(k, bytes)
            e = self.alloc(ELEM_KEY + kround + 8 + m.value_size)
            bucket = n % m.n_buckets
            self.write_va(e + ELEM_NODE, struct.pack("<Q", heads[bucket]))
            heads[bucket] = e + ELEM_NODE
            self.write_va(e + ELEM_KEY, k)
            if "PERCPU" in m.type:
                pp = self.percpu_alloc(m.value_size)
                self.write_va(e + ELEM_KEY + kround, struct.pack("<Q", pp))
                for cpu in range(self.ncpus):
                    vv = v[cpu] if isinstance(v, list) else v
                    self.write_va(self.percpu_addr(pp, cpu), vv)
            else:
                assert isinstance(v, bytes)
                self.write_va(e + ELEM_KEY + kround, v)
        for b, head in heads.items():
            self.write_va(buckets + BUCKET_SIZE * b, struct.pack("<Q", head))
        return addr

    def _arena(self, m: MapSpec, btf: int) -> int:
        """bpf_arena + vm_struct; the globals' pages mapped where the kernel maps them."""
        addr = self.alloc(ARENA_SIZE)
        self.write_va(addr, self._map_header(m, btf))
        vm = self.alloc(24)
        self.write_va(vm + 8, struct.pack("<Q", ARENA_KERN_VM))
        self.write_va(addr + ARENA_USER, struct.pack("<QQ", ARENA_USER_START, vm))
        size = -(-len(m.arena_data) // 4096) * 4096
        off = m.max_entries * 4096 - size
        kva = ARENA_KERN_VM + (1 << 15) + ((ARENA_USER_START + off) & 0xFFFF_FFFF)
        for i in range(0, size, 4096):
            self._pages -= 0x2000
            pt = self._path(kva + i, 12)
            self._set(pt, ((kva + i) >> 12) & 0x1FF, self._pages | 3)
        self.write_vm(kva, m.arena_data)
        return addr

    def writable_program(self):  # noqa: ANN201
        from monitor_proc.btf import Btf
        from monitor_proc.memory import ReaderMemory
        from monitor_proc.program import Program
        from monitor_proc.symbols import SymbolTable
        from tests.unit.monitor_proc.conftest import BANNER

        syms = SymbolTable(((n, a, "D") for n, a in self.syms.items()), "synthetic")
        return Program(
            None,
            ReaderMemory(self.mem.read, write=self.mem.write),
            symbols=syms,
            btf=Btf(self.btf_blob),
            probe=(self.syms["linux_banner"], BANNER),
        )


def bss_value(overrides: dict[str, int] | None = None) -> bytes:
    """The ``.bss`` bytes of :func:`qmap_bss_btf` with :data:`BSS_VARS`' values."""
    _, _, _, offsets = qmap_bss_btf()
    raw = bytearray(offsets["_size"])
    vals = {n: v for n, _, v in BSS_VARS} | (overrides or {})
    for name, size, _ in BSS_VARS:
        raw[offsets[name] : offsets[name] + size] = vals[name].to_bytes(size, "little")
    o = offsets["stats"]
    struct.pack_into("<iiBB", raw, o, -5, 7, 1, 0b101)
    o = offsets["cpu_cnt"]
    struct.pack_into("<4Q", raw, o, 1, 2, 3, 4)
    raw[offsets["comm"] : offsets["comm"] + 5] = b"qmap\0"
    return bytes(raw)
