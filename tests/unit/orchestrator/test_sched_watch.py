"""SchedWatch: the scheduler's exit stops the VM early, after a bounded drain, and is timed."""

from __future__ import annotations

import time

from orchestrator.sched_outcome import SchedReport
from orchestrator.sched_watch import SchedWatch
from schedlab_shared.bus import collector as cproto
from schedlab_shared.bus import vmm as vproto
from schedlab_shared.bus.codec import BusError, Status

BOOT_NS = 5_000_000_000


class FakeBus:
    def __init__(self, stop_error: bool = False) -> None:
        self.sent: list = []
        self.stop_error = stop_error

    def request(self, msg, timeout_s=None):  # noqa: ANN001, ANN201
        self.sent.append(msg)
        if isinstance(msg, cproto.Messages):
            sys_rdy = {"index": 0, "type": "SYS_RDY", "payload": {"boot_ns": BOOT_NS}}
            return cproto.MessagesReply([sys_rdy])
        if self.stop_error:
            raise BusError(Status.TIMEOUT, "no reply")
        return vproto.Empty()


def _status(sched=None, result=None, sys_rdy=1000.0) -> cproto.CollectorStatusReply:  # noqa: ANN001
    return cproto.CollectorStatusReply(
        sys_rdy=sys_rdy, result=result, exit_code=None, vm_exited=False, complete=False,
        streams={}, decoder={}, messages=3, sched=sched,
    )  # fmt: skip


def _watch(bus: FakeBus, drain_s: float = 1.0) -> tuple[SchedWatch, SchedReport, list]:
    said: list = []
    report = SchedReport()
    return SchedWatch(bus, bus, report, lambda p, d: said.append(d), drain_s), report, said


def test_nothing_happens_while_the_scheduler_runs() -> None:
    bus = FakeBus()
    w, _, _ = _watch(bus)
    w.poll(_status({"attach": {"status": "attached"}}))
    w.poll(_status(None))
    assert bus.sent == [] and not w.urgent and not w.stopped


def test_exit_then_result_stops_the_vm_and_times_it() -> None:
    bus = FakeBus()
    w, report, said = _watch(bus)
    # The exit happened 0.4 s of guest time after SYS_RDY, which the host saw 10 s ago.
    exit_payload = {"t_ns": BOOT_NS + 400_000_000, "trigger": "disabled", "headline": "stall"}
    t0 = time.time() - 10.0
    w.poll(_status({"exit": exit_payload}, sys_rdy=t0))
    assert w.urgent and not any(isinstance(m, vproto.Stop) for m in bus.sent)
    assert said == ["the scheduler exited (stall); stopping the VM"]
    w.poll(_status({"exit": exit_payload}, result={"passed": False}, sys_rdy=t0))
    stops = [m for m in bus.sent if isinstance(m, vproto.Stop)]
    assert [s.reason for s in stops] == ["sched-exit"] and w.stopped and not w.urgent
    assert 9500 <= report.exit_to_stop_ms <= 9700  # 10 s since SYS_RDY - 0.4 s of guest time
    w.poll(_status({"exit": exit_payload}, sys_rdy=t0))
    assert len([m for m in bus.sent if isinstance(m, vproto.Stop)]) == 1  # once


def test_the_drain_is_bounded_and_a_nonsense_clock_gives_no_figure() -> None:
    bus = FakeBus()
    w, report, _ = _watch(bus, drain_s=0.05)
    exit_payload = {"t_ns": BOOT_NS + 10**18, "trigger": "died"}  # far in the future
    w.poll(_status({"exit": exit_payload}))
    time.sleep(0.06)
    w.poll(_status({"exit": exit_payload}))  # no RESULT came: stopped at the bound
    assert w.stopped and report.exit_to_stop_ms is None


def test_a_vmm_that_does_not_answer_is_left_to_the_session() -> None:
    bus = FakeBus(stop_error=True)
    w, report, _ = _watch(bus, drain_s=0.0)
    w.poll(_status({"exit": {"t_ns": BOOT_NS}}, result={}))
    assert w.stopped and report.exit_to_stop_ms is None
