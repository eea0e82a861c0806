"""Tests of guest/wire.py: the guest -> host frame contract.

Assumption behind the property tests: garbage that happens to form a frame with a valid
crc32 (and a valid msgpack payload with the required fields) has probability ~2**-32 per
candidate header; hypothesis does not search for crc collisions, so every frame the
decoder yields must be one of the intact frames we encoded.
"""

import binascii
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guest import wire
from guest.wire import (
    HEADER_SIZE,
    MAX_FRAME,
    FrameDecoder,
    FrameType,
    WireError,
    decode_frame,
    encode_frame,
)

SAMPLES = {
    FrameType.SHELL_READY: {"pid": 7, "tty": True},
    FrameType.SHELL_OUT: {"data": b"schedlab:/# "},
    FrameType.SHELL_ERR: {"data": b"sh: x: not found\n"},
    FrameType.SHELL_EXIT: {"code": -1, "signal": 9},
    FrameType.SHELL_IN: {"data": b"\x03"},
    FrameType.SHELL_EOF: {},
    FrameType.SHELL_WINCH: {"rows": 50, "cols": 132},
    FrameType.SHELL_SIGNAL: {"signal": 2},
    FrameType.SYS_RDY: {"kernel": "7.2.13", "cpus": 2, "boot_ns": 5_200_000_000},
    FrameType.PHASE: {"name": "workload", "t_ns": 123},
    FrameType.STDOUT: {"data": b"hello\n"},
    FrameType.STDERR: {"data": b"\x00\xff"},
    FrameType.LOG: {"level": "warning", "msg": "ü"},
    FrameType.RESULT: {
        "passed": False,
        "reason": "starved",
        "scenario": "cgroup-spinners",
        "workers": [
            {"cgroup": "cg0", "pid": 7, "work_units": 0, "cpu_time_ns": 5, "max_gap_ms": 1.5}
        ],
    },
    FrameType.EXIT: {"code": -3},
    FrameType.DUMP: {"source": "/proc/schedstat", "data": b"version 15\n"},
    FrameType.INPUTS_ACK: {
        "ok": True,
        "error": "",
        "files": [
            {"kind": "scheduler", "name": "scx_simple", "path": "/run/x", "size": 1, "sha256": "0"}
        ],
    },
    FrameType.RUN: {"doc": {"version": 1}},
    FrameType.FILE_BEGIN: {
        "index": 0,
        "kind": "lib",
        "name": "a",
        "mode": 0o644,
        "size": 3,
        "sha256": "0" * 64,
    },
    FrameType.FILE_CHUNK: {"index": 0, "offset": 0, "data": b"abc"},
    FrameType.FILE_END: {"index": 0},
    FrameType.SCHED_LOG: {
        "stream": "stderr",
        "data": b"EXIT: x\n",
        "seq": 3,
        "dropped": 0,
        "eof": False,
    },
    FrameType.SCHED_ATTACH: {
        "status": "attached",
        "attached": True,
        "ops": "simple",
        "message": "",
        "attach_ms": 812.5,
        "pid": 201,
        "exit_status": "",
        "state": "enabled",
    },
    FrameType.SCHED_EXIT: {
        "t_ns": 9_000_000_000,
        "trigger": "disabled",
        "state": "disabling",
        "exit_status": "",
        "ops": "qmap",
        "dump_bytes": 0,
        "headline": "runnable task stall: cat[9] failed to run for 5.000s",
        "exit": {
            "kind": "ERROR_STALL",
            "code": 1026,
            "reason": "runnable task stall",
            "message": "cat[9] failed to run for 5.000s",
            "ops": "qmap",
            "source": "kmsg",
            "backtrace": ["scx_watchdog_workfn+0x154/0x1f0"],
            "task": {"comm": "cat", "pid": 9},
            "stall_s": 5.0,
        },
    },
    FrameType.SCHED_STOP: {
        "status": "clean",
        "detached": True,
        "killed": False,
        "problems": [],
        "exit_status": "exited 0",
        "state": "disabled",
        "wait_ms": 41.0,
    },
}


