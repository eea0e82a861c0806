"""Dataclass state <-> msgpack, checked by type on the way back in.

A snapshot file is ``MAGIC | u32 format version | sha256(payload) | payload``; decoding
rebuilds the dataclasses field by field from their type hints, so a damaged or foreign file
ends in one ``SnapshotError`` naming the first field that does not fit, never in a half-built
object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import types
import typing
from typing import Any, TypeVar

import msgpack  # type: ignore[import-untyped]

__all__ = ("FORMAT_VERSION", "SnapshotError", "decode", "encode", "from_plain", "to_plain")

MAGIC = b"SCHEDLAB-SNAP\0"
FORMAT_VERSION = 1
_HEADER = struct.Struct(f"<{len(MAGIC)}sI32s")
_MAX_DEPTH = 16

T = TypeVar("T")


class SnapshotError(Exception):
    """A snapshot that cannot be used; the message says why (the caller boots cold)."""


def to_plain(obj: Any) -> Any:
    """Dataclasses, lists, tuples and dicts -> msgpack-able maps and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(tp: Any, data: Any, where: str = "state", depth: int = 0) -> Any:
    """Rebuild a value of type ``tp`` from :func:`to_plain` output; SnapshotError if it does not fit."""
    if depth > _MAX_DEPTH:
        raise SnapshotError(f"{where}: nested too deeply")
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, where, depth)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(tp):
            if option is type(None) and data is None:
                return None
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        return from_plain(options[0], data, where, depth + 1)
    if origin is list:
        (item,) = typing.get_args(tp)
        _expect(data, list, where)
        return [from_plain(item, v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
    if origin is tuple:
        args = typing.get_args(tp)
        _expect(data, list, where)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(data)
        if len(args) != len(data):
            raise SnapshotError(f"{where}: {len(data)} items, expected {len(args)}")
        return tuple(
            from_plain(a, v, f"{where}[{i}]", depth + 1)
            for i, (a, v) in enumerate(zip(args, data, strict=True))
        )
    if origin is dict:
        kt, vt = typing.get_args(tp)
        _expect(data, dict, where)
        return {
            from_plain(kt, k, f"{where} key", depth + 1): from_plain(
                vt, v, f"{where}[{k!r}]", depth + 1
            )
            for k, v in data.items()
        }
    if tp is Any:
        return data
    if tp is bool:
        _expect(data, bool, where)
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise SnapshotError(f"{where}: expected an integer, got {type(data).__name__}")
        return data
    if tp in (str, bytes, float):
        _expect(data, tp, where)
        return data
    raise SnapshotError(f"{where}: no decoder for {tp!r}")


def _expect(data: Any, tp: type, where: str) -> None:
    if not isinstance(data, tp):
        raise SnapshotError(f"{where}: expected {tp.__name__}, got {type(data).__name__}")


def _dataclass(tp: Any, data: Any, where: str, depth: int) -> Any:
    _expect(data, dict, where)
    hints = typing.get_type_hints(tp)
    names = {f.name for f in dataclasses.fields(tp)}
    unknown = set(data) - names
    if unknown:
        raise SnapshotError(f"{where}: unknown fields {sorted(map(str, unknown))}")
    values = {}
    for f in dataclasses.fields(tp):
        if f.name not in data:
            raise SnapshotError(f"{where}.{f.name}: missing")
        values[f.name] = from_plain(hints[f.name], data[f.name], f"{where}.{f.name}", depth + 1)
    return tp(**values)


def encode(state: Any) -> bytes:
    """Header plus the msgpack of ``to_plain(state)``."""
    payload = msgpack.packb(to_plain(state), use_bin_type=True)
    return _HEADER.pack(MAGIC, FORMAT_VERSION, hashlib.sha256(payload).digest()) + payload


def decode(tp: type[T], blob: bytes) -> T:
    """Check header, version and checksum, then rebuild a ``tp``."""
    if len(blob) < _HEADER.size:
        raise SnapshotError(f"state file of {len(blob)} bytes is truncated")
    magic, version, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise SnapshotError("not a schedlab snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format {version}, this schedlab reads {FORMAT_VERSION}")
    payload = blob[_HEADER.size :]
    if hashlib.sha256(payload).digest() != digest:
        raise SnapshotError("state file checksum mismatch (corrupt)")
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise SnapshotError(f"state file does not decode: {e}") from None
    result: T = from_plain(tp, data)
    return result
