"""Contract of the monitor_proc channels."""

from __future__ import annotations

import enum
from typing import Any

from .codec import Message, message

__all__ = (
    "BPF_LIST_WHAT",
    "BpfList",
    "BpfListReply",
    "BpfRead",
    "BpfReadReply",
    "BpfWrite",
    "BpfWriteReply",
    "MonitorState",
    "MonitorStatus",
    "MonitorStatusReply",
    "Sample",
    "parse_field_value",
    "parse_map_key",
)


class MonitorState(enum.StrEnum):
    """``MonitorStatusReply.state``."""

    WAITING = "waiting"  # for the VM to run and the guest to send SYS_RDY
    SAMPLING = "sampling"
    STOPPED = "stopped"


@message("monitor.sample")
class Sample(Message):
    """Event ``{elapsed_ms, cpus: [{cpu, nr_running, rq_clock, ...}], monitor, scx?,
    vcpus?, domains?, watchdog?, bpf?}`` on ``vm.<id>.monitor.sample``; ``elapsed_ms`` counts
    from VM start (host clock). The fields are those of a sample line
    (:mod:`schedlab_shared.monitor_schema`); an absent one is None here."""

    elapsed_ms: float
    cpus: list
    monitor: str = ""
    scx: dict | None = None
    vcpus: dict | None = None
    domains: list | None = None
    watchdog: dict | None = None
    bpf: dict | None = None


@message("monitor.status.reply")
class MonitorStatusReply(Message):
    """``{state, samples, errors, last_error}``; ``state`` is a MonitorState."""

    state: str
    samples: int
    errors: int
    last_error: str = ""


@message("monitor.status", reply=MonitorStatusReply)
class MonitorStatus(Message):
    """Request ``{}`` -> MonitorStatusReply."""


# -- BPF programs and maps of the live guest, read (and one field written) by the monitor --

BPF_LIST_WHAT = ("progs", "maps")
_MAX_ARG = 256


def parse_map_key(text: str) -> int:
    """A map key as given on a command line: a decimal or ``0x`` integer, at least 0 (an
    ARRAY index, or a HASH key packed little-endian in the map's key size).

    :raises ValueError: anything else (the message says what a key looks like).
    """
    try:
        key = int(text, 0) if len(text) <= _MAX_ARG else -1
    except ValueError:
        key = -1
    if key < 0:
        raise ValueError(f"key {text[:40]!r} is not a non-negative integer (e.g. 0, 42, 0x2a)")
    return key


def parse_field_value(text: str) -> tuple[str, int | bool]:
    """``FIELD=VALUE`` as given on a command line: a dotted field path (DATASEC variables,
    struct members, array indexes) and an integer (decimal, ``0x``, negative) or
    ``true``/``false``.

    :raises ValueError: no ``=``, an empty field, or a value that is not a number.
    """
    field, sep, raw = text.partition("=")
    field, raw = field.strip(), raw.strip()
    if not sep or not field or len(text) > _MAX_ARG:
        raise ValueError(f"{text[:40]!r} is not FIELD=VALUE (e.g. nr_dispatched=0)")
    if raw.lower() in ("true", "false"):
        return field, raw.lower() == "true"
    try:
        return field, int(raw, 0)
    except ValueError:
        raise ValueError(f"{field}: value {raw[:40]!r} is not an integer or true/false") from None


@message("monitor.bpf.list.reply")
class BpfListReply(Message):
    """``{stats_enabled, items}``: the entries of ``monitor_schema.BPF_PROG_FIELDS`` or
    ``BPF_MAP_FIELDS`` (maps without their values)."""

    items: list
    stats_enabled: bool | None = None


@message("monitor.bpf.list", reply=BpfListReply)
class BpfList(Message):
    """Request ``{what: "progs"|"maps"}`` -> BpfListReply; NOT_ALLOWED before the monitor
    samples (the guest is still booting)."""

    what: str


@message("monitor.bpf.read.reply")
class BpfReadReply(Message):
    """``{map, entries}``: the map's listing entry and ``[{key, value}]`` decoded with its
    BTF (hex without; a list over CPUs for per-CPU maps)."""

    map: dict
    entries: list


@message("monitor.bpf.read", reply=BpfReadReply)
class BpfRead(Message):
    """Request ``{map, key}``: ``map`` a name or a numeric ID; ``key`` as
    :func:`parse_map_key` reads it, "" for every entry (bounded). NOT_FOUND: no such map;
    BAD_MESSAGE: a key or map kind that does not fit."""

    map: str
    key: str = ""


@message("monitor.bpf.write.reply")
class BpfWriteReply(Message):
    """``{map, key, field, previous, value}``: the field before the write and read back
    after it."""

    map: str
    key: int
    field: str
    previous: Any
    value: Any


@message("monitor.bpf.write", reply=BpfWriteReply)
class BpfWrite(Message):
    """Request ``{map, key, assignment}``: store ``FIELD=VALUE`` (:func:`parse_field_value`)
    into element ``key`` of an ARRAY map with BTF, then read it back."""

    map: str
    key: str
    assignment: str
