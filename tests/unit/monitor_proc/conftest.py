"""Builders for synthetic kernels: BTF blobs, kallsyms tables and guest memory images."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.framework.prereq import missing

# -- BTF --------------------------------------------------------------------------------

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)


class BtfBuilder:
    """Appends BTF type records; each add returns the new type id."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.records: list[bytes] = []

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(
        self,
        kind: int,
        name: str,
        vlen: int,
        size_or_type: int,
        kflag: bool = False,
        trailer: bytes = b"",
    ) -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.records.append(struct.pack("<III", self.s(name), info, size_or_type) + trailer)
        return len(self.records)

    def int(self, name: str, size: int, signed: bool = False) -> int:
        return self.add(INT, name, 0, size, trailer=struct.pack("<I", (signed << 24) | size * 8))

    def ptr(self, t: int) -> int:
        return self.add(PTR, "", 0, t)

    def array(self, elem: int, index: int, n: int) -> int:
        return self.add(ARRAY, "", 0, 0, trailer=struct.pack("<III", elem, index, n))

    def struct(self, name: str, size: int, members: list[tuple], union: bool = False) -> int:
        """members: (name, type, bit_offset[, bitfield_size]); any bitfield sets kind_flag."""
        kflag = any(len(m) > 3 and m[3] for m in members)
        body = b""
        for m in members:
            off = (m[3] << 24 | m[2]) if kflag else m[2]
            body += struct.pack("<III", self.s(m[0]), m[1], off)
        return self.add(UNION if union else STRUCT, name, len(members), size, kflag, body)

    def enum(self, name: str, values: list[tuple[str, int]], signed: bool = False) -> int:
        body = b"".join(struct.pack("<Ii", self.s(n), v) for n, v in values)
        return self.add(ENUM, name, len(values), 4, signed, body)

    def enum64(self, name: str, values: list[tuple[str, int]], signed: bool = False) -> int:
        body = b"".join(
            struct.pack("<III", self.s(n), v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF)
            for n, v in values
        )
        return self.add(ENUM64, name, len(values), 8, signed, body)

    def ref(self, kind: int, name: str, t: int) -> int:
        """FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, TYPE_TAG."""
        return self.add(kind, name, 0, t)

    def func_proto(self, ret: int, params: list[tuple[str, int]]) -> int:
        body = b"".join(struct.pack("<II", self.s(n), t) for n, t in params)
        return self.add(FUNC_PROTO, "", len(params), ret, trailer=body)

    def var(self, name: str, t: int, linkage: int = 1) -> int:
        return self.add(VAR, name, 0, t, trailer=struct.pack("<I", linkage))

    def datasec(self, name: str, size: int, entries: list[tuple[int, int, int]]) -> int:
        body = b"".join(struct.pack("<III", *e) for e in entries)
        return self.add(DATASEC, name, len(entries), size, trailer=body)

    def float(self, name: str, size: int) -> int:
        return self.add(FLOAT, name, 0, size)

    def decl_tag(self, name: str, t: int, component: int) -> int:
        return self.add(DECL_TAG, name, 0, t, trailer=struct.pack("<i", component))

    def blob(self) -> bytes:
        types = b"".join(self.records)
        hdr = struct.pack(
            "<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings)
        )
        return hdr + types + bytes(self.strings)


@pytest.fixture
def btf_builder() -> BtfBuilder:
    return BtfBuilder()


# -- kallsyms ---------------------------------------------------------------------------


def compress_tokens() -> list[bytes]:
    """256 tokens: printable bytes stand for themselves, the other codes for substrings."""
    extra = [
        b"sched_",
        b"per_cpu",
        b"__",
        b"init_",
        b"sym_",
        b"_offset",
        b"run",
        b"queue",
        b"base",
        b"page",
        b"phys",
        b"text",
        b"top_pgt",
        b"nr_",
        b"cpu",
        b"ids",
    ]
    tokens = []
    for b in range(256):
        if 0x21 <= b <= 0x7E:
            tokens.append(bytes([b]))
        else:
            tokens.append(extra[b % len(extra)] if b < len(extra) else b"t%02x" % b)
    return tokens


