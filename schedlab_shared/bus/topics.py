"""Topic names of published events, built and parsed here only.

A topic is ``vm.<vm_id>.<channel>[.<name>]``; subscriptions match by prefix, as ZeroMQ
subscriptions do, so every prefix ends at a dot (``vm.a.`` never matches ``vm.ab.``).

>>> stream("r1", "bulk")
'vm.r1.stream.bulk'
>>> parse(stream("r1", "bulk"))
Topic(vm_id='r1', channel='stream', name='bulk')
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = (
    "Topic",
    "STREAM",
    "STATE",
    "GUEST",
    "MONITOR",
    "vm_prefix",
    "stream",
    "stream_prefix",
    "vm_state",
    "guest",
    "monitor_sample",
    "parse",
)

# Channels: the third dotted part of a topic.
STREAM = "stream"  # vmm_proc: bytes of one guest stream (name: the stream)
STATE = "state"  # vmm_proc: VM state changes (no name)
GUEST = "guest"  # collector_proc: decoded guest messages (name: the frame type)
MONITOR = "monitor"  # monitor_proc: samples (name: "sample")
_CHANNELS = frozenset({STREAM, STATE, GUEST, MONITOR})


class Topic(NamedTuple):
    """A parsed topic; ``name`` is "" for channels without one."""

    vm_id: str
    channel: str
    name: str


def _checked(vm_id: str) -> str:
    if not vm_id or "." in vm_id:
        raise ValueError(f"vm id {vm_id!r}: must be non-empty and hold no dot")
    return vm_id


def vm_prefix(vm_id: str) -> str:
    """Every topic of one VM."""
    return f"vm.{_checked(vm_id)}."


def stream(vm_id: str, name: str) -> str:
    """Bytes of one guest stream (``schedlab_shared.bus.vmm.Stream``)."""
    return f"{stream_prefix(vm_id)}{name}"


def stream_prefix(vm_id: str) -> str:
    """Every stream of one VM."""
    return f"{vm_prefix(vm_id)}{STREAM}."


def vm_state(vm_id: str) -> str:
    return f"{vm_prefix(vm_id)}{STATE}"


def guest(vm_id: str, frame_type: str = "") -> str:
    """Decoded guest messages of one frame type, or (no type) the prefix of all of them."""
    return f"{vm_prefix(vm_id)}{GUEST}.{frame_type}"


def monitor_sample(vm_id: str) -> str:
    return f"{vm_prefix(vm_id)}{MONITOR}.sample"


def parse(topic: str) -> Topic | None:
    """Split a received topic; None for anything that is not a topic built here."""
    parts = topic.split(".", 3)
    if len(parts) < 3 or parts[0] != "vm" or not parts[1] or parts[2] not in _CHANNELS:
        return None
    name = parts[3] if len(parts) == 4 else ""
    if (parts[2] == STATE) != (name == ""):
        return None  # a state topic has no name; every other channel has one
    return Topic(parts[1], parts[2], name)
