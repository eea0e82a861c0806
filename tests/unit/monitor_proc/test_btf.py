import struct
import time

import pytest

from monitor_proc.btf import Btf, BtfError, Kind, MissingMember


@pytest.fixture
def tiny(btf_builder):
    """A BTF using every kind: struct rq { u32 nr_running; struct cfs_rq cfs; union {...};
    bitfields; u64 clock; struct task_struct *curr; } plus functions, enums and a datasec."""
    b = btf_builder
    u32 = b.int("unsigned int", 4)
    u64_base = b.int("long long unsigned int", 8)
    u64 = b.ref(Kind.TYPEDEF, "u64", u64_base)
    vu64 = b.ref(Kind.VOLATILE, "", u64)
    cu32 = b.ref(Kind.CONST, "", u32)
    char = b.int("char", 1, signed=True)
    comm = b.array(char, u32, 16)
    task = b.struct(
        "task_struct", 32, [("pid", b.int("int", 4, signed=True), 0), ("comm", comm, 64)]
    )
    task_p = b.ptr(task)
    rtask_p = b.ref(Kind.RESTRICT, "", task_p)
    tagged = b.ref(Kind.TYPE_TAG, "rcu", rtask_p)
    cfs = b.struct(
        "cfs_rq", 16, [("nr_queued", u32, 0), ("h_nr_queued", cu32, 32), ("min_vruntime", u64, 64)]
    )
    scx = b.struct("scx_rq", 8, [("nr_running", u32, 0), ("flags", u32, 32)])
    inner = b.struct("", 8, [("clock_pelt", u64, 0)])
    anon = b.struct("", 8, [("scx", scx, 0), ("", inner, 0)], union=True)
    bits = b.struct("", 4, [("a", u32, 0, 3), ("b", u32, 3, 5)])
    rq = b.struct(
        "rq",
        64,
        [
            ("nr_running", u32, 0),
            ("cfs", cfs, 64),
            ("", anon, 192),
            ("", bits, 256),
            ("clock", vu64, 320),
            ("curr", tagged, 384),
        ],
    )
    b.ref(Kind.FWD, "mm_struct", 0)
    b.enum("state", [("RUNNING", 0), ("BLOCKED", -1)], signed=True)
    b.enum64("big", [("HUGE", 1 << 40)])
    proto = b.func_proto(u32, [("rq", b.ptr(rq))])
    func = b.ref(Kind.FUNC, "rq_nr", proto)
    b.decl_tag("kfunc", func, -1)
    b.float("double", 8)
    v = b.var("runqueues", rq)
    b.datasec(".data..percpu", 4096, [(v, 2048, 64)])
    return Btf(b.blob())


def test_struct_sizes_and_plain_members(tiny):
    rq = tiny.struct("rq")
    assert rq.size == 64
    m = rq.member("nr_running")
    assert (m.offset, m.bit_offset, m.bit_size, m.size) == (0, 0, 0, 4)
    assert m.type.kind == Kind.INT


def test_nested_paths_and_modifiers(tiny):
    rq = tiny.struct("rq")
    assert rq.member("cfs.h_nr_queued").offset == 8 + 4
    clock = rq.member("clock")
    assert (clock.offset, clock.size) == (40, 8)  # volatile -> typedef -> int
    assert tiny.resolve(clock.type.id).name == "long long unsigned int"
    curr = rq.member("curr")
    assert curr.size == 8 and tiny.resolve(curr.type.id).kind == Kind.PTR


def test_anonymous_union_and_struct_members(tiny):
    rq = tiny.struct("rq")
    assert rq.member("scx.nr_running").offset == 24
    assert rq.member("scx.flags").offset == 28
    assert rq.member("clock_pelt").offset == 24  # anonymous struct in anonymous union


def test_bitfields_with_kind_flag(tiny):
    b = tiny.struct("rq").member("b")
    assert (b.offset, b.bit_offset, b.bit_size) == (32, 256 + 3, 5)


def test_missing_member_is_both_btf_error_and_attribute_error(tiny):
    rq = tiny.struct("rq")
    with pytest.raises(MissingMember):
        rq.member("cfs.nr_running")
    with pytest.raises(AttributeError):
        rq.member("nr_running.x")
    assert not rq.has_member("h_nr_running") and rq.has_member("cfs.nr_queued")


def test_other_kinds_decode(tiny):
    (state,) = [tiny.type(i) for i in tiny.ids("state")]
    assert [(m.name, m.value) for m in state.items] == [("RUNNING", 0), ("BLOCKED", -1)]
    assert tiny.find("big", Kind.ENUM64).items[0].value == 1 << 40
    func = tiny.find("rq_nr", Kind.FUNC)
    proto = tiny.type(func.ref)
    assert proto.kind == Kind.FUNC_PROTO and proto.items[0].name == "rq"
    assert tiny.find("kfunc", Kind.DECL_TAG).ref == func.id
    assert tiny.find("double", Kind.FLOAT).size == 8
    assert tiny.find("mm_struct", Kind.FWD).name == "mm_struct"
    comm = tiny.struct("task_struct").member("comm")
    assert comm.size == 16 and comm.type.kind == Kind.ARRAY and comm.type.nelems == 16
    with pytest.raises(BtfError):
        tiny.size_of(func.id)


def test_datasec_var(tiny):
    assert tiny.datasec_var(".data..percpu", "runqueues") == (2048, 64)
    with pytest.raises(BtfError):
        tiny.datasec_var(".data..percpu", "nope")


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda b: b"\xeb\x9f" + b[2:], "magic"),
        (lambda b: b[:30], "exceed|truncated"),
        (lambda b: b[:28] + struct.pack("<I", 31 << 24) + b[32:], "unknown BTF kind"),
    ],
)
def test_malformed_blobs(btf_builder, mutate, match):
    btf_builder.int("int", 4)
    btf_builder.int("long", 8)
    with pytest.raises(BtfError, match=match):
        Btf(mutate(btf_builder.blob()))


def test_type_id_out_of_range(tiny):
    with pytest.raises(BtfError, match="out of range"):
        tiny.type(10_000)


def test_real_kernel_rq_layout(real_vmlinux):
    t0 = time.perf_counter()
    btf = Btf.load(real_vmlinux)
    print(f"BTF load {time.perf_counter() - t0:.2f}s, {len(btf)} types")
    rq = btf.struct("rq")
    assert rq.size > 1000
    assert rq.member("nr_running").offset == 0
    assert rq.member("clock").size == 8
    assert rq.member("scx.nr_running").size == 4  # this kernel has sched_ext
    off, size = btf.datasec_var(".data..percpu", "runqueues")
    assert size == rq.size and off > 0
    assert btf.struct("task_struct").member("pid").size == 4


def test_load_raw_blob_and_elf_without_btf(tmp_path, btf_builder):
    btf_builder.int("int", 4)
    raw = tmp_path / "vmlinux.btf"
    raw.write_bytes(btf_builder.blob())
    assert Btf.load(raw).find("int", Kind.INT).size == 4
    with pytest.raises(BtfError, match="no .BTF section"):
        Btf.load("/bin/true")  # an ELF without BTF