def raw_frame(ftype_raw, body, version=wire.VERSION, crc=None, length=None):
    """Build a frame by hand, bypassing encode_frame's checks."""
    length = len(body) if length is None else length
    prefix = struct.pack("<2sBBI", wire.MAGIC, version, ftype_raw, length)
    if crc is None:
        crc = binascii.crc32(body, binascii.crc32(prefix))
    return prefix + struct.pack("<I", crc) + body


@pytest.mark.parametrize("ftype", list(FrameType))
def test_round_trip_every_type(ftype):
    data = encode_frame(ftype, SAMPLES[ftype])
    f = decode_frame(data)
    assert f.type is ftype
    assert f.payload == SAMPLES[ftype]
    assert f.size == len(data)


def test_every_type_has_a_schema_and_a_sample():
    assert set(wire.SCHEMAS) == set(FrameType) == set(SAMPLES)


def test_header_layout_is_the_documented_one():
    data = encode_frame(FrameType.EXIT, {"code": 0})
    magic, ver, t, length, crc = struct.unpack_from("<2sBBII", data)
    assert (magic, ver, t, HEADER_SIZE) == (b"SL", 1, 7, 12)
    assert length == len(data) - 12
    assert crc == binascii.crc32(data[:8] + data[12:])
    assert msgpack.unpackb(data[12:]) == {"code": 0}


@pytest.mark.parametrize(
    "ftype,payload",
    [
        (FrameType.EXIT, {}),
        (FrameType.EXIT, {"code": True}),  # bool is not an int here
        (FrameType.EXIT, {"code": "0"}),
        (FrameType.RESULT, {"passed": 1, "reason": ""}),
        (FrameType.STDOUT, {"data": "text, not bytes"}),
        (FrameType.LOG, {"level": "loud", "msg": "x"}),
        (FrameType.EXIT, {"code": 0, "x": object()}),
        (FrameType.RESULT, {"passed": True, "reason": "", "workers": [{"cgroup": "c"}]}),
    ],
)
def test_encode_rejects_bad_field(ftype, payload):
    with pytest.raises(WireError) as e:
        encode_frame(ftype, payload)
    assert e.value.kind == "bad_field"


def test_encode_rejects_a_payload_that_is_not_a_map():
    with pytest.raises(WireError) as e:
        encode_frame(FrameType.PHASE, ["not", "a", "map"])
    assert e.value.kind == "bad_payload"


def test_encode_rejects_unknown_type_and_oversize():
    with pytest.raises(WireError) as e:
        encode_frame(99, {"code": 0})
    assert e.value.kind == "unknown_type"
    with pytest.raises(WireError) as e:
        encode_frame(FrameType.STDOUT, {"data": b"x" * MAX_FRAME})
    assert e.value.kind == "oversize"


def test_encode_accepts_exactly_max_frame():
    # msgpack bin32 header is 5 bytes, the fixmap and key "data" 6 more.
    data = encode_frame(FrameType.STDOUT, {"data": b"x" * (MAX_FRAME - 11)})
    assert len(data) == HEADER_SIZE + MAX_FRAME
    assert decode_frame(data).payload["data"] == b"x" * (MAX_FRAME - 11)


def _kind(data):
    with pytest.raises(WireError) as e:
        decode_frame(data)
    return e.value.kind


