"""orchestrator/inputs.py: the host sender, through the real vmm_proc service to the real guest
receiver (a socketpair stands for the bulk port), and the checks before anything is sent."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest
import zmq

from guest import receiver, rundoc, transfer
from guest.rundoc import Scheduler
from guest.spec import PLAN, RunSpec
from orchestrator.inputs import HostFile, InputSender, InputsError, prepare
from schedlab_shared.bus import collector as collector_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.server import ControlServer
from schedlab_shared.vm_config import VmConfig
from vmm_proc import service as service_mod

SPEC = RunSpec("cgroup-spinners", duration=0.5)


# -- prepare -----------------------------------------------------------------------------


def test_prepare_hashes_files_and_builds_the_document(tmp_path: Path) -> None:
    sched = tmp_path / "scx_simple"
    sched.write_bytes(b"\x7fELF...")
    sched.chmod(0o700)
    inc = tmp_path / "notes.txt"
    inc.write_text("hi")
    inputs = prepare(
        SPEC,
        [HostFile("scheduler", sched), HostFile("include", inc, name="n.txt", mode=0o640)],
        Scheduler(HostFile("scheduler", sched).guest_path, ("-v",)),
        run_id="r1",
    )
    s, i = inputs.files
    assert (s.kind, s.name, s.mode, s.size) == ("scheduler", "scx_simple", 0o755, 7)
    assert s.sha256 == hashlib.sha256(b"\x7fELF...").hexdigest()
    assert (i.name, i.mode) == ("n.txt", 0o640)
    assert inputs.doc["scheduler"] == {
        "path": "/run/schedlab/inputs/scheduler/scx_simple",
        "args": ["-v"],
        "env": {},
    }
    assert len(inputs.doc["entropy"]) == 32 and inputs.file_bytes == 9
    assert prepare(SPEC).doc["entropy"] != prepare(SPEC).doc["entropy"]


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda d: HostFile("include", d / "missing"), "No such file"),
        (lambda d: HostFile("include", d), "not a regular file"),
        (lambda d: HostFile("include", d / "f", name="../etc/passwd"), "rename it"),
        (lambda d: HostFile("include", d / ".hidden"), "rename it"),
        (lambda d: HostFile("etc", d / "f"), "is not one of"),
        (lambda d: HostFile("include", d / "f", name="a b"), "rename it"),
    ],
)
def test_prepare_refuses_bad_files_in_one_line(tmp_path: Path, make, msg) -> None:  # noqa: ANN001
    (tmp_path / "f").write_text("x")
    (tmp_path / ".hidden").write_text("x")
    with pytest.raises(InputsError, match=msg) as e:
        prepare(SPEC, [make(tmp_path)])
    assert "\n" not in str(e.value)


def test_prepare_refuses_a_bad_document() -> None:
    with pytest.raises(InputsError, match="run document: scheduler.path"):
        prepare(SPEC, scheduler=Scheduler("relative"))


# -- sending through vmm_proc to the receiver --------------------------------------------


class SocketEngine:
    """A VM engine whose bulk port is a socketpair with small buffers (QEMU-like)."""

    name = "fake"

    def __init__(self, hooks) -> None:  # noqa: ANN001
        self.hooks = hooks
        self.host, self.guest = socket.socketpair()
        for s in (self.host, self.guest):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.stopped = False

    def start(self) -> None:
        pass

    def memory_layout(self) -> list[dict]:
        return []

    def send_console(self, data: bytes) -> None:
        pass

    def send_bulk(self, data: bytes, timeout_s: float) -> int:
        sent, end = 0, time.monotonic() + timeout_s
        while sent < len(data):
            try:
                sent += self.host.send(data[sent:], socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.monotonic() >= end:
                    break
                select.select([], [self.host], [], end - time.monotonic())
        return sent

    def bulk_pending(self) -> int:
        return 0

    def stop(self, reason) -> None:  # noqa: ANN001
        self.stopped = True
        self.hooks.exited(reason, "stopped")

    def close(self) -> None:
        self.host.close()
        self.guest.close()


class FakeCollector:
    """Serves collector.messages with whatever the test appends."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.messages: list[dict] = []
        self._stop = False
        self.server = ControlServer(ctx, endpoint, {collector_proto.Messages: self._messages})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _messages(self, m):  # noqa: ANN001, ANN202
        return collector_proto.MessagesReply(self.messages[m.from_index : m.from_index + m.limit])

    def _run(self) -> None:
        while not self._stop:
            if self.server.socket.poll(20):
                self.server.handle_ready()
        self.server.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)


@pytest.fixture
def bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    engines: list[SocketEngine] = []

    def make(config, hooks):  # noqa: ANN001, ANN202
        engines.append(SocketEngine(hooks))
        return engines[-1]

    monkeypatch.setattr(service_mod, "make_engine", make)
    cfg = VmConfig(run_id="i1", engine="fake", kernel="/k", initrd="/i", cmdline="")
    svc = service_mod.VmmService(
        cfg, f"ipc://{tmp_path}/ctl", f"ipc://{tmp_path}/pub", linger_s=0.5
    )
    t = threading.Thread(target=lambda: svc.run(install_signals=False), daemon=True)
    t.start()
    ctx = zmq.Context()
    vmm = BusClient(ctx, f"ipc://{tmp_path}/ctl", timeout_s=5)
    coll = FakeCollector(ctx, f"ipc://{tmp_path}/coll")
    collector = BusClient(ctx, f"ipc://{tmp_path}/coll", timeout_s=5)
    deadline = time.monotonic() + 5
    while not engines and time.monotonic() < deadline:
        time.sleep(0.01)
    yield engines[0], vmm, coll, collector
    svc._terminate = True
    t.join(10)
    coll.close()
    for c in (vmm, collector):
        c.close()
    ctx.term()


