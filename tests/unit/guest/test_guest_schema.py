"""guest/schema.py and the decoder's payload checks: what the host refuses, and why."""

import binascii
import json
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guest import schema, wire
from guest.schema import (
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_STR,
    Int,
    ListOf,
    OneOf,
    Opt,
    SchemaError,
    spec,
)
from guest.wire import FrameDecoder, FrameType


def _frame(ftype, body):
    prefix = struct.pack("<2sBBI", wire.MAGIC, wire.VERSION, ftype, len(body))
    return prefix + struct.pack("<I", binascii.crc32(body, binascii.crc32(prefix))) + body


def _rejected(ftype, payload=None, body=None):
    """(kind, field) of the one frame the decoder refused."""
    out = []
    d = FrameDecoder(on_reject=lambda off, t, e: out.append((e.kind, e.field)))
    body = msgpack.packb(payload) if body is None else body
    assert d.feed(_frame(ftype, body)) == []
    assert len(out) == 1 and getattr(d.stats, out[0][0]) == 1
    return out[0]


LOG = {"level": "info", "msg": "m"}


@pytest.mark.parametrize(
    "payload,want",
    [
        ({**LOG, "t": msgpack.Timestamp(5, 0)}, ("ext_type", "t")),
        ({**LOG, "x": [msgpack.Timestamp(5, 0)]}, ("ext_type", "x[0]")),
        ({**LOG, "e": msgpack.ExtType(1, b"")}, ("ext_type", "")),  # refused while unpacking
        ({**LOG, 1: "x"}, ("bad_key", "")),
        ({**LOG, "m": {b"k": 1}}, ("bad_key", "")),
        ({**LOG, "m": {2.5: 1}}, ("bad_key", "")),
        ({**LOG, "msg": "x" * (MAX_STR + 1)}, ("too_large", "msg")),
        ({**LOG, "b": b"x" * (MAX_STR + 1)}, ("too_large", "b")),
        ({**LOG, "l": list(range(MAX_ITEMS + 1))}, ("too_large", "")),
        ({**LOG, "f": float("inf")}, ("non_finite", "f")),
        ({**LOG, "f": [1.0, float("-inf")]}, ("non_finite", "f[1]")),
        ({"level": "loud", "msg": ""}, ("bad_field", "level")),
        ({"level": "info"}, ("bad_field", "msg")),
    ],
)
def test_each_reason_is_counted_with_its_field(payload, want):
    assert _rejected(FrameType.LOG, payload) == want


def test_nesting_is_bounded():
    nested = 1
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert _rejected(FrameType.LOG, {**LOG, "n": nested})[0] == "too_deep"
    ok = nested[0]  # one level less: the payload map plus MAX_DEPTH containers in all
    d = FrameDecoder()
    assert len(d.feed(_frame(FrameType.LOG, msgpack.packb({**LOG, "n": ok})))) == 1


def test_a_megabyte_of_empty_lists_stops_early():
    body = b"\x83\xa5level\xa4info\xa3msg\xa1m\xa1x\xdc" + struct.pack(">H", MAX_ITEMS)
    body += b"\xdc" + struct.pack(">H", MAX_ITEMS) + b"\x90" * MAX_ITEMS  # 4096 x []
    body += (b"\xdc" + struct.pack(">H", MAX_ITEMS) + b"\x90" * MAX_ITEMS) * (MAX_ITEMS - 1)
    body = body[: wire.MAX_FRAME]
    # ~1 M empty lists (~60 MB as Python objects): refused at the container cap, long
    # before the frame's end would make it a truncated msgpack (bad_payload).
    assert len(body) // (MAX_ITEMS + 3) > 4 * MAX_CONTAINERS // MAX_ITEMS
    assert _rejected(FrameType.LOG, body=body)[0] == "too_large"


def test_result_workers_are_checked_item_by_item():
    w = {"cgroup": "a", "pid": 1, "work_units": 2, "cpu_time_ns": 3, "max_gap_ms": 0.5}
    good = {"passed": True, "reason": "", "workers": [w, w]}
    wire.check_payload(FrameType.RESULT, good)
    bad = {**good, "workers": [w, {**w, "pid": -1}]}
    assert _rejected(FrameType.RESULT, bad) == ("bad_field", "workers[1].pid")
    assert _rejected(FrameType.RESULT, {**good, "workers": [w, 5]}) == ("bad_field", "workers[1]")
    assert _rejected(FrameType.RESULT, {**good, "workers": w}) == ("bad_field", "workers")
    assert (
        _rejected(FrameType.RESULT, {**good, "workers": [{**w, "max_gap_ms": True}]})[0]
        == "bad_field"
    )


def test_shorthand_compiles_and_explains():
    s = spec({"a": Int(0, 9), "b": Opt([str]), "c": OneOf("x", 1), "d": ListOf(float, 2)})
    s.check({"a": 3, "c": 1, "d": [1, 2.5], "extra": {"k": None}}, 0)
    for bad, where in [
        ({"a": 10, "c": 1, "d": []}, "a"),
        ({"a": True, "c": 1, "d": []}, "a"),
        ({"a": 1, "c": True, "d": []}, "c"),  # True == 1, but it is not 1
        ({"a": 1, "c": 1, "d": [1, 2, 3]}, "d"),
        ({"a": 1, "c": 1, "d": [], "b": ["x", 2]}, "b[1]"),
    ]:
        with pytest.raises(SchemaError) as e:
            s.check(bad, 0)
        assert e.value.field == where, bad
    with pytest.raises(TypeError):
        spec(object)
    any_ = spec({"l": list, "d": dict})
    any_.check({"l": [1, {"a": None}], "d": {"k": [2.5]}}, 0)
    for bad, kind in [
        ({"l": {}, "d": {}}, "bad_field"),
        ({"l": [], "d": {"k": float("nan")}}, "non_finite"),
    ]:
        with pytest.raises(SchemaError) as e:
            any_.check(bad, 0)
        assert e.value.kind == kind


def test_every_kind_is_a_decoder_counter():
    assert set(schema.KINDS) <= set(wire.DecoderStats.FIELDS)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.builds(msgpack.Timestamp, st.integers(0, 2**32), st.just(0)),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(-9, 9), kids, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(extra=st.dictionaries(st.text(max_size=6), _json_values, max_size=4))
def test_whatever_is_accepted_maps_to_strict_json(extra):
    payload = {**extra, "level": "info", "msg": "m"}
    d = FrameDecoder()
    frames = d.feed(_frame(FrameType.LOG, msgpack.packb(payload, use_bin_type=True)))
    for f in frames:
        text = json.dumps(
            f.payload, allow_nan=False, default=lambda b: b.decode("utf-8", "replace")
        )
        assert json.loads(text)["msg"] == "m"
    assert len(frames) + sum(getattr(d.stats, k) for k in schema.KINDS) == 1
