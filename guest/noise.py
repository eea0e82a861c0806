"""Deliberately broken bulk-port traffic, for testing the host's decoder end to end.

Each round is: garbage bytes, a frame with a wrong crc, a frame of an unknown type (valid
crc), a header announcing more than MAX_FRAME, a truncated frame (header and half its
payload), then hostile frames: valid crc and valid msgpack, but payloads the host must
refuse (:data:`HOSTILE`: extension types, non-string keys, deep nesting, oversize values,
a non-finite float, a RESULT that claims a pass with a malformed workers list). Each
hostile frame is followed by a real LOG frame, ``noise <round>.<k>``: all of those, and
every real frame sent afterwards, must reach the host.
"""

from __future__ import annotations

import binascii

import msgpack

from guest import schema, wire

__all__ = ("HOSTILE", "hostile_frames", "noise_round", "real_marker")

_UNKNOWN_TYPE = 0xEE
_LOG: dict[object, object] = {"level": "info", "msg": "hostile"}
_T = wire.FrameType

#: ``(decoder counter it must bump, frame type, payload)``: valid msgpack the host rejects.
HOSTILE = (
    ("ext_type", _T.LOG, {**_LOG, "at": msgpack.Timestamp(1, 2)}),
    ("ext_type", _T.PHASE, {"name": "x", "t_ns": 1, "blob": msgpack.ExtType(42, b"\x00" * 8)}),
    ("bad_key", _T.LOG, {**_LOG, 7: "an int key"}),
    ("bad_key", _T.DUMP, {"source": "x", "data": b"", "nested": {b"bytes key": 1}}),
    (
        "too_deep",
        _T.RESULT,
        {"passed": True, "reason": "deep", "x": [[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]},
    ),
    ("too_large", _T.LOG, {"level": "info", "msg": "m" * (schema.MAX_STR + 1)}),
    ("too_large", _T.PHASE, {"name": "x", "t_ns": 1, "many": [0] * (schema.MAX_ITEMS + 1)}),
    ("non_finite", _T.PHASE, {"name": "x", "t_ns": 1, "f": float("nan")}),
    (
        "bad_field",
        _T.RESULT,
        {"passed": True, "reason": "forged", "workers": [{"cgroup": 1, "pid": "x"}]},
    ),
    ("bad_field", _T.EXIT, {"code": "0"}),
)


def _frame(ftype: int, payload: object) -> bytes:
    """A frame with a valid crc whatever the payload (bypasses encode_frame's checks)."""
    body = msgpack.packb(payload, use_bin_type=True, strict_types=False)
    prefix = wire._PREFIX.pack(wire.MAGIC, wire.VERSION, ftype, len(body))
    return prefix + binascii.crc32(body, binascii.crc32(prefix)).to_bytes(4, "little") + body


def real_marker(i: int, k: int) -> str:
    """The ``msg`` of the real LOG frame after hostile frame ``k`` of round ``i``."""
    return f"noise {i}.{k}"


def hostile_frames(i: int) -> bytes:
    """Each :data:`HOSTILE` frame, each followed by a real LOG frame (:func:`real_marker`)."""
    out = []
    for k, (_, ftype, payload) in enumerate(HOSTILE):
        out.append(_frame(ftype, payload))
        out.append(wire.encode_frame(_T.LOG, {"level": "debug", "msg": real_marker(i, k)}))
    return b"".join(out)


def noise_round(i: int) -> bytes:
    """The bytes of round ``i``."""
    good = wire.encode_frame(wire.FrameType.LOG, {"level": "debug", "msg": f"noise {i}" * 4})
    bad_crc = bytearray(good)
    bad_crc[8] ^= 0xFF
    unknown = _frame(_UNKNOWN_TYPE, {})
    oversize = wire.HEADER.pack(wire.MAGIC, wire.VERSION, wire.FrameType.LOG, wire.MAX_FRAME + 1, 0)
    truncated = good[: wire.HEADER_SIZE + (len(good) - wire.HEADER_SIZE) // 2]
    garbage = bytes((i * 37 + k * 11) & 0xFF for k in range(61)).replace(wire.MAGIC, b"xx")
    # The hostile frames go first: the truncated frame's announced length swallows what follows.
    return hostile_frames(i) + garbage + bytes(bad_crc) + unknown + oversize + truncated
