"""Contract of the vmm_proc channels: its control requests and the events it publishes."""

from __future__ import annotations

import enum
from dataclasses import field
from typing import Any

from .codec import Message, message

__all__ = (
    "STREAMS",
    "Stream",
    "VmState",
    "ExitReason",
    "StatusReply",
    "Status_",
    "Stop",
    "ConsoleWrite",
    "BulkWrite",
    "BulkWriteReply",
    "MAX_BULK_WRITE",
    "MAX_BULK_WAIT_S",
    "ReplayReply",
    "ShellWrite",
    "ShellWriteReply",
    "Replay",
    "StreamChunk",
    "VmStateEvent",
    "Empty",
    "layout_regions",
    "VcpuTimes",
    "VcpuTimesReply",
)

#: Largest ``data`` of one BulkWrite; a bigger one is a bad request.
MAX_BULK_WRITE = 1 << 20
#: Longest wait the VMM grants one BulkWrite (its loop serves nothing else meanwhile).
MAX_BULK_WAIT_S = 0.5


class Stream(enum.StrEnum):
    """Byte streams every engine delivers, by name on the bus (topics, replays, status)."""

    CONSOLE = "console"  # COM1: the kernel console
    DIAG = "diag"  # COM2: crash diagnostics (the guest init's PANIC: lines)
    HVC0 = "hvc0"  # virtio-console port 0 (guest /dev/hvc0)
    BULK = "bulk"  # the guest wire frames (guest.wire)
    SHELL = "shell"  # the shell port's frames (guest.wire SHELL_*, guest.shellphase)


STREAMS: tuple[Stream, ...] = tuple(Stream)


class VmState(enum.StrEnum):
    """``StatusReply.state`` and ``VmStateEvent.state``; only ever moves forward."""

    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"


class ExitReason(enum.StrEnum):
    """Why the VM is gone: ``StatusReply.exit_reason``, ``Stop.reason``, ``VmStateEvent.reason``."""

    GUEST_EXIT = "guest-exit"  # the guest rebooted/powered off on its own
    TIMEOUT = "timeout"  # the VMM stopped it at the deadline
    CRASH = "crash"  # kernel panic, triple fault, emulation failure
    STOPPED = "stopped"  # a stop request from the bus
    SCHED_EXIT = "sched-exit"  # stopped by the orchestrator: the scheduler under test exited
    ERROR = "error"  # the engine itself failed (QEMU died, KVM error)


@message("empty")
class Empty(Message):
    """A reply with no fields."""


@message("vmm.status.reply")
class StatusReply(Message):
    """``{state, engine, run_id, started_at, layout, streams, exit_reason, exit_detail, notes}``.

    ``state`` is a VmState; ``exit_reason`` an ExitReason once exited; ``started_at`` is host wall-clock seconds
    at VM start; ``layout`` lists guest RAM regions ``{gpa, size, path, offset}``; ``streams``
    maps each stream name to its next sequence number; ``notes`` are the engine's lines
    about how the VM runs (performance mode: each measure applied or refused, by name).
    """

    state: str
    engine: str
    run_id: str
    started_at: float
    layout: list
    streams: dict
    exit_reason: str = ""
    exit_detail: str = ""
    notes: list = field(default_factory=list)


@message("vmm.status", reply=StatusReply)
class Status_(Message):
    """Request ``{}`` -> StatusReply. State is fetched this way, never inferred from events."""


@message("vmm.stop", reply=Empty)
class Stop(Message):
    """Request ``{reason}`` (an ExitReason): stop the VM (idempotent). The exit follows as a
    VmStateEvent."""

    reason: str = ExitReason.STOPPED.value


@message("vmm.console_write", reply=Empty)
class ConsoleWrite(Message):
    """Request ``{data}``: host-to-guest bytes on the console port (guest /dev/hvc0)."""

    data: bytes


@message("vmm.bulk_write.reply")
class BulkWriteReply(Message):
    """``{accepted, offset, pending}``: bytes of this request's ``data`` now taken (counting
    those an earlier try already took), the stream offset after everything taken so far,
    and bytes the VMM holds that the guest has not read yet."""

    accepted: int
    offset: int
    pending: int