def compress(name: bytes, multi: dict[int, list[tuple[bytes, int]]]) -> bytes:
    """Greedy longest-token compression of one ``type+name``; ``multi``: first byte ->
    (token, code), longest first."""
    out, i = bytearray(), 0
    while i < len(name):
        for t, c in multi.get(name[i], ()):
            if name.startswith(t, i):
                out.append(c)
                i += len(t)
                break
        else:
            out.append(name[i])
            i += 1
    return bytes(out)


def _align(buf: bytearray, a: int) -> None:
    while len(buf) % a:
        buf.append(0)


def build_kallsyms(
    symbols: list[tuple[str, int, str]],
    *,
    layout: str,
    base_va: int,
    align: int = 4,
    lead: bytes = b"some rodata before\0",
) -> bytes:
    """Emit tables in one of the orders/encodings scripts/kallsyms.c has used.

    layout: "pcrel" (7.x), "relbase" (6.x: offsets + base after the token index),
    "old_relbase" (offsets, base, num_syms first), "abs_percpu" (like relbase, with
    small absolute per-CPU values), "seqs" (6.2: seqs_of_names between markers and tokens).
    """
    tokens = compress_tokens()
    multi: dict[int, list[tuple[bytes, int]]] = {}
    for c, t in sorted(enumerate(tokens), key=lambda e: -len(e[1])):
        if len(t) > 1:
            multi.setdefault(t[0], []).append((t, c))
    names, markers = bytearray(), []
    for i, (name, _addr, typ) in enumerate(symbols):
        if i % 256 == 0:
            markers.append(len(names))
        c = compress((typ + name).encode(), multi)
        names += (
            bytes([len(c)]) if len(c) < 0x80 else bytes([(len(c) & 0x7F) | 0x80, len(c) >> 7])
        ) + c
    n = len(symbols)
    rb = min(a for _, a, _ in symbols if a >= 1 << 63)
    buf = bytearray(lead)
    _align(buf, 8)

    def emit_offsets(pcrel: bool) -> None:
        for _, addr, _ in symbols:
            if pcrel:
                buf.extend(struct.pack("<i", addr - (base_va + len(buf))))
            elif layout == "abs_percpu":
                buf.extend(struct.pack("<i", addr if addr < 1 << 31 else rb - 1 - addr))
            else:
                buf.extend(struct.pack("<I", addr - rb))

    if layout == "old_relbase":
        emit_offsets(False)
        _align(buf, 8)
        buf += struct.pack("<Q", rb)
    _align(buf, align)
    buf += struct.pack("<I", n)
    _align(buf, align)
    buf += names
    _align(buf, align)
    buf += b"".join(struct.pack("<I", m) for m in markers)
    if layout == "seqs":
        _align(buf, align)
        buf += b"".join(struct.pack(">I", i)[1:] for i in range(n))
    _align(buf, align)
    index, off = [], 0
    for t in tokens:
        index.append(off)
        buf += t + b"\0"
        off += len(t) + 1
    _align(buf, 2 if align < 8 else 8)
    buf += struct.pack("<256H", *index)
    if layout in ("pcrel", "relbase", "abs_percpu", "seqs"):
        _align(buf, align)
        emit_offsets(layout == "pcrel")
        if layout != "pcrel":
            _align(buf, 8)
            buf += struct.pack("<Q", rb)
    buf += b"\0" * 64
    return bytes(buf)


def symbol_list(count: int = 700) -> list[tuple[str, int, str]]:
    """Sorted-by-address symbols including the ones the monitor requires."""
    text = 0xFFFFFFFF81000000
    named = [
        "_text",
        "runqueues",
        "__per_cpu_offset",
        "page_offset_base",
        "phys_base",
        "init_top_pgt",
        "nr_cpu_ids",
        "linux_banner",
    ]
    syms = [(name, text + 0x40 * i, "T" if i == 0 else "D") for i, name in enumerate(named)]
    for i in range(count - len(named)):
        syms.append((f"sym_{i:05d}_sched_{'x' * (i % 150)}", text + 0x1000 + 0x10 * i, "t"))
    return syms


