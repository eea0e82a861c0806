"""A replay request that times out in the live-event path is retried within the grace period."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from collector_proc.service import Collector
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.exitcodes import ProcExit
from tests.framework.fake_vmm import FakeVmm


def test_event_gap_replay_timeout_is_not_fatal(tmp_path: Path) -> None:
    ep = {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "cpub")}
    vm = FakeVmm("rt", ep["vctl"], ep["vpub"])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        vm.emit("console", b"missed by the subscriber\n")  # seq 0: before the collector exists
        vm.wait_flushed()
        col = Collector(
            "rt",
            ep["vctl"],
            ep["vpub"],
            str(tmp_path / "run"),
            ep["cctl"],
            ep["cpub"],
            grace_s=30.0,
            stop_when_complete=True,
        )
        real_request, failed = col.vmm.request, []

        def flaky_request(msg, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            if isinstance(msg, vmm_proto.Replay) and not failed:
                failed.append(msg)  # the first replay (the event gap's) gets no reply in time
                raise BusError(Status.TIMEOUT, "Replay: no reply (test)")
            return real_request(msg, *a, **kw)

        col.vmm.request = flaky_request
        # The subscription is asynchronous: emit until an event (seq >= 1) is waiting.
        deadline = time.monotonic() + 10
        while not col.sub.poll(100):
            assert time.monotonic() < deadline, "no live event reached the collector"
            vm.emit("console", b"live\n")
            vm.wait_flushed()
        vm.exit()
        vm.wait_flushed()
        assert col.run() is ProcExit.DONE
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        vm.close()
    assert failed, "the event path never asked for a replay"
    console = (tmp_path / "run" / "console.log").read_bytes()
    assert console == b"".join(d for _, d in vm.logs["console"].replay(0, 1 << 30))
    assert console.startswith(b"missed by the subscriber\n")
