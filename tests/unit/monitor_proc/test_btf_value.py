"""Values decoded with a BPF object's BTF, field paths for writes, and hostile BTF: loops,
truncation, absurd sizes and random corruption end in one clear error, never a hang."""

from __future__ import annotations

import random
import struct

import pytest

from monitor_proc.btf import Btf, BtfError
from monitor_proc.btf_value import (
    MAX_ARRAY,
    ValueDecodeError,
    decode,
    encode_int,
    locate,
)
from tests.unit.monitor_proc.bpf_guest import bss_value, qmap_bss_btf
from tests.unit.monitor_proc.conftest import ARRAY, TYPEDEF, BtfBuilder


def test_bss_datasec_decodes_by_name() -> None:
    blob, sec, _, _ = qmap_bss_btf()
    v = decode(Btf(blob), sec, bss_value())
    assert v["nr_enqueued"] == 1234 and v["nr_dispatched"] == 1200
    assert v["stats"] == {"lo": -5, "hi": 7, "flag": True, "bits": 5}
    assert v["cpu_cnt"] == [1, 2, 3, 4] and v["comm"] == "qmap"


def test_short_data_leaves_missing_fields_none() -> None:
    blob, sec, _, offsets = qmap_bss_btf()
    v = decode(Btf(blob), sec, bss_value()[: offsets["nr_dispatched"] + 4])
    assert v["nr_enqueued"] == 1234 and v["nr_dispatched"] is None and v["cpu_cnt"] == []


def test_enums_pointers_and_typedefs() -> None:
    b = BtfBuilder()
    e = b.enum("state", [("IDLE", 0), ("BUSY", 3)])
    p = b.ptr(0)
    u16 = b.ref(TYPEDEF, "u16", b.int("unsigned short", 2))
    s = b.struct("s", 24, [("st", e, 0), ("other", e, 32), ("p", p, 64), ("n", u16, 128)])
    raw = struct.pack("<IIQH6x", 3, 9, 0xFFFF_8880_0000_1000, 513)
    assert decode(Btf(b.blob()), s, raw) == {
        "st": "BUSY",
        "other": 9,
        "p": 0xFFFF_8880_0000_1000,
        "n": 513,
    }


def test_long_arrays_are_cut() -> None:
    b = BtfBuilder()
    u8 = b.int("u8", 1)
    arr = b.array(u8, u8, 10_000)
    v = decode(Btf(b.blob()), arr, bytes(range(256)) * 40)
    assert len(v) == MAX_ARRAY


def _typedef_loop() -> tuple[bytes, int]:
    b = BtfBuilder()
    a = b.ref(TYPEDEF, "a", 2)
    b.ref(TYPEDEF, "b", 1)
    return b.blob(), a


def _array_of_itself() -> tuple[bytes, int]:
    b = BtfBuilder()
    u32 = b.int("u32", 4)
    arr = b.add(ARRAY, "", 0, 0, trailer=struct.pack("<III", 2, u32, 4))
    return b.blob(), arr


def _struct_of_itself() -> tuple[bytes, int]:
    b = BtfBuilder()
    s = b.struct("s", 8, [("s", 1, 0), ("t", 1, 0)])
    return b.blob(), s


@pytest.mark.parametrize("make", [_typedef_loop, _array_of_itself, _struct_of_itself])
def test_type_loops_end(make) -> None:  # noqa: ANN001
    blob, tid = make()
    btf = Btf(blob)
    try:
        v = decode(btf, tid, b"\1" * 64)
    except ValueDecodeError:
        return
    assert v is None or isinstance(v, dict | list)  # bounded by depth, not by luck


def test_a_decode_stops_at_its_node_budget() -> None:
    b = BtfBuilder()
    u8 = b.int("u8", 1)
    inner = b.array(u8, u8, 200)
    outer = b.array(inner, u8, 200)
    v = decode(Btf(b.blob()), outer, bytes(40_000), max_nodes=500)
    flat = [x for row in v for x in (row or [])]
    assert len(flat) < 500


@pytest.mark.parametrize(
    ("path", "offset", "size", "signed"),
    [("nr_dispatched", 8, 8, False), ("stats.lo", 32, 4, True), ("cpu_cnt.2", 48 + 16, 8, False)],
)
def test_locate_fields(path: str, offset: int, size: int, signed: bool) -> None:
    blob, sec, _, offsets = qmap_bss_btf()
    f = locate(Btf(blob), sec, path)
    want = offsets[path.split(".")[0]] + {"stats.lo": 0, "cpu_cnt.2": 16}.get(path, 0)
    assert (f.offset, f.size, f.signed) == (want, size, signed)


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("nope", "no variable 'nope'"),
        ("stats.bits", "bitfield"),
        ("stats", "not an integer"),
        ("cpu_cnt.4", "not an index below 4"),
        ("nr_enqueued.x", "follows a scalar"),
        ("", "not a field path"),
        ("a..b", "not a field path"),
        ("comm", "not an integer"),
    ],
)
def test_locate_refuses(path: str, match: str) -> None:
    blob, sec, _, _ = qmap_bss_btf()
    with pytest.raises(ValueDecodeError, match=match):
        locate(Btf(blob), sec, path)


def test_encode_checks_the_range() -> None:
    blob, sec, _, _ = qmap_bss_btf()
    btf = Btf(blob)
    f = locate(btf, sec, "test_error_cnt")
    assert encode_int(f, 7) == b"\7\0\0\0"
    with pytest.raises(ValueDecodeError, match="outside 0..4294967295"):
        encode_int(f, -1)
    flag = locate(btf, sec, "stats.flag")
    assert flag.boolean and encode_int(flag, True) == b"\1"
    with pytest.raises(ValueDecodeError):
        encode_int(flag, 2)
    lo = locate(btf, sec, "stats.lo")
    assert encode_int(lo, -5) == struct.pack("<i", -5)


def _mutations(blob: bytes, n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(blob)
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(b))
            b[i] = rnd.randrange(256)
        if rnd.random() < 0.2:
            b = b[: rnd.randrange(len(b))]
        out.append(bytes(b))
    return out


def test_random_corruption_only_raises_btf_or_decode_errors() -> None:
    blob, sec, _, _ = qmap_bss_btf()
    value = bss_value()
    decoded = 0
    for bad in _mutations(blob, 1500, seed=9):
        try:
            btf = Btf(bad)
        except BtfError:
            continue
        for tid in range(0, len(btf) + 2):
            try:
                decode(btf, tid, value)
                decoded += 1
            except ValueDecodeError:
                pass
            try:
                locate(btf, tid, "nr_dispatched")
            except ValueDecodeError:
                pass
    assert decoded > 100  # most mutations still parse: the decoder really ran on them


def test_truncated_and_absurd_headers_are_btf_errors() -> None:
    blob, _, _, _ = qmap_bss_btf()
    for bad in (
        blob[:10],
        b"\0\0" + blob[2:],
        blob[:8] + struct.pack("<I", 1 << 30) + blob[12:],  # type_off past the end
        blob[:16] + struct.pack("<I", 1 << 30) + blob[20:],  # str_off past the end
    ):
        with pytest.raises(BtfError):
            Btf(bad)


def test_a_string_without_terminator_is_an_error_not_a_crash() -> None:
    b = BtfBuilder()
    b.int("u32", 4)
    blob = b.blob()
    unterminated = blob[:-1] + b"x"  # the last name loses its NUL
    try:
        btf = Btf(unterminated)
    except BtfError:
        return
    with pytest.raises(BtfError):
        btf.type(1)