@pytest.fixture
def kallsyms_builder():
    return build_kallsyms


@pytest.fixture
def sample_symbols():
    return symbol_list


# -- the real development kernel ---------------------------------------------------------


def find_kernel_dir() -> tuple[Path, Path | None] | None:
    """(vmlinux, vmlinuz or None): ~/.cache/schedlab/kernels/* first, /root/dev-kernel next."""
    from schedlab_shared.cache import kernels_dir

    def scx_first(d: Path) -> tuple[bool, str]:
        # the default kernel (sched_ext) before any other cached one (e.g. a 6.12 without it)
        cfg = d / "config"
        return (not (cfg.is_file() and "CONFIG_SCHED_CLASS_EXT=y" in cfg.read_text()), d.name)

    for d in sorted(kernels_dir().glob("*"), key=scx_first) if kernels_dir().is_dir() else []:
        if (d / "vmlinux").is_file():
            z = d / "vmlinuz"
            return d / "vmlinux", z if z.is_file() else None
    dev = Path("/root/dev-kernel/vmlinux")
    if dev.is_file():
        zs = sorted(Path("/root/dev-kernel/x/usr/lib/modules").glob("*/vmlinuz"))
        return dev, zs[0] if zs else None
    return None


@pytest.fixture(scope="session")
def real_vmlinux() -> Path:
    found = find_kernel_dir()
    if found is None:
        missing("no kernel in ~/.cache/schedlab/kernels or /root/dev-kernel")
    return found[0]


# -- a synthetic guest kernel in memory ---------------------------------------------------

TEXT = 0xFFFF_FFFF_8100_0000
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
VMALLOC_VA = 0xFFFF_C900_0000_3000
BANNER = b"Linux version 7.2.0-synthetic (schedlab) #1 SMP PREEMPT_DYNAMIC\0"
_P, _RW, _PS = 1, 2, 0x80