def test_decode_frame_strict_errors():
    good = encode_frame(FrameType.EXIT, {"code": 1})
    assert _kind(good[:5]) == "truncated"
    assert _kind(good[:-1]) == "truncated"
    assert _kind(good + b"x") == "trailing"
    assert _kind(b"XL" + good[2:]) == "bad_magic"
    assert _kind(good[:2] + b"\x02" + good[3:]) == "bad_version"
    assert _kind(good[:-1] + bytes([good[-1] ^ 1])) == "bad_crc"
    assert _kind(raw_frame(200, msgpack.packb({"code": 1}))) == "unknown_type"
    assert _kind(raw_frame(7, b"\xc1")) == "bad_payload"  # 0xc1 is never valid msgpack
    assert _kind(raw_frame(7, msgpack.packb({"code": 1}) + b"\x00")) == "bad_payload"
    assert _kind(raw_frame(7, msgpack.packb([1]))) == "bad_payload"
    assert _kind(raw_frame(7, msgpack.packb({1: 2}))) == "bad_key"
    assert _kind(raw_frame(5, msgpack.packb({"level": "info", "msg": b"\xff"}))) == "bad_field"
    bad_utf8 = b"\x82\xa5level\xa4info\xa3msg\xa1\xff"  # a str that is not UTF-8
    assert _kind(raw_frame(5, bad_utf8)) == "bad_payload"
    assert _kind(raw_frame(3, b"", length=MAX_FRAME + 1)) == "oversize"


def test_decoder_skips_and_counts_each_kind():
    good = encode_frame(FrameType.PHASE, {"name": "p", "t_ns": 1})
    stream = b"".join(
        [
            b"junk",
            good[:-1] + bytes([good[-1] ^ 0x80]),  # bad crc
            raw_frame(250, msgpack.packb({"x": 1})),  # unknown type, valid crc
            raw_frame(2, msgpack.packb(["not a map"])),
            raw_frame(2, msgpack.packb({"name": 3})),  # missing/mistyped fields
            raw_frame(2, b"", version=9),
            raw_frame(2, b"", length=MAX_FRAME + 1),
            good,
        ]
    )
    d = FrameDecoder()
    frames = d.feed(stream) + d.finish()
    assert [f.payload for f in frames] == [{"name": "p", "t_ns": 1}]
    assert frames[0].offset == len(stream) - len(good)
    s = d.stats
    got = (
        s.frames,
        s.bad_crc,
        s.unknown_type,
        s.bad_payload,
        s.bad_field,
        s.bad_version,
        s.oversize,
    )
    assert got == (1, 1, 1, 1, 1, 1, 1)
    assert s.garbage_bytes + s.truncated_bytes + len(good) == len(stream)


def test_deeply_nested_payload_is_rejected_not_raised():
    body = b"\x91" * 100_000 + b"\x00"  # 100k nested one-element arrays
    d = FrameDecoder()
    assert d.feed(raw_frame(7, body)) == []
    assert d.stats.too_deep == 1


def test_trailing_half_magic_is_kept_then_completed():
    good = encode_frame(FrameType.EXIT, {"code": 0})
    d = FrameDecoder()
    assert d.feed(b"zzS") == []
    assert d.pending == b"S"
    assert d.consumed == 2
    frames = d.feed(good[1:])  # the kept "S" completes the split magic
    assert [(f.payload, f.offset) for f in frames] == [({"code": 0}, 2)]
    assert d.stats.garbage_bytes == 2


def test_frame_hidden_behind_garbage_header_is_recovered_at_finish():
    fake_header = raw_frame(3, b"", length=1000)[:HEADER_SIZE]
    good = encode_frame(FrameType.EXIT, {"code": 4})
    d = FrameDecoder()
    assert d.feed(fake_header + good) == []  # waits for the 1000 announced bytes
    frames = d.finish()
    assert [f.payload for f in frames] == [{"code": 4}]
    assert frames[0].offset == HEADER_SIZE
    assert d.stats.truncated_bytes == HEADER_SIZE
    assert d.pending == b""


def test_resume_from_checkpoint():
    good = [encode_frame(FrameType.PHASE, {"name": str(i), "t_ns": i}) for i in range(3)]
    stream = b"".join(good)
    cut = len(good[0]) + 5
    d1 = FrameDecoder()
    first = d1.feed(stream[:cut])
    d2 = FrameDecoder(start_offset=d1.consumed)
    rest = d2.feed(d1.pending + stream[cut:])
    assert [f.offset for f in first + rest] == [0, len(good[0]), len(good[0]) + len(good[1])]


# --- property tests ------------------------------------------------------------------