@message("vmm.bulk_write", reply=BulkWriteReply)
class BulkWrite(Message):
    """Request ``{data, offset, timeout_s}``: host-to-guest bytes on the bulk port (guest
    /dev/vport0p1, the port the guest's frames come from).

    Flow-controlled: the VMM holds a bounded amount for the guest (the device's buffer or
    the QEMU chardev socket's), takes what fits, and waits up to ``timeout_s`` (capped at
    MAX_BULK_WAIT_S) for the guest to make room for the rest; ``accepted`` may be less than
    ``len(data)``, 0 when the guest is not reading, and the client sends the rest again.

    ``offset`` is the stream offset of ``data[0]`` (bytes taken before it on this VM's bulk
    input): bytes the VMM already took are skipped, so resending after a lost reply is safe;
    an offset beyond what was taken is a gap (BAD_MESSAGE). ``-1`` appends unchecked.
    NOT_ALLOWED unless the VM is running; BAD_MESSAGE for more than MAX_BULK_WRITE bytes.
    """

    data: bytes
    offset: int = -1
    timeout_s: float = 0.2


@message("vmm.shell_write.reply")
class ShellWriteReply(Message):
    """``{accepted}``: bytes of ``data`` the VMM took for the guest's shell port."""

    accepted: int


@message("vmm.shell_write", reply=ShellWriteReply)
class ShellWrite(Message):
    """Request ``{data, timeout_s}``: host-to-guest bytes (SHELL_* frames) on the shell port.

    Flow-controlled like BulkWrite: ``accepted`` may be less than ``len(data)`` (0 while the
    guest has not opened the port) and the client sends the rest again. NOT_ALLOWED unless
    the VM is running; BAD_MESSAGE for more than MAX_BULK_WRITE bytes.
    """

    data: bytes
    timeout_s: float = 0.05


@message("vmm.replay.reply")
class ReplayReply(Message):
    """``{chunks: [[seq, data], ...], next_seq, first_seq}``; ``first_seq`` is the oldest kept."""

    chunks: list
    next_seq: int
    first_seq: int


@message("vmm.replay", reply=ReplayReply)
class Replay(Message):
    """Request ``{stream, from_seq, max_bytes}``: retained chunks of a stream from ``from_seq``.

    Replies GONE when ``from_seq`` is older than what the VMM still retains.
    """

    stream: str
    from_seq: int
    max_bytes: int = 4 << 20


@message("vmm.stream_chunk")
class StreamChunk(Message):
    """Event ``{seq, data}`` on topic ``vm.<id>.stream.<name>``; seq counts chunks from 0."""

    seq: int
    data: bytes


@message("vmm.state")
class VmStateEvent(Message):
    """Event ``{state, reason, detail}`` on topic ``vm.<id>.state``: a VmState, and the
    ExitReason once exited."""

    state: str
    reason: str = ""
    detail: str = ""


@message("vmm.snapshot.reply")
class SnapshotReply(Message):
    """``{ok, paused_ms, error}``: whether the snapshot was written, how long the guest was
    paused, and else why not (one line)."""

    ok: bool
    paused_ms: float
    error: str = ""


@message("vmm.snapshot", reply=SnapshotReply)
class Snapshot(Message):
    """Request ``{directory, key}``: pause the VM, save it as ``directory`` (valid for
    ``key``, a map of strings) with every stream's bytes so far, resume. KVM engine only
    (NOT_ALLOWED otherwise, or unless running)."""

    directory: str
    key: dict


@message("vmm.vcpu_times.reply")
class VcpuTimesReply(Message):
    """``{at_s, run_ns, threads, shared}``: host CPU time each vCPU's thread has run
    (cumulative ns from ``/proc/PID/task/TID/schedstat``, -1 where unreadable), read at host
    monotonic ``at_s``; ``threads`` the thread ids; ``shared`` how many vCPUs one thread
    runs (1: a thread per vCPU; N: QEMU's single-threaded TCG runs all N on one, so a
    thread that ran says nothing about which of its vCPUs did)."""

    at_s: float
    run_ns: list
    threads: list
    shared: int = 1


@message("vmm.vcpu_times", reply=VcpuTimesReply)
class VcpuTimes(Message):
    """Request ``{}`` -> VcpuTimesReply; NOT_ALLOWED unless the VM is running, NOT_FOUND
    when the engine cannot name its vCPU threads."""


def layout_regions(reply: StatusReply) -> list[dict[str, Any]]:
    """The guest RAM layout of a status reply, with each region's fields checked."""
    out = []
    for r in reply.layout:
        if not isinstance(r, dict) or not {"gpa", "size", "path", "offset"} <= r.keys():
            raise ValueError(f"malformed memory region {r!r}")
        out.append({k: r[k] for k in ("gpa", "size", "path", "offset")})
    return out