class SyntheticGuest:
    """A fake x86_64 kernel: image at 16 MiB + phys_base, init_top_pgt (4 or 5 levels) mapping
    the image, the direct map and one vmalloc page, and per-CPU runqueues with a current task.
    """

    def __init__(
        self,
        btf_builder: BtfBuilder,
        *,
        levels: int = 4,
        phys_base: int = 0,
        ncpus: int = 2,
        mem_size: int = 64 << 20,
        scx: bool = True,
        h_nr_name: str = "h_nr_queued",
        old_task: bool = False,
    ) -> None:
        from tests.framework.fake_memory import FakeGuestMemory

        self.levels, self.phys_base, self.ncpus = levels, phys_base, ncpus
        self.pob = 0xFFFF_8880_0000_0000 if levels == 4 else 0xFF11_0000_0000_0000
        self.mem = FakeGuestMemory(mem_size)
        self.syms = {
            "_text": TEXT,
            "linux_banner": TEXT + 0x100,
            "phys_base": TEXT + 0x200,
            "page_offset_base": TEXT + 0x208,
            "nr_cpu_ids": TEXT + 0x210,
            "__cpu_possible_mask": TEXT + 0x218,
            "__cpu_online_mask": TEXT + 0x220,
            "__per_cpu_offset": TEXT + 0x300,
            "init_top_pgt": TEXT + 0x10000,
            "__per_cpu_start": TEXT + 0x100000,
            "runqueues": TEXT + 0x100800,
            "init_task": TEXT + 0x400,
        }
        self.tasks = [self.syms["init_task"]]
        self._next_table = TEXT + 0x11000
        self.btf_blob = self._btf(btf_builder, scx, h_nr_name, old_task)
        self.write_va(self.syms["linux_banner"], BANNER)
        self.write_u64(self.syms["phys_base"], phys_base)
        self.write_u64(self.syms["page_offset_base"], self.pob)
        self.write_va(self.syms["nr_cpu_ids"], struct.pack("<I", ncpus))
        self.write_u64(self.syms["__cpu_possible_mask"], (1 << ncpus) - 1)
        self.write_u64(self.syms["__cpu_online_mask"], 1)  # only the boot CPU online
        self._page_tables(mem_size)
        for cpu in range(ncpus):
            self._cpu(cpu)
        self._link_tasks()
        if scx:
            self.syms |= {"scx_enable_state_var": TEXT + 0x230, "scx_root": TEXT + 0x238}
            self.write_va(self.syms["scx_enable_state_var"], struct.pack("<i", 1))
            self.write_u64(self.syms["scx_root"], self.pob + 0x2600000)
            self.write_va(self.pob + 0x2600000 + 64 + 8, b"simple\0")

    # memory helpers
    def pa(self, va: int) -> int:
        if va >= START_KERNEL_MAP:
            return va - START_KERNEL_MAP + self.phys_base
        return va - self.pob

    def write_va(self, va: int, data: bytes) -> None:
        self.mem.write(self.pa(va), data)

    def write_u64(self, va: int, v: int) -> None:
        self.write_va(va, struct.pack("<Q", v))

    def _table(self) -> int:
        va, self._next_table = self._next_table, self._next_table + 0x1000
        return self.pa(va)

    def _set(self, table_pa: int, idx: int, value: int) -> None:
        self.mem.write(table_pa + 8 * idx, struct.pack("<Q", value))

    def _path(self, va: int, depth_to: int) -> int:
        """Walk/create tables for ``va`` down to the level whose entries map 2^depth_to bytes."""
        table = self.pa(self.syms["init_top_pgt"])
        shift = 39 if self.levels == 4 else 48
        while shift > depth_to:
            idx = (va >> shift) & 0x1FF
            raw = struct.unpack("<Q", self.mem.read(table + 8 * idx, 8))[0]
            if not raw & _P:
                raw = self._table() | _P | _RW
                self._set(table, idx, raw)
            table = raw & 0x000F_FFFF_FFFF_F000
            shift -= 9
        return table

    def _page_tables(self, mem_size: int) -> None:
        pd = self._path(START_KERNEL_MAP, 21)
        for i in range((mem_size - self.phys_base) >> 21):
            self._set(pd, i, (self.phys_base + (i << 21)) | _P | _RW | _PS)
        pdpt = self._path(self.pob, 30)
        self._set(pdpt, 0, 0 | _P | _RW | _PS)  # 1 GiB page at 0
        pt = self._path(VMALLOC_VA, 12)
        self._set(pt, (VMALLOC_VA >> 12) & 0x1FF, 0x3000000 | _P | _RW)
        self.mem.write(0x3000000, b"vmalloc page")

    def _btf(self, b: BtfBuilder, scx: bool, h_nr_name: str, old_task: bool) -> bytes:
        u32, s32 = b.int("unsigned int", 4), b.int("int", 4, signed=True)
        u64 = b.ref(TYPEDEF, "u64", b.int("long long unsigned int", 8))
        comm = b.array(b.int("char", 1, signed=True), u32, 16)
        ptr_lh = b.ptr(len(b.records) + 2)  # forward reference to list_head
        lh = b.struct("list_head", 16, [("next", ptr_lh, 0), ("prev", ptr_lh, 64)])
        ti = b.struct("thread_info", 16, [("flags", u64, 0), ("cpu", u32, 64)])
        se = b.struct("sched_entity", 8, [("sum_exec_runtime", u64, 0)])
        cpu_member = ("thread_info", ti, 48 * 8) if not old_task else ("cpu", u32, 56 * 8)
        task = b.struct(
            "task_struct",
            80,
            [
                ("pid", s32, 0),
                ("comm", comm, 64),
                ("state" if old_task else "__state", u32, 192),
                ("exit_state", s32, 224),
                ("tasks", lh, 256),
                cpu_member,
                ("se", se, 64 * 8),
            ],
        )
        cfs = b.struct("cfs_rq", 4, [(h_nr_name, u32, 0)])
        members = [
            ("nr_running", u32, 0),
            ("curr", b.ptr(task), 64),
            ("nr_switches", u64, 128),
            ("clock", u64, 192),
            ("cpu", s32, 256),
            ("cfs", cfs, 288),
        ]
        rq_size, percpu_vars = 64, []
        if scx:
            b.enum(
                "scx_enable_state",
                [
                    ("SCX_ENABLING", 0),
                    ("SCX_ENABLED", 1),
                    ("SCX_DISABLING", 2),
                    ("SCX_DISABLED", 3),
                ],
            )
            extra, rq_size, percpu_vars = self._scx_btf(b, u32, u64)
            members += extra
        rq = b.struct("rq", rq_size, members)
        var = b.var("runqueues", rq)
        b.datasec(".data..percpu", 0x1000, [(var, 0x800, rq_size), *percpu_vars])
        return b.blob()

    def _scx_btf(self, b: BtfBuilder, u32: int, u64: int) -> tuple[list[tuple], int, list]:
        """sched_ext types: (extra struct rq members, rq size, extra per-CPU DATASEC
        entries). Subclasses model other layouts (tests/unit/monitor_proc/scx_guest.py)."""
        name = b.array(b.int("char", 1, signed=True), u32, 128)
        ops = b.struct("sched_ext_ops", 136, [("flags", u64, 0), ("name", name, 64)])
        b.struct(
            "scx_sched", 200, [("", b.struct("", 8, [("x", u64, 0)]), 0), ("ops", ops, 64 * 8)]
        )
        return [("scx", b.struct("scx_rq", 4, [("nr_running", u32, 0)]), 320)], 64, []

    def _cpu(self, cpu: int) -> None:
        area_pa = 0x2800000 + cpu * 0x10000
        area_va = self.pob + area_pa
        self.write_u64(
            self.syms["__per_cpu_offset"] + 8 * cpu,
            (area_va - self.syms["__per_cpu_start"]) & (2**64 - 1),
        )
        task_va = self.pob + 0x2000000 + cpu * 0x1000
        self._task(task_va, 100 + cpu, f"task{cpu}", state=0, cpu=cpu, runtime=10**6 * (cpu + 1))
        self.tasks.append(task_va)
        rq_va = area_va + 0x800
        self.write_va(
            rq_va,
            struct.pack(
                "<IIQQQiII", cpu + 1, 0, task_va, 50 + cpu, 1000 * (cpu + 1), cpu, cpu + 1, cpu
            ),
        )
        self.rq_va = getattr(self, "rq_va", {}) | {cpu: rq_va}

    def _task(self, va: int, pid: int, comm: str, *, state: int, cpu: int, runtime: int) -> None:
        self.write_va(va, struct.pack("<i", pid) + b"\0" * 4 + comm.encode().ljust(16, b"\0"))
        self.write_va(va + 24, struct.pack("<Ii", state, 0))
        self.write_va(va + 56, struct.pack("<I", cpu))
        self.write_u64(va + 64, runtime)

    def _link_tasks(self) -> None:
        """init_task -> task0 -> task1 ... -> init_task through task_struct.tasks (+32)."""
        self._task(self.syms["init_task"], 0, "swapper/0", state=0, cpu=0, runtime=5)
        n = len(self.tasks)
        for i, t in enumerate(self.tasks):
            self.write_u64(t + 32, self.tasks[(i + 1) % n] + 32)
            self.write_u64(t + 40, self.tasks[i - 1] + 32)

    def program(self, **kw):
        from monitor_proc.btf import Btf
        from monitor_proc.memory import ReaderMemory
        from monitor_proc.program import Program
        from monitor_proc.symbols import SymbolTable

        symbols = kw.pop("symbols", None) or SymbolTable(
            ((n, a, "D") for n, a in self.syms.items()), "synthetic"
        )
        return Program(
            None,
            ReaderMemory(self.mem.read),
            symbols=symbols,
            btf=Btf(self.btf_blob),
            probe=(self.syms["linux_banner"], BANNER),
            **kw,
        )