_text = st.text(max_size=20)
_file_kind = st.sampled_from(["scheduler", "lib", "include", "payload"])
_payloads = {
    FrameType.SHELL_READY: st.fixed_dictionaries(
        {"pid": st.integers(0, 2**22), "tty": st.booleans()}
    ),
    FrameType.SHELL_OUT: st.fixed_dictionaries({"data": st.binary(max_size=300)}),
    FrameType.SHELL_ERR: st.fixed_dictionaries({"data": st.binary(max_size=300)}),
    FrameType.SHELL_EXIT: st.fixed_dictionaries(
        {"code": st.integers(-1, 255), "signal": st.integers(0, 64)}
    ),
    FrameType.SHELL_IN: st.fixed_dictionaries({"data": st.binary(max_size=300)}),
    FrameType.SHELL_EOF: st.just({}),
    FrameType.SHELL_WINCH: st.fixed_dictionaries(
        {"rows": st.integers(1, 4096), "cols": st.integers(1, 4096)}
    ),
    FrameType.SHELL_SIGNAL: st.fixed_dictionaries({"signal": st.integers(1, 64)}),
    FrameType.SYS_RDY: st.fixed_dictionaries(
        {"kernel": _text, "cpus": st.integers(1, 512), "boot_ns": st.integers(0, 2**63)}
    ),
    FrameType.PHASE: st.fixed_dictionaries({"name": _text, "t_ns": st.integers(0, 2**63)}),
    FrameType.STDOUT: st.fixed_dictionaries({"data": st.binary(max_size=300)}),
    FrameType.STDERR: st.fixed_dictionaries({"data": st.binary(max_size=300)}),
    FrameType.LOG: st.fixed_dictionaries({"level": st.sampled_from(wire.LOG_LEVELS), "msg": _text}),
    FrameType.RESULT: st.fixed_dictionaries(
        {"passed": st.booleans(), "reason": _text},
        optional={
            "workers": st.lists(
                st.fixed_dictionaries(
                    {
                        "cgroup": _text,
                        "pid": st.integers(0, 2**31),
                        "work_units": st.integers(0, 2**64 - 1),
                        "cpu_time_ns": st.integers(0, 2**63),
                        "max_gap_ms": st.floats(allow_nan=False, allow_infinity=False),
                    }
                ),
                max_size=4,
            ),
            "extra": st.lists(st.integers(-(2**63), 2**64 - 1), max_size=4),
        },
    ),
    FrameType.EXIT: st.fixed_dictionaries({"code": st.integers(-(2**31), 2**31)}),
    FrameType.DUMP: st.fixed_dictionaries({"source": _text, "data": st.binary(max_size=100)}),
    FrameType.INPUTS_ACK: st.fixed_dictionaries(
        {
            "ok": st.booleans(),
            "error": _text,
            "files": st.lists(
                st.fixed_dictionaries(
                    {
                        "kind": _file_kind,
                        "name": _text,
                        "path": _text,
                        "size": st.integers(0, 2**40),
                        "sha256": _text,
                    }
                ),
                max_size=3,
            ),
        }
    ),
    FrameType.RUN: st.fixed_dictionaries(
        {"doc": st.dictionaries(_text, st.integers(0, 2**32), max_size=3)}
    ),
    FrameType.FILE_BEGIN: st.fixed_dictionaries(
        {
            "index": st.integers(0, 255),
            "kind": _file_kind,
            "name": _text,
            "mode": st.integers(0, 511),
            "size": st.integers(0, 2**40),
            "sha256": _text,
        }
    ),
    FrameType.FILE_CHUNK: st.fixed_dictionaries(
        {
            "index": st.integers(0, 255),
            "offset": st.integers(0, 2**40),
            "data": st.binary(max_size=300),
        }
    ),
    FrameType.FILE_END: st.fixed_dictionaries({"index": st.integers(0, 255)}),
    FrameType.SCHED_LOG: st.fixed_dictionaries(
        {
            "stream": st.sampled_from(["stdout", "stderr"]),
            "data": st.binary(max_size=200),
            "seq": st.integers(1, 2**32),
            "dropped": st.integers(0, 2**40),
            "eof": st.booleans(),
        }
    ),
    FrameType.SCHED_ATTACH: st.fixed_dictionaries(
        {
            "status": _text,
            "attached": st.booleans(),
            "ops": _text,
            "message": _text,
            "pid": st.integers(0, 2**22),
            "exit_status": _text,
            "state": _text,
        },
        optional={"attach_ms": st.floats(0, 1e6)},
    ),
    FrameType.SCHED_EXIT: st.fixed_dictionaries(
        {
            "t_ns": st.integers(0, 2**63),
            "trigger": st.sampled_from(["died", "disabled"]),
            "state": _text,
            "exit_status": _text,
            "ops": _text,
            "dump_bytes": st.integers(0, 2**22),
            "headline": _text,
        }
    ),
    FrameType.SCHED_STOP: st.fixed_dictionaries(
        {
            "status": _text,
            "detached": st.booleans(),
            "killed": st.booleans(),
            "problems": st.lists(_text, max_size=3),
            "exit_status": _text,
            "state": _text,
            "wait_ms": st.floats(0, 1e6),
        }
    ),
}
valid_frames = st.sampled_from(list(FrameType)).flatmap(
    lambda t: _payloads[t].map(lambda p, t=t: (t, p))
)


