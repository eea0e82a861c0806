"""Deliberately broken bulk-port traffic, for testing the host's decoder end to end.

Each round is: garbage bytes, a frame with a wrong crc, a frame of an unknown type (valid
crc), a header announcing more than MAX_FRAME, and a truncated frame (header and half its
payload). Real frames sent afterwards must all reach the host.
"""

from __future__ import annotations

import binascii

from guest import wire

__all__ = ("noise_round",)

_UNKNOWN_TYPE = 0xEE


def noise_round(i: int) -> bytes:
    """The bytes of round ``i``."""
    good = wire.encode_frame(wire.FrameType.LOG, {"level": "debug", "msg": f"noise {i}" * 4})
    bad_crc = bytearray(good)
    bad_crc[8] ^= 0xFF
    body = b"\x80"  # an empty msgpack map
    prefix = wire._PREFIX.pack(wire.MAGIC, wire.VERSION, _UNKNOWN_TYPE, len(body))
    unknown = prefix + binascii.crc32(prefix + body).to_bytes(4, "little") + body
    oversize = wire.HEADER.pack(wire.MAGIC, wire.VERSION, wire.FrameType.LOG, wire.MAX_FRAME + 1, 0)
    truncated = good[: wire.HEADER_SIZE + (len(good) - wire.HEADER_SIZE) // 2]
    garbage = bytes((i * 37 + k * 11) & 0xFF for k in range(61)).replace(wire.MAGIC, b"xx")
    return garbage + bytes(bad_crc) + unknown + oversize + truncated