@pytest.fixture
def synthetic_guest():
    def make(**kw):
        return SyntheticGuest(BtfBuilder(), **kw)

    return make


# -- a synthetic vmlinux ELF ----------------------------------------------------------------


def build_vmlinux(
    path: Path, *, text: bytes, rodata: bytes, btf: bytes, build_id: bytes | None = b"\x12\x34" * 10
) -> Path:
    """An ELF64 like a decompressed vmlinux: .text at TEXT, .rodata right after (page
    aligned), .BTF, .notes with a GNU build-id, one PT_LOAD over them all."""
    text_off = 0x1000
    ro_off = text_off + (-(-len(text) // 0x1000)) * 0x1000
    btf_off = ro_off + len(rodata)
    notes = b""
    if build_id is not None:
        notes = struct.pack("<III", 4, len(build_id), 3) + b"GNU\0" + build_id
    notes_off = btf_off + len(btf) + (-(btf_off + len(btf)) % 4)
    shstr = b"\0.text\0.rodata\0.BTF\0.notes\0.shstrtab\0"
    shstr_off = notes_off + len(notes)
    sh_off = shstr_off + len(shstr) + (-(shstr_off + len(shstr)) % 8)
    load_end = notes_off + len(notes)

    def shdr(name: int, typ: int, flags: int, off: int, size: int) -> bytes:
        addr = TEXT + off - text_off if flags else 0
        return struct.pack("<IIQQQQIIQQ", name, typ, flags, addr, off, size, 0, 0, 1, 0)

    shdrs = (
        b"\0" * 64
        + shdr(1, 1, 6, text_off, len(text))
        + shdr(7, 1, 2, ro_off, len(rodata))
        + shdr(15, 1, 2, btf_off, len(btf))
        + shdr(20, 7, 2, notes_off, len(notes))
        + shdr(27, 3, 0, shstr_off, len(shstr))
    )
    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH",
        b"\x7fELF",
        2,
        1,
        1,
        0,
        0,
        b"\0" * 7,
        2,
        0x3E,
        1,
        0x1000000,
        64,
        sh_off,
        0,
        64,
        56,
        1,
        64,
        6,
        5,
    )
    phdr = struct.pack(
        "<IIQQQQQQ",
        1,
        5,
        text_off,
        TEXT,
        0x1000000,
        load_end - text_off,
        load_end - text_off,
        0x1000,
    )
    img = bytearray(sh_off + len(shdrs))
    img[0:64], img[64:120] = ehdr, phdr
    for off, data in (
        (text_off, text),
        (ro_off, rodata),
        (btf_off, btf),
        (notes_off, notes),
        (shstr_off, shstr),
        (sh_off, shdrs),
    ):
        img[off : off + len(data)] = data
    path.write_bytes(bytes(img))
    return path


@pytest.fixture
def synthetic_vmlinux(tmp_path):
    """(path, SyntheticGuest): an ELF whose kallsyms and BTF describe the guest's memory."""

    def make(build_id: bytes | None = b"\x12\x34" * 10, **guest_kw):
        g = SyntheticGuest(BtfBuilder(), **guest_kw)
        syms = sorted(
            ((n, a, "T" if n == "_text" else "D") for n, a in g.syms.items()), key=lambda s: s[1]
        )
        syms += [(f"sym_{i:04d}", TEXT + 0x200000 + 16 * i, "t") for i in range(600)]
        text = bytearray(0x1000)
        off = g.syms["linux_banner"] - TEXT
        text[off : off + len(BANNER)] = BANNER
        rodata = build_kallsyms(syms, layout="pcrel", base_va=TEXT + len(text))
        path = build_vmlinux(
            tmp_path / "vmlinux", text=bytes(text), rodata=rodata, btf=g.btf_blob, build_id=build_id
        )
        return path, g

    return make
