"""vmm_proc's bus service against a fake engine: streams, replay, control, exit, signals."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import zmq

from schedlab_shared.bus import vmm as proto
from schedlab_shared.bus.client import BusClient, recv_event, subscriber
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.exitcodes import ProcExit
from schedlab_shared.vm_config import VmConfig
from vmm_proc import service as service_mod


class FakeEngine:
    name = "fake"

    def __init__(self, hooks) -> None:  # noqa: ANN001
        self.hooks = hooks
        self.console: list[bytes] = []
        self.bulk = bytearray()
        self.bulk_waits: list[float] = []
        self.stopped: list[ExitReason] = []

    def start(self) -> None:
        def emit() -> None:
            for i in range(50):
                self.hooks.stream("console", b"line %d\n" % i)
            self.hooks.stream("bulk", b"\x00" * 10)

        threading.Thread(target=emit).start()

    def memory_layout(self) -> list[dict]:
        return [{"gpa": 0, "size": 4096, "path": "/dev/shm/schedlab-fake", "offset": 0}]

    def send_console(self, data: bytes) -> None:
        self.console.append(data)

    def send_bulk(self, data: bytes, timeout_s: float) -> int:
        self.bulk_waits.append(timeout_s)
        take = min(len(data), 1000 - len(self.bulk))  # a guest that never reads: 1000 fit
        self.bulk += data[:take]
        return take

    def bulk_pending(self) -> int:
        return len(self.bulk)

    def vcpu_threads(self) -> tuple[list[tuple[int, int]], int]:
        # this test's own main thread stands in for a vCPU; a thread that never existed next
        return [(os.getpid(), threading.main_thread().native_id), (os.getpid(), 1 << 30)], 1

    def stop(self, reason: ExitReason) -> None:
        self.stopped.append(reason)
        self.hooks.exited(reason, "stopped by test")

    def close(self) -> None:
        pass


@pytest.fixture
def vmm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    engines: list[FakeEngine] = []

    def make(config, hooks):  # noqa: ANN001, ANN202
        engines.append(FakeEngine(hooks))
        return engines[-1]

    monkeypatch.setattr(service_mod, "make_engine", make)
    cfg = VmConfig(run_id="u1", engine="fake", kernel="/k", initrd="/i", cmdline="")
    svc = service_mod.VmmService(
        cfg, f"ipc://{tmp_path}/ctl", f"ipc://{tmp_path}/pub", linger_s=0.5
    )
    result: list[ProcExit] = []
    t = threading.Thread(target=lambda: result.append(svc.run(install_signals=False)))
    t.start()
    ctx = zmq.Context()
    client = BusClient(ctx, f"ipc://{tmp_path}/ctl", timeout_s=2)
    yield svc, client, engines, result, t, f"ipc://{tmp_path}/pub", ctx
    svc._terminate = True
    t.join(10)
    client.close()
    ctx.term()


def _wait(pred, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_streams_are_retained_merged_and_replayable(vmm) -> None:  # noqa: ANN001
    svc, client, engines, *_ = vmm
    _wait(lambda: client.request(proto.Status_()).streams["bulk"] == 1)
    st = client.request(proto.Status_())
    assert st.state == "running" and st.engine == "fake" and st.layout[0]["size"] == 4096
    chunks, seq = [], 0
    while True:
        r = client.request(proto.Replay("console", seq))
        if not r.chunks:
            break
        chunks += [d for _, d in r.chunks]
        seq = r.chunks[-1][0] + 1
    assert b"".join(chunks) == b"".join(b"line %d\n" % i for i in range(50))
    assert len(chunks) <= 50  # runs of one stream are merged into fewer chunks
    with pytest.raises(BusError) as e:
        client.request(proto.Replay("nope", 0))
    assert e.value.status is Status.NOT_FOUND


def test_control_requests(vmm) -> None:  # noqa: ANN001
    svc, client, engines, result, t, *_ = vmm
    _wait(lambda: client.request(proto.Status_()).state == "running")
    client.request(proto.ConsoleWrite(b"D"))
    assert engines[0].console == [b"D"]
    with pytest.raises(BusError) as e:
        client.request(proto.Stop("bogus"))
    assert e.value.status is Status.BAD_MESSAGE
    client.request(proto.Stop("timeout"))
    _wait(lambda: client.request(proto.Status_()).state == "exited")
    st = client.request(proto.Status_())
    assert st.exit_reason == "timeout" and engines[0].stopped == [ExitReason.TIMEOUT]
    with pytest.raises(BusError) as e2:
        client.request(proto.ConsoleWrite(b"S"))
    assert e2.value.status is Status.NOT_ALLOWED
    t.join(10)  # linger ran out
    assert result == [ProcExit.DONE]


def test_vcpu_times_read_each_thread_s_schedstat(vmm) -> None:  # noqa: ANN001
    svc, client, *_ = vmm
    _wait(lambda: client.request(proto.Status_()).state == "running")
    first = client.request(proto.VcpuTimes())
    sum(range(2_000_000))  # burn some CPU on the "vCPU" thread
    second = client.request(proto.VcpuTimes())
    assert first.run_ns[1] == second.run_ns[1] == -1 and first.shared == 1
    assert second.run_ns[0] > first.run_ns[0] > 0 and second.at_s > first.at_s
    assert second.threads[0] == threading.main_thread().native_id


def test_exit_is_published(vmm) -> None:  # noqa: ANN001
    svc, client, engines, result, t, pub, ctx = vmm
    sub = subscriber(ctx, pub, "vm.u1.state")
    try:  # an unclosed socket would hang ctx.term() in the fixture
        _wait(lambda: client.request(proto.Status_()).state == "running")
        time.sleep(1.0)  # PUB drops what it sends before the subscription arrives
        client.request(proto.Stop("stopped"))
        events = []
        while sub.poll(5000):  # a "running" event may come first if we subscribed early
            events.append(recv_event(sub, proto.VmStateEvent))
            if events[-1][1].state == "exited":
                break
        assert events[-1] == (
            "vm.u1.state",
            proto.VmStateEvent("exited", "stopped", "stopped by test"),
        )
    finally:
        sub.close(0)


def test_bulk_write_is_bounded_and_flow_controlled(vmm) -> None:  # noqa: ANN001
    svc, client, engines, *_ = vmm
    _wait(lambda: client.request(proto.Status_()).state == "running")
    r = client.request(proto.BulkWrite(b"a" * 600, offset=0, timeout_s=0.1))
    assert (r.accepted, r.offset, r.pending) == (600, 600, 600)
    r = client.request(proto.BulkWrite(b"b" * 600, offset=600, timeout_s=30.0))
    assert (r.accepted, r.offset, r.pending) == (400, 1000, 1000)  # the rest: resend it
    r = client.request(proto.BulkWrite(b"c", timeout_s=float("nan")))
    assert (r.accepted, r.offset) == (0, 1000)
    assert engines[0].bulk_waits == [0.1, proto.MAX_BULK_WAIT_S, 0.0]  # waits are capped
    with pytest.raises(BusError) as e:
        client.request(proto.BulkWrite(b"x" * (proto.MAX_BULK_WRITE + 1)))
    assert e.value.status is Status.BAD_MESSAGE
    client.request(proto.Stop("stopped"))
    _wait(lambda: client.request(proto.Status_()).state == "exited")
    with pytest.raises(BusError) as e2:
        client.request(proto.BulkWrite(b"late"))
    assert e2.value.status is Status.NOT_ALLOWED


def test_bulk_write_resent_after_a_lost_reply_is_not_duplicated(vmm) -> None:  # noqa: ANN001
    svc, client, engines, *_ = vmm
    _wait(lambda: client.request(proto.Status_()).state == "running")
    client.request(proto.BulkWrite(b"0123456789", offset=0))
    r = client.request(proto.BulkWrite(b"0123456789abc", offset=0))  # the same bytes again
    assert (r.accepted, r.offset) == (13, 13) and bytes(engines[0].bulk) == b"0123456789abc"
    r = client.request(proto.BulkWrite(b"9abc", offset=9))  # wholly taken before
    assert (r.accepted, r.offset) == (4, 13) and len(engines[0].bulk) == 13
    with pytest.raises(BusError) as e:
        client.request(proto.BulkWrite(b"gap", offset=20))
    assert e.value.status is Status.BAD_MESSAGE and "only 13 bytes" in e.value.reason
