"""A stand-in for vmm_proc on the bus: serves status and replay, publishes chunks on demand."""

from __future__ import annotations

import threading
import time

import zmq

from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as proto
from schedlab_shared.bus.client import Publisher
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.server import ControlServer
from schedlab_shared.bus.vmm import STREAMS
from vmm_proc.streamlog import ReplayGone, StreamLog


class FakeVmm:
    def __init__(self, vm_id: str, ctl: str, pub: str, retain_bytes: int = 1 << 30) -> None:
        self.vm_id = vm_id
        self.ctx = zmq.Context()
        self.logs = {n: StreamLog(retain_bytes) for n in STREAMS}
        self.state = "running"
        self.exit_reason = ""
        self.console: list[bytes] = []  # ConsoleWrite data, in order
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes]] = []
        self._stop = False
        self._ctl, self._pub = ctl, pub
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-vmm", daemon=True)
        self.thread.start()
        self._ready.wait(5)

    def emit(self, stream: str, data: bytes) -> None:
        with self._lock:
            self._pending.append((stream, data))

    def exit(self, reason: str = "guest-exit") -> None:
        with self._lock:
            self._pending.append(("__exit__", reason.encode()))

    def wait_flushed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.01)
        raise TimeoutError("fake VMM did not flush")

    def _status(self, _m):  # noqa: ANN001, ANN202
        return proto.StatusReply(
            self.state,
            "fake",
            self.vm_id,
            1.0,
            [],
            {n: lg.next_seq for n, lg in self.logs.items()},
            self.exit_reason,
            "",
        )

    def _replay(self, m: proto.Replay):  # noqa: ANN202
        lg = self.logs[m.stream]
        try:
            chunks = lg.replay(m.from_seq, m.max_bytes)
        except ReplayGone as exc:
            raise BusError(Status.GONE, str(exc)) from None
        return proto.ReplayReply([[s, d] for s, d in chunks], lg.next_seq, lg.first_seq)

    def _console_write(self, m: proto.ConsoleWrite):  # noqa: ANN202
        self.console.append(m.data)
        return proto.Empty()

    def _run(self) -> None:
        server = ControlServer(
            self.ctx,
            self._ctl,
            {
                proto.Status_: self._status,
                proto.Replay: self._replay,
                proto.ConsoleWrite: self._console_write,
            },
        )
        pub = Publisher(self.ctx, self._pub)
        self._ready.set()
        while not self._stop:
            if server.socket.poll(5):
                server.handle_ready()
            with self._lock:
                pending, self._pending = self._pending, []
            for stream, data in pending:
                if stream == "__exit__":
                    self.state, self.exit_reason = "exited", data.decode()
                    pub.publish(
                        topics.vm_state(self.vm_id), proto.VmStateEvent("exited", self.exit_reason)
                    )
                    continue
                seq = self.logs[stream].append(data)
                pub.publish(topics.stream(self.vm_id, stream), proto.StreamChunk(seq, data))
        server.close()
        pub.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        self.ctx.term()
