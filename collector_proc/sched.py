"""The scheduler under test in the run directory: its log, the kernel's dumps, its lifecycle.

Frames of :mod:`guest.scx` land here (all checked against :data:`guest.wire.SCHEMAS` first):

- ``SCHED_LOG``: the scheduler's stdout and stderr bytes, appended to ``sched.log`` in
  arrival order; where the guest had to drop bytes (its ``dropped`` count grew) a marker
  line says how many.
- ``DUMP`` with source ``sched_ext_dump``: the kernel's state dump (trace_pipe text),
  appended to ``sched_ext_dump.log`` under a header per dump (a dump's first part).
- ``SCHED_ATTACH``, ``SCHED_EXIT``, ``SCHED_STOP``: the first of each is kept in the
  checkpoint's ``sched`` map, so the orchestrator reads them from the status reply
  (and sees a scheduler's exit within one poll, whatever the message count).

:func:`render` computes a frame's effects without side effects and returns a new state map
(never mutating the old one), so the ingest's transactions can roll it back by reference.
"""

from __future__ import annotations

from typing import Any

from guest.wire import Frame, FrameType
from schedlab_shared.run_layout import SCHED_EXT_DUMP, SCHED_LOG

__all__ = ("DUMP_SOURCE", "LIFECYCLE", "render", "wants")

#: DUMP frame source of the kernel's sched_ext dumps (guest.scx.run.DUMP_SOURCE).
DUMP_SOURCE = "sched_ext_dump"
#: Lifecycle frame type -> its key in the state map.
LIFECYCLE = {
    FrameType.SCHED_ATTACH: "attach",
    FrameType.SCHED_EXIT: "exit",
    FrameType.SCHED_STOP: "stop",
}
_STREAMS = ("stdout", "stderr")
_TRIGGER_MAX = 32

Writes = list[tuple[str, bytes]]


def wants(frame: Frame) -> bool:
    """True for the frames :func:`render` handles."""
    t = frame.type
    if t is FrameType.DUMP:
        return frame.payload.get("source") == DUMP_SOURCE
    return t is FrameType.SCHED_LOG or t in LIFECYCLE


def _log(payload: dict[str, Any], state: dict[str, Any]) -> tuple[dict, Writes, dict]:
    stream = payload["stream"] if payload["stream"] in _STREAMS else "other"
    logs = dict(state.get("log") or {})
    prev = logs.get(stream) or {"dropped": 0, "eof": False, "bytes": 0}
    data: bytes = payload["data"]
    dropped = max(int(prev["dropped"]), int(payload["dropped"]))
    writes: Writes = []
    if dropped > prev["dropped"]:
        lost = dropped - prev["dropped"]
        writes.append(
            (SCHED_LOG, f"\n[schedlab: {lost} bytes of {stream} dropped here]\n".encode())
        )
    if data:
        writes.append((SCHED_LOG, data))
    logs[stream] = {
        "dropped": dropped,
        "eof": bool(prev["eof"] or payload["eof"]),
        "bytes": int(prev["bytes"]) + len(data),
    }
    record = {k: payload[k] for k in ("stream", "seq", "dropped", "eof")}
    return record, writes, {**state, "log": logs}


def _dump(payload: dict[str, Any], state: dict[str, Any]) -> tuple[dict, Writes, dict]:
    data: bytes = payload["data"]
    trigger = payload.get("trigger")
    trigger = trigger[:_TRIGGER_MAX] if isinstance(trigger, str) else "dump"
    part = payload.get("part")
    writes: Writes = []
    if not isinstance(part, int) or part == 0:
        writes.append((SCHED_EXT_DUMP, f"=== sched_ext_dump ({trigger}) ===\n".encode()))
    writes.append((SCHED_EXT_DUMP, data))
    dumps = dict(state.get("dumps") or {})
    dumps[trigger] = int(dumps.get(trigger, 0)) + len(data)
    record = {"source": DUMP_SOURCE, "trigger": trigger, "part": part}
    return record, writes, {**state, "dumps": dumps}


def render(
    frame: Frame, state: dict[str, Any], jsonable: Any
) -> tuple[dict[str, Any], Writes, dict[str, Any]]:
    """A frame's message payload, its file writes and the new state map.

    :param frame: a frame :func:`wants` (its payload checked by the wire decoder).
    :param state: the checkpoint's ``sched`` map (not modified).
    :param jsonable: the ingest's bytes-to-JSON converter for lifecycle payloads.
    """
    if frame.type is FrameType.SCHED_LOG:
        return _log(frame.payload, state)
    if frame.type is FrameType.DUMP:
        return _dump(frame.payload, state)
    key = LIFECYCLE[frame.type]
    payload = jsonable(frame.payload)
    if key in state:  # one of each per run: a second one is kept in messages.jsonl only
        return payload, [], state
    return payload, [], {**state, key: payload}
