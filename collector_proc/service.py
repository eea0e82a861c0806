"""The collector_proc process: one VM's streams in, a run directory and decoded messages out.

It follows the VMM's live PUB and fills every gap (its own start, a restart, a slow
subscriber) by replay requests, so each stream is written exactly once, in order.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import zmq

from schedlab_shared.bus import collector as proto
from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient, Publisher, recv_event, subscriber
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.server import ControlServer
from schedlab_shared.bus.vmm import VmState
from schedlab_shared.exitcodes import ProcExit

from .ingest import Ingest
from .rundir import STREAM_FILES

__all__ = ("Collector",)

log = logging.getLogger("collector_proc")
_STATUS_EVERY_S = 1.0


class Collector:
    def __init__(
        self,
        vm_id: str,
        vm_ctl: str,
        vm_pub: str,
        run_dir: str,
        ctl: str,
        pub: str,
        grace_s: float = 60.0,
        stop_when_complete: bool = False,
        store: str | None = None,
        store_key: str | None = None,
    ) -> None:
        self.vm_id = vm_id
        self.grace_s = grace_s
        self.stop_when_complete = stop_when_complete  # attached collectors end with the VM
        self.ingest = Ingest(Path(run_dir))
        self.cp = self.ingest.cp
        self.ctx = zmq.Context()
        self.vmm = BusClient(self.ctx, vm_ctl, timeout_s=2.0)
        self.sub = subscriber(self.ctx, vm_pub, topics.stream_prefix(vm_id), topics.vm_state(vm_id))
        self.pub = Publisher(self.ctx, pub)
        self.server = ControlServer(
            self.ctx,
            ctl,
            {proto.CollectorStatus: self._on_status, proto.Messages: self._on_messages},
        )
        self._terminate = False
        self._status_due = False  # a VM state event asked for a status request now
        self._wake_r = self._wake_w = -1  # SIGTERM wakes the loop through this pipe (run())
        self._vmm_seen = time.monotonic()
        self._saved_key: tuple[Any, ...] | None = None  # state of the last checkpoint written
        self.forward = None
        if store:  # imported only then: a restarting collector's start time is its latency
            from .forward import start_forwarding

            self.forward = start_forwarding(Path(run_dir), vm_id, store, store_key)

    @property
    def expected(self) -> dict[str, int]:
        """Next sequence number wanted per stream."""
        return self.ingest.expected

    # --- control ---
    def _on_status(self, _msg: proto.CollectorStatus) -> proto.CollectorStatusReply:
        return proto.CollectorStatusReply(
            sys_rdy=self.cp.sys_rdy,
            result=self.cp.result,
            exit_code=self.cp.exit_code,
            vm_exited=self.cp.vm_exited,
            complete=self.cp.complete,
            streams={n: {"next_seq": self.expected[n]} for n in STREAM_FILES},
            decoder=self.ingest.counters(),
            messages=self.ingest.message_count,
            vm_exit_reason=self.cp.vm_exit_reason,
            vm_exit_detail=self.cp.vm_exit_detail,
            sched=self.cp.sched,
        )

    def _on_messages(self, msg: proto.Messages) -> proto.MessagesReply:
        return proto.MessagesReply(self.ingest.messages(msg.from_index, min(msg.limit, 10_000)))

    # --- stream processing ---
    def _process(self, name: str, data: bytes) -> None:
        self.ingest.process(name, data)  # all of the chunk's effects, or none (then it raises)
        self._publish()

    def _publish(self) -> None:
        """Announce the messages now in the files (a restart may announce some again: the
        index lets consumers drop duplicates)."""
        for rec in self.ingest.outbox:
            kind = rec["type"]
            msg = proto.GuestMessage(rec["index"], kind, rec.get("payload", {}), rec["host_time"])
            self.pub.publish(topics.guest(self.vm_id, kind), msg)
        self.ingest.outbox.clear()

    def _catch_up(self, name: str, target: int | None = None) -> None:
        """Replay ``name`` from the expected sequence number up to ``target`` (or its end)."""
        while target is None or self.expected[name] < target:
            try:
                reply = self.vmm.request(vmm_proto.Replay(name, self.expected[name]))
            except BusError as exc:
                if exc.status is not Status.GONE:
                    raise
                status = self.vmm.request(vmm_proto.Replay(name, 1 << 62))  # learn first_seq
                self.cp.gaps += status.first_seq - self.expected[name]
                log.warning(
                    "stream %s: %s; %d chunks lost",
                    name,
                    exc.reason,
                    status.first_seq - self.expected[name],
                )
                self.expected[name] = status.first_seq
                continue
            self._vmm_seen = time.monotonic()
            for seq, data in reply.chunks:
                if seq == self.expected[name]:
                    self._process(name, data)
            if not reply.chunks:
                return

    def _on_event(self, topic: str, body: dict[str, Any]) -> None:
        parsed = topics.parse(topic)
        if parsed is not None and parsed.channel == topics.STATE and parsed.vm_id == self.vm_id:
            self._status_due = True  # a state change: fetch the state now, by request
            return
        if parsed is None or parsed.channel != topics.STREAM or parsed.vm_id != self.vm_id:
            return  # state is fetched by request in _poll_status, never inferred from events
        name = parsed.name
        if name not in self.expected:
            return
        chunk = vmm_proto.StreamChunk(int(body["seq"]), body["data"])
        if chunk.seq > self.expected[name]:
            self._catch_up(name, chunk.seq)
        if chunk.seq == self.expected[name]:
            self._process(name, chunk.data)

    def _poll_status(self) -> None:
        st = self.vmm.request(vmm_proto.Status_())
        self._vmm_seen = time.monotonic()
        for name in STREAM_FILES:
            if self.expected[name] < int(st.streams.get(name, 0)):
                self._catch_up(name, int(st.streams[name]))
        if st.state == VmState.EXITED and not self.cp.complete:
            self.cp.vm_exited = True
            self.cp.vm_exit_reason, self.cp.vm_exit_detail = st.exit_reason, st.exit_detail
            if all(self.expected[n] >= int(st.streams.get(n, 0)) for n in STREAM_FILES):
                self.ingest.finish()
                self._publish()
                log.info("all streams drained; decoder %s", self.ingest.counters())

    def _state_key(self) -> tuple[Any, ...]:
        """What the checkpoint holds, cheaply: every append or decode also moves ``expected``
        (or sets ``complete``), so an equal key means nothing unflushed and nothing to record."""
        cp = self.cp
        return (
            tuple(self.expected.values()),
            cp.gaps,
            cp.vm_exited,
            cp.vm_exit_reason,
            cp.vm_exit_detail,
            cp.complete,
        )

    def _save(self) -> None:
        key = self._state_key()
        if key == self._saved_key:
            return  # an idle status poll: rewriting the same checkpoint each second buys nothing
        self.ingest.save()
        self._saved_key = key

    def _drain_events(self) -> None:
        """Handle the waiting live events; a failed replay is left to the next status poll.

        _catch_up fails between whole chunks, so nothing is half-written, and the status
        poll (which has the grace period for an unreachable VMM) replays what is missing.
        """
        while self.sub.poll(0):
            try:
                self._on_event(*recv_event(self.sub))
            except BusError as exc:
                log.warning("live event not handled (%s); the status poll will catch up", exc)
                return

    # --- the loop ---
    def run(self) -> ProcExit:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.server.socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_status = 0.0
        try:
            while not self._terminate:
                ready = dict(poller.poll(200))
                if self.server.socket in ready:
                    self.server.handle_ready()
                dirty = False
                if self.sub in ready:
                    self._drain_events()
                    dirty = True
                if (self._status_due or time.monotonic() >= next_status) and not self.cp.complete:
                    self._status_due = False
                    next_status = time.monotonic() + _STATUS_EVERY_S
                    try:
                        self._poll_status()
                        dirty = True
                    except BusError as exc:
                        if time.monotonic() - self._vmm_seen > self.grace_s:
                            log.error("VMM unreachable for %.0f s: %s", self.grace_s, exc)
                            return ProcExit.LOST
                if dirty:
                    self._save()
                if self.stop_when_complete and self.cp.complete:
                    break
            return ProcExit.DONE if self.cp.complete else ProcExit.SIGNALLED
        finally:
            self._save()  # between chunks: a chunk that raised was rolled back whole
            self.ingest.close()
            if self.forward is not None:
                self.forward.stop()  # after the last write: flushes what it can
            for s in (self.sub,):
                s.close(0)
            self.vmm.close()
            self.server.close()
            self.pub.close()
            self.ctx.term()
            wake_w, self._wake_w = self._wake_w, -1  # a late signal must not write to a reused fd
            os.close(self._wake_r)
            os.close(wake_w)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self._terminate = True
        if self._wake_w >= 0:  # end the poll now (PEP 475 would resume it)
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