@st.composite
def garbage(draw):
    """Bytes that are not an intact frame: random, magic-laden, corrupt or truncated frames."""
    kind = draw(st.sampled_from(["random", "magic", "flip", "truncate", "header"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=64))
    if kind == "magic":
        return wire.MAGIC + draw(st.binary(max_size=20))
    t, p = draw(valid_frames)
    data = encode_frame(t, p)
    if kind == "flip":  # crc32 detects every single-byte error
        i = draw(st.integers(0, len(data) - 1))
        bit = 1 << draw(st.integers(0, 7))
        return data[:i] + bytes([data[i] ^ bit]) + data[i + 1 :]
    if kind == "truncate":
        return data[: draw(st.integers(1, len(data) - 1))]
    # a plausible header announcing a payload that never comes as announced
    return raw_frame(t, b"", length=draw(st.integers(1, 400)))[:HEADER_SIZE]


def _split(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


# deadline=None: the shared test machine is often loaded; timing is not under test here.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.one_of(valid_frames.map(lambda f: ("ok", f)), garbage().map(lambda g: ("bad", g))),
        max_size=25,
    ),
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
)
def test_decoder_yields_exactly_the_intact_frames(items, cuts):
    stream, expected = b"", []
    for kind, item in items:
        if kind == "ok":
            data = encode_frame(*item)
            expected.append((item[0], item[1], len(stream)))
            stream += data
        else:
            stream += item
    d = FrameDecoder()
    got = []
    for chunk in _split(stream, cuts):
        got += d.feed(chunk)
        assert len(d.pending) <= HEADER_SIZE + MAX_FRAME
    got += d.finish()
    assert [(f.type, f.payload, f.offset) for f in got] == expected
    s = d.stats
    assert s.frames == len(expected)
    assert sum(f.size for f in got) + s.garbage_bytes + s.truncated_bytes == len(stream)
    assert d.pending == b"" and d.consumed == len(stream)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=600), max_size=20),
    max_frame=st.integers(0, 300),
)
def test_decoder_memory_bounded_on_arbitrary_input(chunks, max_frame):
    d = FrameDecoder(max_frame=max_frame)
    for c in chunks:
        for f in d.feed(wire.MAGIC + bytes([1]) + c):
            assert f.size <= HEADER_SIZE + max_frame
        assert len(d.pending) <= HEADER_SIZE + max_frame
    d.finish()
    assert d.pending == b""


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_decode_frame_never_raises_anything_but_wire_error(data):
    try:
        decode_frame(wire.MAGIC + bytes([1]) + data)
    except WireError:
        pass
