"""The vmm_proc process: runs one VM through an engine and serves it on the bus.

Every guest byte is appended to a StreamLog and published with its sequence number; the
control channel answers status, stop, console writes and replays. After the VM exits the
process keeps serving replays until it is told to go (SIGTERM) or ``linger_s`` passes, so a
collector can always drain what the guest wrote.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from typing import Any

import zmq

from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as proto
from schedlab_shared.bus.client import Publisher
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.server import ControlServer
from schedlab_shared.bus.vmm import STREAMS, ExitReason, VmState
from schedlab_shared.exitcodes import ProcExit
from schedlab_shared.vm_config import VmConfig

from .engines.base import Engine, EngineError, SnapshotRefused
from .streamlog import ReplayGone, StreamLog
from .vcpu_times import thread_run_ns

__all__ = ("VmmService", "make_engine")

log = logging.getLogger("vmm_proc")


def make_engine(config: VmConfig, hooks: Any, restore: Any = None) -> Engine:
    """The engine of ``config``; ``restore`` (a RestoreFrom) starts the KVM engine from a
    snapshot."""
    if restore is not None and config.engine == "kvm":
        from .engines.kvm import KvmEngine  # type: ignore[attr-defined]

        return KvmEngine(config, hooks, restore=restore)
    if config.engine == "qemu":
        from .engines.qemu import QemuEngine

        return QemuEngine(config, hooks)
    if config.engine == "kvm":
        from .engines.kvm import KvmEngine  # type: ignore[attr-defined]

        return KvmEngine(config, hooks)
    raise EngineError(f"unknown engine {config.engine!r} (qemu or kvm)")


class VmmService:
    """Glue between one engine and the bus; engine callbacks arrive on any thread."""

    def __init__(self, config: VmConfig, ctl: str, pub: str, linger_s: float = 600.0) -> None:
        self.config = config
        self.linger_s = linger_s
        self.ctx = zmq.Context()
        self.pub = Publisher(self.ctx, pub)
        self.server = ControlServer(
            self.ctx,
            ctl,
            {
                proto.Status_: self._on_status,
                proto.Stop: self._on_stop,
                proto.ConsoleWrite: self._on_console_write,
                proto.BulkWrite: self._on_bulk_write,
                proto.ShellWrite: self._on_shell_write,
                proto.Replay: self._on_replay,
                proto.VcpuTimes: self._on_vcpu_times,
                proto.Snapshot: self._on_snapshot,
            },
        )
        self.logs: dict[str, StreamLog] = {name: StreamLog() for name in STREAMS}
        self.state = VmState.STARTING
        self.started_at = 0.0
        self.exit_reason = ""
        self.exit_detail = ""
        self._inbox: deque[tuple[str, Any, Any]] = deque()
        self._inbox_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._terminate = False
        self._bulk_offset = 0  # host-to-guest bulk bytes the engine took
        self.start_notes: list[str] = []
        self._prefix: dict[str, bytes] = {}
        self.engine = self._first_engine(config)

    def _first_engine(self, config: VmConfig) -> Engine:
        if not config.restore_dir:
            return make_engine(config, self)
        from . import restore_start  # a KVM run: the engine's modules load anyway
        from .engines.kvm.snapshot_codec import SnapshotError

        try:
            self._prefix = restore_start.load_prefix(config.restore_dir)
        except SnapshotError as exc:
            self.start_notes.append(restore_start.refuse(config.restore_dir, str(exc)))
            return make_engine(restore_start.cold(config), self)
        return make_engine(config, self, restore_start.restore_from(config))

    def _start_engine(self) -> None:
        """Start the engine; a refused snapshot is discarded and the VM boots cold."""
        try:
            self.engine.start()
        except SnapshotRefused as exc:
            from . import restore_start

            self.start_notes.append(restore_start.refuse(exc.directory, exc.why))
            self._prefix = {}
            self.engine = make_engine(restore_start.cold(self.config), self)
            self.engine.start()
            return
        if self.config.restore_dir:
            ms = float(getattr(self.engine, "start_s", 0.0)) * 1000
            self.start_notes.append(f"start: restored from a snapshot in {ms:.1f} ms")
        # What the guest wrote before the snapshot comes first in every stream, as it did
        # after the boot that made the snapshot (its own output waits in the inbox).
        for name, data in self._prefix.items():
            if name in self.logs and data:
                seq = self.logs[name].append(data)
                self.pub.publish(
                    topics.stream(self.config.run_id, name), proto.StreamChunk(seq, data)
                )

    # --- EngineHooks, thread-safe: queue and wake the loop ---
    def stream(self, name: str, data: bytes) -> None:
        self._post("stream", name, data)

    def exited(self, reason: ExitReason, detail: str) -> None:
        self._post("exit", reason, detail)

    def _post(self, kind: str, a: Any, b: Any) -> None:
        with self._inbox_lock:
            self._inbox.append((kind, a, b))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the loop is already awake

    # --- control handlers ---
    def _on_status(self, _msg: proto.Status_) -> proto.StatusReply:
        return proto.StatusReply(
            state=self.state,
            engine=self.config.engine,
            run_id=self.config.run_id,
            started_at=self.started_at,
            layout=self.engine.memory_layout(),
            streams={n: lg.next_seq for n, lg in self.logs.items()},
            exit_reason=self.exit_reason,
            exit_detail=self.exit_detail,
            notes=self.start_notes + list(getattr(self.engine, "performance_notes", [])),
        )

    def _on_stop(self, msg: proto.Stop) -> proto.Empty:
        try:
            reason = ExitReason(msg.reason)
        except ValueError:
            raise BusError(Status.BAD_MESSAGE, f"unknown stop reason {msg.reason!r}") from None
        if self.state is VmState.RUNNING:
            self.engine.stop(reason)
        return proto.Empty()

    def _on_console_write(self, msg: proto.ConsoleWrite) -> proto.Empty:
        if self.state is not VmState.RUNNING:
            raise BusError(Status.NOT_ALLOWED, f"the VM is {self.state}")
        self.engine.send_console(msg.data)
        return proto.Empty()

    def _on_bulk_write(self, msg: proto.BulkWrite) -> proto.BulkWriteReply:
        if self.state is not VmState.RUNNING:
            raise BusError(Status.NOT_ALLOWED, f"the VM is {self.state}")
        if len(msg.data) > proto.MAX_BULK_WRITE:
            raise BusError(
                Status.BAD_MESSAGE, f"{len(msg.data)} bytes > {proto.MAX_BULK_WRITE} in one write"
            )
        if msg.offset > self._bulk_offset:
            raise BusError(
                Status.BAD_MESSAGE,
                f"bulk write at offset {msg.offset}, but only {self._bulk_offset} bytes were taken",
            )
        # A resend after a lost reply: skip what an earlier try already took.
        skip = min(len(msg.data), self._bulk_offset - msg.offset) if msg.offset >= 0 else 0
        wait = min(max(0.0, float(msg.timeout_s)), proto.MAX_BULK_WAIT_S)
        taken = 0
        if skip < len(msg.data):
            try:
                taken = self.engine.send_bulk(msg.data[skip:], wait)
            except EngineError as exc:
                raise BusError(Status.NOT_ALLOWED, str(exc)) from None
        self._bulk_offset += taken
        return proto.BulkWriteReply(skip + taken, self._bulk_offset, self.engine.bulk_pending())

    def _on_snapshot(self, msg: proto.Snapshot) -> proto.SnapshotReply:
        if self.state is not VmState.RUNNING:
            raise BusError(Status.NOT_ALLOWED, f"the VM is {self.state}")
        if not hasattr(self.engine, "snapshot"):
            raise BusError(
                Status.NOT_ALLOWED, f"the {self.config.engine} engine takes no snapshots"
            )
        if not isinstance(msg.key, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in msg.key.items()
        ):
            raise BusError(Status.BAD_MESSAGE, "snapshot key must map strings to strings")
        from . import restore_start
        from .engines.kvm.snapshot_codec import SnapshotError

        try:
            paused = restore_start.take(
                self.engine, msg.directory, dict(msg.key), self.logs, self._drain_inbox
            )
        except (EngineError, SnapshotError, OSError) as exc:
            return proto.SnapshotReply(False, 0.0, str(exc))
        return proto.SnapshotReply(True, paused * 1000, "")

    def _on_shell_write(self, msg: proto.ShellWrite) -> proto.ShellWriteReply:
        if self.state is not VmState.RUNNING:
            raise BusError(Status.NOT_ALLOWED, f"the VM is {self.state}")
        if len(msg.data) > proto.MAX_BULK_WRITE:
            raise BusError(
                Status.BAD_MESSAGE, f"{len(msg.data)} bytes > {proto.MAX_BULK_WRITE} in one write"
            )
        wait = min(max(0.0, float(msg.timeout_s)), proto.MAX_BULK_WAIT_S)
        try:
            return proto.ShellWriteReply(self.engine.send_shell(msg.data, wait))
        except EngineError as exc:
            raise BusError(Status.NOT_ALLOWED, str(exc)) from None

    def _on_vcpu_times(self, _msg: proto.VcpuTimes) -> proto.VcpuTimesReply:
        if self.state is not VmState.RUNNING:
            raise BusError(Status.NOT_ALLOWED, f"the VM is {self.state}")
        threads, shared = self.engine.vcpu_threads()
        if not threads:
            raise BusError(
                Status.NOT_FOUND, f"the {self.config.engine} engine names no vCPU threads"
            )
        at = time.monotonic()
        return proto.VcpuTimesReply(
            at,
            [thread_run_ns(pid, tid) for pid, tid in threads],
            [tid for _, tid in threads],
            shared,
        )

    def _on_replay(self, msg: proto.Replay) -> proto.ReplayReply:
        lg = self.logs.get(msg.stream)
        if lg is None:
            raise BusError(
                Status.NOT_FOUND, f"no stream {msg.stream!r}; streams: {', '.join(STREAMS)}"
            )
        try:
            chunks = lg.replay(msg.from_seq, max(1, msg.max_bytes))
        except ReplayGone as exc:
            raise BusError(Status.GONE, str(exc)) from None
        return proto.ReplayReply([[s, d] for s, d in chunks], lg.next_seq, lg.first_seq)

    # --- the loop ---
    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            items = list(self._inbox)
            self._inbox.clear()
        # Serial output arrives a few bytes at a time: merge runs of one stream into a chunk.
        merged: list[tuple[str, Any, Any]] = []
        for kind, a, b in items:
            if kind == "stream" and merged and merged[-1][0] == "stream" and merged[-1][1] == a:
                merged[-1][2].append(b)
            else:
                merged.append((kind, a, [b] if kind == "stream" else b))
        for kind, a, b in merged:
            if kind == "stream":
                b = b"".join(b)
                seq = self.logs[a].append(b)
                self.pub.publish(topics.stream(self.config.run_id, a), proto.StreamChunk(seq, b))
            elif kind == "exit":
                self.state = VmState.EXITED
                self.exit_reason, self.exit_detail = str(a), b
                log.info("VM exited: %s (%s)", a, b)
                self.pub.publish(
                    topics.vm_state(self.config.run_id),
                    proto.VmStateEvent(VmState.EXITED, str(a), b),
                )

    def run(self, install_signals: bool = True) -> ProcExit:
        """Serve until the VM exited and lingered, or SIGTERM/SIGINT (main thread only)."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.started_at = time.time()
            self._start_engine()
            self.state = VmState.RUNNING
            self.pub.publish(
                topics.vm_state(self.config.run_id), proto.VmStateEvent(VmState.RUNNING)
            )
            return self._loop()
        finally:
            self.engine.close()
            self._drain_inbox()
            self.server.close()
            self.pub.close()
            self.ctx.term()
            wake_w, self._wake_w = self._wake_w, -1  # a late signal must not write to a reused fd
            os.close(self._wake_r)
            os.close(wake_w)

    def _loop(self) -> ProcExit:
        poller = zmq.Poller()
        poller.register(self.server.socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        exited_at: float | None = None
        while not self._terminate:
            for sock, _ in poller.poll(500):
                if sock is self.server.socket:
                    self.server.handle_ready()
                else:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
            self._drain_inbox()
            if self.state is VmState.EXITED:
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > self.linger_s:
                    break
        if self.state is not VmState.EXITED:
            self.engine.stop(ExitReason.STOPPED)
            return ProcExit.SIGNALLED
        return ProcExit.DONE

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._terminate = True
        if self._wake_w >= 0:  # end the poll now (PEP 475 would resume it for up to 0.5 s)
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
