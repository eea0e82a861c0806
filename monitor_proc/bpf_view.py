"""The monitor's BPF view: the periodic listing of programs and maps (``sample["bpf"]``)
and the answers to the ``monitor.bpf.*`` control requests (list, read, write).

Every failure to read the guest becomes part of the answer (an ``error`` field, or one
:class:`~schedlab_shared.bus.codec.BusError` line), never an exception out of the sampler.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from monitor_proc.btf import BtfError
from monitor_proc.btf_value import ValueDecodeError
from monitor_proc.helpers.bpf_map import (
    MapError,
    bpf_map_list,
    bpf_map_read,
    bpf_map_write,
    find_map,
)
from monitor_proc.helpers.bpf_prog import bpf_prog_list, bpf_stats_enabled
from monitor_proc.memory import FaultError
from monitor_proc.program import BadDataError, Program
from monitor_proc.translate import TranslationError
from schedlab_shared.bus import monitor as proto
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.monitor_schema import MAX_BPF_ITEMS

__all__ = ("MAX_LISTING_BYTES", "bpf_listing", "list_reply", "read_reply", "write_reply")

#: A listing rides in one sample line (readers skip lines over 64 KiB): values go first.
MAX_LISTING_BYTES = 48 << 10
_GUEST_ERRORS = (
    BadDataError,
    FaultError,
    TranslationError,
    BtfError,
    ValueDecodeError,
    struct.error,
)


def _size(d: Any) -> int:
    return len(json.dumps(d, separators=(",", ":")))


def bpf_listing(prog: Program, offsets: tuple[int, ...] | None, at_ms: float) -> dict[str, Any]:
    """``{at_ms, stats_enabled, progs, maps}`` (:data:`~schedlab_shared.monitor_schema.
    BPF_FIELDS`), or with ``error`` when the IDRs could not be walked this time."""
    out: dict[str, Any] = {"at_ms": round(at_ms, 1)}
    try:
        out["stats_enabled"] = bpf_stats_enabled(prog)
        out["progs"] = bpf_prog_list(prog, offsets)[:MAX_BPF_ITEMS]
        out["maps"] = bpf_map_list(prog)[:MAX_BPF_ITEMS]
    except _GUEST_ERRORS as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    if _size(out) > MAX_LISTING_BYTES:  # largest values first, until the line fits
        for m in sorted(out["maps"], key=lambda m: -_size(m.get("values", ""))):
            if "values" in m:
                del m["values"]
                m["values_error"] = "too large for the sample line: use `attach ... bpf read`"
                if _size(out) <= MAX_LISTING_BYTES:
                    break
    if _size(out) > MAX_LISTING_BYTES:
        out["progs"], out["maps"] = [], []
        out["error"] = "the listing does not fit a sample line"
    return out


def _guest(exc: Exception) -> BusError:
    return BusError(Status.INTERNAL, f"guest memory unreadable: {type(exc).__name__}: {exc}")


def list_reply(prog: Program, what: str) -> proto.BpfListReply:
    if what not in proto.BPF_LIST_WHAT:
        raise BusError(Status.BAD_MESSAGE, f"bpf list: {what!r} is not one of progs, maps")
    try:
        stats = bpf_stats_enabled(prog)
        items = bpf_prog_list(prog) if what == "progs" else bpf_map_list(prog, values=False)
    except _GUEST_ERRORS as exc:
        raise _guest(exc) from None
    return proto.BpfListReply(items=items[:MAX_BPF_ITEMS], stats_enabled=stats)


def _map(prog: Program, name: str) -> Any:
    try:
        return find_map(prog, name)
    except MapError as exc:
        raise BusError(Status.NOT_FOUND, str(exc)) from None


def read_reply(prog: Program, name: str, key_text: str) -> proto.BpfReadReply:
    try:
        key = proto.parse_map_key(key_text) if key_text else None
    except ValueError as exc:
        raise BusError(Status.BAD_MESSAGE, str(exc)) from None
    try:
        m = _map(prog, name)
        entries = bpf_map_read(prog, m, key)
    except MapError as exc:
        raise BusError(Status.BAD_MESSAGE, str(exc)) from None
    except _GUEST_ERRORS as exc:
        raise _guest(exc) from None
    return proto.BpfReadReply(map=m.info(), entries=entries)


def write_reply(
    prog: Program, req: proto.BpfWrite, write: Callable[[int, bytes], None]
) -> proto.BpfWriteReply:
    try:
        key = proto.parse_map_key(req.key)
        path, value = proto.parse_field_value(req.assignment)
    except ValueError as exc:
        raise BusError(Status.BAD_MESSAGE, str(exc)) from None
    try:
        m = _map(prog, req.map)
        out = bpf_map_write(prog, m, key, path, value, write)
    except MapError as exc:
        raise BusError(Status.BAD_MESSAGE, str(exc)) from None
    except (PermissionError, *_GUEST_ERRORS) as exc:
        raise _guest(exc) from None
    return proto.BpfWriteReply(**out)