def guest_side(
    engine: SocketEngine, root: Path, coll: FakeCollector, out: list
) -> threading.Thread:
    """The guest: receive, then answer with an INPUTS_ACK the collector 'decoded'."""
    (root / "dev").mkdir(parents=True)
    (root / "dev/urandom").write_bytes(b"")
    (root / "run").mkdir()

    def run() -> None:
        try:
            got = receiver.receive(engine.guest.fileno(), str(root), first_timeout_s=10)
            payload = transfer.ack_ok(got.installed, got.bytes, got.recv_ns, got.entropy)
        except receiver.InputError as e:
            payload = transfer.ack_error(str(e))
        out.append(payload)
        coll.messages.append(
            {"index": 0, "type": "INPUTS_ACK", "payload": payload, "host_time": time.time()}
        )

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def send_all(sender: InputSender, collector: BusClient, timeout: float = 30):  # noqa: ANN201
    deadline = time.monotonic() + timeout
    while not sender.step(0.2):
        assert time.monotonic() < deadline
    while (ack := sender.poll_ack(collector)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return ack


def test_a_big_file_arrives_whole_and_is_acknowledged(bus, tmp_path: Path) -> None:  # noqa: ANN001
    engine, vmm, coll, collector = bus
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    inputs = prepare(SPEC, [HostFile("payload", big)])
    out: list = []
    t = guest_side(engine, tmp_path / "root", coll, out)
    sender = InputSender(vmm, inputs, write_bytes=100_000)
    ack = send_all(sender, collector)
    t.join(10)
    assert ack.ok, ack.error
    got = tmp_path / "root/run/schedlab/inputs/payload/big.bin"
    assert got.read_bytes() == big.read_bytes()
    assert ack.files[0].sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    s = sender.summary(ack)
    assert s["acked"] and s["file_bytes"] == 3 << 20 and s["wire_bytes"] > 3 << 20
    assert s["writes"] >= 30 and s["mb_per_s"] > 0


def test_lost_replies_are_resent_without_duplicating_bytes(bus, tmp_path: Path) -> None:  # noqa: ANN001
    engine, vmm, coll, collector = bus
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(500_000))
    real = vmm.request
    calls = {"n": 0}

    def lossy(msg, timeout_s=None):  # noqa: ANN001, ANN202
        reply = real(msg, timeout_s)
        calls["n"] += 1
        if calls["n"] % 3 == 0:  # the VMM took the bytes, the reply got lost
            raise BusError(Status.TIMEOUT, "lost")
        return reply

    vmm.request = lossy
    out: list = []
    t = guest_side(engine, tmp_path / "root", coll, out)
    sender = InputSender(vmm, prepare(SPEC, [HostFile("include", f)]), write_bytes=50_000)
    ack = send_all(sender, collector)
    t.join(10)
    assert ack.ok, ack.error
    assert sender.stats.resends >= 3
    assert (tmp_path / "root/run/schedlab/inputs/include/f.bin").read_bytes() == f.read_bytes()


def test_a_refusing_guest_is_a_negative_ack(bus, tmp_path: Path) -> None:  # noqa: ANN001
    engine, vmm, coll, collector = bus
    f = tmp_path / "f.bin"
    f.write_bytes(b"1234")
    inputs = prepare(SPEC, [HostFile("include", f)])
    f.write_bytes(b"5678")  # changed after hashing: the guest's sha256 check catches it
    out: list = []
    t = guest_side(engine, tmp_path / "root", coll, out)
    ack = send_all(InputSender(vmm, inputs), collector)
    t.join(10)
    assert not ack.ok and "sha256" in ack.error


def test_a_vm_that_is_gone_is_an_inputs_error(bus, tmp_path: Path) -> None:  # noqa: ANN001
    engine, vmm, coll, collector = bus
    engine.stop("stopped")
    deadline = time.monotonic() + 5
    sender = InputSender(vmm, prepare(SPEC))
    with pytest.raises(InputsError, match="did not take the inputs"):
        while time.monotonic() < deadline:
            sender.step(0.2)
            time.sleep(0.05)


def test_a_scenario_document_travels_as_the_run_documents_scenario():
    from schedlab_scenario.catalog import CATALOG
    from schedlab_shared.topology import Topology

    topo = Topology.parse("1,1,2,1")
    plan = CATALOG["cpuset_apply"].build(topo).to_document(topo, duration_s=1.0)
    inputs = prepare(RunSpec("cgroup-spinners"), scenario=plan)
    rd = rundoc.validate(inputs.doc)
    assert rd.spec.scenario == PLAN and rd.scenario["name"] == "cpuset_apply"
