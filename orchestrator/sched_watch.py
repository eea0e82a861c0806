"""The orchestrator's side of the scheduler's death: stop the VM early, bounded.

The collector keeps the guest's first SCHED_EXIT in its status reply (``sched.exit``). Once it
is there the test is decided: the session stops the VM instead of running out the
scenario, after a bounded drain: the guest, told by the same event, stops the workload,
stops the scheduler (its ``EXIT:`` line and ``DEBUG DUMP`` arrive), ships the kernel log
and sends RESULT; the VM is stopped when RESULT (or the guest's EXIT) arrived, or
:data:`DRAIN_S` after the exit was seen, whichever is first. The time from the exit (the
guest's CLOCK_BOOTTIME, mapped to the host clock through SYS_RDY) to the VM gone is kept
for the result (``scheduler.exit_to_stop_ms``) and ``schedlab bench sched-exit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from schedlab_shared.bus import collector as collector_proto
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError
from schedlab_shared.bus.vmm import ExitReason

from .sched_outcome import SchedReport

__all__ = ("DRAIN_S", "SchedWatch")

#: Longest wait for the guest's wrap-up (RESULT) after its scheduler exited.
DRAIN_S = 1.0
_STOP_TIMEOUT_S = 15.0  # vmm.stop returns once the VM is gone (the engine's own bound is 10 s)


class SchedWatch:
    """Follows ``CollectorStatusReply.sched``; see the module docstring.

    :param vmm: the VMM's control client.
    :param collector: the collector's control client (SYS_RDY's guest clock).
    :param report: where the stop and its timing go.
    :param progress: ``progress(phase, detail)`` for the terminal.
    :param drain_s: the drain bound.
    """

    def __init__(
        self,
        vmm: BusClient,
        collector: BusClient,
        report: SchedReport,
        progress: Callable[[str, str], None],
        drain_s: float = DRAIN_S,
    ) -> None:
        self.vmm = vmm
        self.collector = collector
        self.report = report
        self.progress = progress
        self.drain_s = drain_s
        self.exit_seen_at: float | None = None  # monotonic
        self.stopped = False
        self._boot_ns: int | None = None  # SYS_RDY's guest clock

    @property
    def urgent(self) -> bool:
        """The scheduler exited and the VM is not stopped yet: poll faster."""
        return self.exit_seen_at is not None and not self.stopped

    def poll(self, cst: collector_proto.CollectorStatusReply) -> None:
        """Look at one status reply; stop the VM when the drain is over."""
        state = cst.sched if isinstance(cst.sched, dict) else {}
        exit_payload = state.get("exit")
        if not isinstance(exit_payload, dict) or self.stopped:
            return
        if self.exit_seen_at is None:
            self.exit_seen_at = time.monotonic()
            self._sys_rdy_clock()
            self.progress("scheduler", f"the scheduler exited ({_headline(exit_payload)}); "
                                       "stopping the VM")  # fmt: skip
        wrapped = cst.result is not None or cst.exit_code is not None or cst.vm_exited
        if wrapped or time.monotonic() - self.exit_seen_at >= self.drain_s:
            self._stop(cst, exit_payload)

    def _sys_rdy_clock(self) -> None:
        try:
            first = self.collector.request(collector_proto.Messages(0, 1)).messages
        except BusError:
            return
        if first and isinstance(first[0], dict) and first[0].get("type") == "SYS_RDY":
            boot_ns = (first[0].get("payload") or {}).get("boot_ns")
            if isinstance(boot_ns, int) and not isinstance(boot_ns, bool) and boot_ns > 0:
                self._boot_ns = boot_ns

    def _stop(self, cst: collector_proto.CollectorStatusReply, exit_payload: dict) -> None:
        self.stopped = True
        try:
            self.vmm.request(vmm_proto.Stop(ExitReason.SCHED_EXIT), timeout_s=_STOP_TIMEOUT_S)
        except BusError:
            return  # the VMM is gone already: the run's end shows how
        gone = time.time()
        t_ns = exit_payload.get("t_ns")
        if self._boot_ns is None or not cst.sys_rdy or not isinstance(t_ns, int):
            return
        exit_host = cst.sys_rdy + (t_ns - self._boot_ns) / 1e9
        ms = (gone - exit_host) * 1000
        if 0 <= ms < 3_600_000:  # the guest's clock is untrusted: only a plausible figure
            self.report.exit_to_stop_ms = round(ms, 1)


def _headline(payload: dict[str, Any]) -> str:
    h = payload.get("headline")
    return h[:120] if isinstance(h, str) and h else "no reason given"
