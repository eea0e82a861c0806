"""BPF maps from synthetic guest memory: listing, each kind's values decoded with the
map's own BTF (in guest memory), the write path, and corrupt maps."""

from __future__ import annotations

import struct

import pytest

from monitor_proc.helpers.bpf_map import (
    MapError,
    bpf_map_list,
    bpf_map_read,
    bpf_map_write,
    bpf_maps,
    find_map,
)
from monitor_proc.helpers.btf_object import guest_btf
from monitor_proc.program import BadDataError
from tests.unit.monitor_proc.bpf_guest import (
    ARRAY_ELEM,
    BTFOBJ_BASE,
    BTFOBJ_SIZE_OFF,
    HTAB_NBUCKETS,
    MAP_OFF,
    BpfGuest,
    MapSpec,
    bss_value,
    qmap_bss_btf,
)
from tests.unit.monitor_proc.conftest import BtfBuilder


def _task_ctx_btf() -> tuple[bytes, int, int]:
    """A HASH map's BTF: key u32 pid, value struct task_ctx {u64 slice; s32 weight; bool x}."""
    b = BtfBuilder()
    u32 = b.int("unsigned int", 4)
    u64 = b.int("unsigned long long", 8)
    s32 = b.int("int", 4, signed=True)
    ctx = b.struct("task_ctx", 16, [("slice", u64, 0), ("weight", s32, 64)])
    return b.blob(), u32, ctx


def _maps() -> list[MapSpec]:
    blob, sec, u32, offsets = qmap_bss_btf()
    hblob, hkey, hval = _task_ctx_btf()
    return [
        MapSpec(
            3,
            "scx_qmap.bss",
            "ARRAY",
            value_size=offsets["_size"],
            values={0: bss_value()},
            btf=blob,
            key_type=u32,
            value_type=sec,
        ),
        MapSpec(
            4,
            "cpu_ctx",
            "PERCPU_ARRAY",
            value_size=16,
            max_entries=2,
            values={1: [struct.pack("<QiI", 5, -1, 0), struct.pack("<QiI", 6, 2, 0)]},
            btf=hblob,
            key_type=hkey,
            value_type=hval,
        ),
        MapSpec(
            5,
            "task_ctx",
            "HASH",
            key_size=4,
            value_size=16,
            max_entries=64,
            n_buckets=4,
            values={
                struct.pack("<I", pid): struct.pack("<QiI", pid * 10, pid - 3, 0)
                for pid in (1, 2, 7, 100, 101)
            },
            btf=hblob,
            key_type=hkey,
            value_type=hval,
        ),
        MapSpec(
            6,
            "pcpu_hash",
            "PERCPU_HASH",
            key_size=4,
            value_size=8,
            max_entries=8,
            n_buckets=2,
            values={b"\x09\0\0\0": [struct.pack("<Q", 1), struct.pack("<Q", 2)]},
        ),
        MapSpec(7, "ringbuf", "RINGBUF", key_size=4, value_size=8, vmalloc=False),
        MapSpec(
            8, "raw_array", "ARRAY", value_size=4, max_entries=3, values={2: b"\xaa\xbb\xcc\xdd"}
        ),
    ]


@pytest.fixture
def guest() -> BpfGuest:
    return BpfGuest(maps=_maps())


def test_listing_has_each_map_and_the_bss_by_name(guest: BpfGuest) -> None:
    maps = bpf_map_list(guest.writable_program())
    assert [(m["id"], m["name"], m["type"]) for m in maps] == [
        (3, "scx_qmap.bss", "ARRAY"),
        (4, "cpu_ctx", "PERCPU_ARRAY"),
        (5, "task_ctx", "HASH"),
        (6, "pcpu_hash", "PERCPU_HASH"),
        (7, "ringbuf", "RINGBUF"),
        (8, "raw_array", "ARRAY"),
    ]
    bss = maps[0]
    assert (bss["key_size"], bss["value_size"], bss["max_entries"], bss["btf"]) == (
        4,
        88,
        1,
        True,
    )
    assert bss["values"]["nr_enqueued"] == 1234 and bss["values"]["nr_dispatched"] == 1200
    assert all("values" not in m for m in maps[1:])  # only global-data maps carry values


def test_array_read_by_key_and_whole(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    raw = find_map(prog, "raw_array")
    assert bpf_map_read(prog, raw, 2) == [{"key": 2, "value": "aabbccdd"}]  # no BTF: hex
    assert [e["key"] for e in bpf_map_read(prog, raw)] == [0, 1, 2]
    with pytest.raises(MapError, match="not below max_entries 3"):
        bpf_map_read(prog, raw, 3)


def test_percpu_array_lists_a_value_per_cpu(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    m = find_map(prog, "cpu_ctx")
    assert bpf_map_read(prog, m, 1) == [
        {"key": 1, "value": [{"slice": 5, "weight": -1}, {"slice": 6, "weight": 2}]}
    ]


def test_hash_entries_and_a_key_lookup(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    m = find_map(prog, "task_ctx")
    entries = bpf_map_read(prog, m)
    assert sorted(e["key"] for e in entries) == [1, 2, 7, 100, 101]
    assert {e["key"]: e["value"]["slice"] for e in entries}[7] == 70
    assert bpf_map_read(prog, m, 100) == [{"key": 100, "value": {"slice": 1000, "weight": 97}}]
    assert bpf_map_read(prog, m, 55) == []
    assert len(bpf_map_read(prog, m, limit=2)) == 2
    with pytest.raises(MapError, match="does not fit 4 bytes"):
        bpf_map_read(prog, m, 1 << 40)


def test_percpu_hash_values_per_cpu(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    m = find_map(prog, "pcpu_hash")
    assert bpf_map_read(prog, m, 9) == [
        {"key": "09000000", "value": ["0100000000000000", "0200000000000000"]}
    ]


def test_other_kinds_are_refused_by_name(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    with pytest.raises(MapError, match="RINGBUF map: only ARRAY, PERCPU_ARRAY, HASH and ARENA"):
        bpf_map_read(prog, find_map(prog, "ringbuf"))


def test_find_map_by_id_and_unknown_or_duplicate_names() -> None:
    maps = _maps()
    maps.append(MapSpec(9, "raw_array", "ARRAY", value_size=4))
    g = BpfGuest(maps=maps)
    prog = g.writable_program()
    assert find_map(prog, "5").name == "task_ctx"
    with pytest.raises(MapError, match=r"no BPF map 'nope' in the guest \(maps: cpu_ctx"):
        find_map(prog, "nope")
    with pytest.raises(MapError, match=r"2 BPF maps are named 'raw_array' \(IDs 8, 9\)"):
        find_map(prog, "raw_array")


def test_write_an_array_field_and_read_it_back(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    m = find_map(prog, "scx_qmap.bss")
    out = bpf_map_write(prog, m, 0, "stall_user_nth", 9)
    assert out == {
        "map": "scx_qmap.bss",
        "key": 0,
        "field": "stall_user_nth",
        "previous": 0,
        "value": 9,
    }
    assert bpf_map_read(prog, m, 0)[0]["value"]["stall_user_nth"] == 9
    assert bpf_map_write(prog, m, 0, "stats.lo", -100)["value"] == -100
    assert bpf_map_write(prog, m, 0, "cpu_cnt.3", 44)["previous"] == 4
    after = bpf_map_read(prog, m, 0)[0]["value"]
    assert after["cpu_cnt"] == [1, 2, 3, 44] and after["nr_enqueued"] == 1234  # nothing else


def test_write_goes_through_the_given_writer(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    m = find_map(prog, "scx_qmap.bss")
    seen = []
    bpf_map_write(prog, m, 0, "nr_reenqueued", 5, write=lambda va, data: seen.append((va, data)))
    assert seen == [(guest.value_addr[(3, 0)] + 16, struct.pack("<Q", 5))]


@pytest.mark.parametrize(
    ("name", "key", "field", "value", "match"),
    [
        ("task_ctx", 1, "slice", 1, "HASH map: only ARRAY values are written"),
        ("raw_array", 0, "x", 1, "has no BTF"),
        ("scx_qmap.bss", 1, "nr_enqueued", 1, "not below max_entries 1"),
        ("scx_qmap.bss", 0, "nope", 1, "no variable 'nope'"),
        ("scx_qmap.bss", 0, "test_error_cnt", 1 << 32, "outside 0..4294967295"),
        ("scx_qmap.bss", 0, "stats.bits", 1, "bitfield"),
    ],
)
def test_write_refusals(
    guest: BpfGuest, name: str, key: int, field: str, value: int, match: str
) -> None:
    prog = guest.writable_program()
    with pytest.raises(MapError, match=match):
        bpf_map_write(prog, find_map(prog, name), key, field, value)


def test_corrupt_map_header_is_an_unreadable_entry(guest: BpfGuest) -> None:
    guest.write_vm(guest.map_addr[4] + MAP_OFF["id"], struct.pack("<I", 999))
    maps = bpf_map_list(guest.writable_program())
    assert maps[1] == {"id": 4, "error": maps[1]["error"]} and "IDR slot 4" in maps[1]["error"]
    assert maps[0]["values"]["nr_enqueued"] == 1234


def test_absurd_value_size_and_elem_size_are_refused(guest: BpfGuest) -> None:
    guest.write_vm(guest.map_addr[8] + ARRAY_ELEM, struct.pack("<I", 4096))
    guest.write_vm(guest.map_addr[3] + MAP_OFF["value_size"], struct.pack("<I", 1 << 30))
    prog = guest.writable_program()
    maps = {m["name"]: m for m in bpf_map_list(prog)}
    assert "value 1073741824 bytes" in maps["scx_qmap.bss"]["values_error"]
    with pytest.raises(BadDataError, match="elem_size 4096"):
        bpf_map_read(prog, find_map(prog, "raw_array"), 0)


def test_hash_with_a_looping_chain_or_bad_bucket_count_is_refused(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    m = find_map(prog, "task_ctx")
    guest.write_va(guest.map_addr[5] + HTAB_NBUCKETS, struct.pack("<I", 3))
    with pytest.raises(BadDataError, match="3 buckets"):
        bpf_map_read(prog, m)
    guest.write_va(guest.map_addr[5] + HTAB_NBUCKETS, struct.pack("<I", 4))
    buckets = struct.unpack("<Q", guest.read_vm(guest.map_addr[5] + 72, 8))[0]
    head = struct.unpack("<Q", guest.read_vm(buckets, 8))[0]
    guest.write_u64(head, head)  # the chain's first node points at itself
    with pytest.raises(BadDataError, match="looping chain"):
        bpf_map_read(prog, m, limit=10_000)


def test_guest_btf_bounds_and_refuses_split_btf(guest: BpfGuest) -> None:
    prog = guest.writable_program()
    obj = guest.btf_addr[103]
    assert guest_btf(prog, obj).find(".bss", 15).name == ".bss"
    guest.write_va(obj + BTFOBJ_BASE, struct.pack("<Q", 0xFFFF_8880_0000_1000))
    prog = guest.writable_program()
    with pytest.raises(BadDataError, match="split BTF"):
        guest_btf(prog, obj)
    guest.write_va(obj + BTFOBJ_BASE, struct.pack("<Q", 0))
    guest.write_va(obj + BTFOBJ_SIZE_OFF, struct.pack("<I", 1 << 31))
    with pytest.raises(BadDataError, match="2147483648 bytes"):
        guest_btf(prog, obj)


def test_corrupt_map_btf_leaves_values_undecodable_not_an_exception(guest: BpfGuest) -> None:
    obj = guest.btf_addr[103]
    data = struct.unpack("<Q", guest.read_vm(obj + 8, 8))[0]
    guest.write_vm(data, b"\xff\xff")  # bad magic
    maps = bpf_map_list(guest.writable_program())
    assert "does not parse" in maps[0]["values_error"]
    assert [m["name"] for m in maps][:2] == ["scx_qmap.bss", "cpu_ctx"]


def test_bpf_maps_keeps_going_past_an_unmapped_map(guest: BpfGuest) -> None:
    guest.write_u64(guest.xa_nodes[0] + 40 + 8 * 5, 0xFFFF_C900_7770_0000)
    maps = bpf_maps(guest.writable_program())
    assert isinstance(maps[2], dict) and "unreadable" in maps[2]["error"]
    assert len(maps) == 6


def _arena_guest(arena_pages: int = 16, link: bool = True) -> BpfGuest:
    """scx_qmap on 7.2: counters in an arena global ``qa`` (DATASEC .addr_space.1), described
    by the BTF of the programs that use the arena map."""
    from tests.unit.monitor_proc.bpf_guest import ProgSpec
    from tests.unit.monitor_proc.conftest import DATASEC, TYPEDEF

    b = BtfBuilder()
    u64 = b.ref(TYPEDEF, "__u64", b.int("unsigned long long", 8))
    s32 = b.int("int", 4, signed=True)
    fifo = b.struct(
        "qmap_fifo", 24, [("head", b.ptr(0), 0), ("tail", b.ptr(0), 64), ("idx", s32, 128)]
    )
    qa = b.struct(
        "qmap_arena",
        136,
        [
            ("nr_enqueued", u64, 0),
            ("nr_dispatched", u64, 64),
            ("fifos", b.array(fifo, s32, 5), 128),
        ],
    )
    var = b.var("qa", qa)
    sec = b.add(DATASEC, ".addr_space.1", 1, 136, trailer=struct.pack("<III", var, 0, 136))
    data = struct.pack("<QQ", 41, 40) + b"".join(struct.pack("<QQi4x", 0, 0, i) for i in range(5))
    blob = b.blob()
    maps = [
        MapSpec(
            2, "arena", "ARENA", key_size=0, value_size=0, max_entries=arena_pages, arena_data=data
        ),
        MapSpec(3, "scx_qmap.bss", "ARRAY", value_size=8, btf=blob, value_type=sec),
    ]
    progs = [ProgSpec(1, "qmap_enqueue", used_maps=(3, 2) if link else (3,), btf=103)]
    return BpfGuest(progs=progs, maps=maps)


def test_arena_globals_by_name_through_the_programs_btf() -> None:
    g = _arena_guest()
    prog = g.writable_program()
    arena = find_map(prog, "arena")
    qa = bpf_map_read(prog, arena)[0]["value"]["qa"]
    assert (qa["nr_enqueued"], qa["nr_dispatched"]) == (41, 40)
    assert [f["idx"] for f in qa["fifos"]] == [0, 1, 2, 3, 4]
    listed = {m["name"]: m for m in bpf_map_list(prog)}
    assert listed["arena"]["values"]["qa"]["nr_dispatched"] == 40
    with pytest.raises(MapError, match="read as key 0"):
        bpf_map_read(prog, arena, 1)


def test_an_arena_no_program_describes_has_no_values() -> None:
    prog = _arena_guest(link=False).writable_program()
    assert "values" not in {m["name"]: m for m in bpf_map_list(prog)}["arena"]
    with pytest.raises(MapError, match="no program of its object describes"):
        bpf_map_read(prog, find_map(prog, "arena"))


def test_an_arena_too_small_for_its_globals_is_refused() -> None:
    g = _arena_guest()
    g.write_va(g.map_addr[2] + MAP_OFF["max_entries"], struct.pack("<I", 0))
    prog = g.writable_program()
    listed = {m["name"]: m for m in bpf_map_list(prog)}
    assert "136 bytes of globals" in listed["arena"]["values_error"]
