"""The monitor_proc process: samples each guest CPU's runqueue from the host.

It asks the VMM for the guest RAM layout, waits until the collector has seen SYS_RDY (per-CPU
areas are only meaningful once the guest is up), then reads ``struct rq`` of every CPU each
interval and both publishes and appends the samples to ``monitor-<name>.jsonl``. Any number of
monitors may attach to one live VM; a restarted one resumes where the VM is now.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import zmq

from schedlab_shared.bus import collector as collector_proto
from schedlab_shared.bus import monitor as proto
from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.server import ControlServer
from schedlab_shared.bus.vmm import VmState
from schedlab_shared.exitcodes import ProcExit
from schedlab_shared.run_layout import monitor_file

from .helpers.ext import scx_sched_sample
from .helpers.percpu import per_cpu_offsets
from .helpers.sched import cpu_samples
from .sample_pub import SamplePublisher
from .vcpu_times import VcpuTimesAsker

__all__ = ("Monitor",)

log = logging.getLogger("monitor_proc")
DUMP_EVERY_S = 10.0  # a violation that stays gets one dump, not one per sample
VCPU_TIMES_EVERY_S = 0.05  # at 100 Hz sampling every 5th sample asks the VMM
FLUSH_EVERY_S = 0.2  # sample lines reach the file at least this often (a crash loses less)
BPF_EVERY_S = 5.0  # programs and maps change rarely: listed at start, then this often


class Monitor:
    def __init__(
        self,
        *,
        vm_id: str,
        vm_ctl: str,
        collector_ctl: str,
        vmlinux: str,
        run_dir: str,
        ctl: str,
        pub: str,
        name: str = "monitor",
        interval_s: float = 0.1,
        system_map: str | None = None,
        grace_s: float = 60.0,
        max_samples: int = 0,
        watchdog_timeout_s: float | None = None,
        hz: int = 0,
        thresholds: dict[str, Any] | None = None,
        dump_on_violation: bool = False,
    ) -> None:
        self.vm_id = vm_id
        self.name = name
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.max_samples = max_samples  # 0: until the VM exits
        self.vmlinux = vmlinux
        self.system_map = system_map
        self.ctx = zmq.Context()
        self.vmm = BusClient(self.ctx, vm_ctl, timeout_s=2.0)
        self.collector = BusClient(self.ctx, collector_ctl, timeout_s=2.0)
        self.pub = SamplePublisher(self.ctx, pub)  # packs a sample only for a subscriber
        self.server = ControlServer(
            self.ctx,
            ctl,
            {
                proto.MonitorStatus: self._on_status,
                proto.BpfList: self._on_bpf_list,
                proto.BpfRead: self._on_bpf_read,
                proto.BpfWrite: self._on_bpf_write,
            },
        )
        self.out_path = Path(run_dir) / monitor_file(name)
        self.state = proto.MonitorState.WAITING
        self.samples = 0
        self.published = 0  # samples sent to subscribers (none listening: none sent)
        self.errors = 0
        self.last_error = ""
        self._terminate = False
        self._poller = zmq.Poller()  # the control socket, and the wake pipe once run() starts
        self._poller.register(self.server.socket, zmq.POLLIN)  # the sample loop sleeps on it
        self._poller.register(self.pub.socket, zmq.POLLIN)  # (un)subscriptions to samples
        self._topic = topics.monitor_sample(vm_id)
        # one encoder for every line: json.dumps with options builds a new one per call
        self._encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
        self._wake_r = self._wake_w = -1
        self._memory = None  # the guest RAM mapping, once opened
        self._prog: Any = None  # the Program, once sampling (the BPF requests use it)
        self._regions: list[Any] = []
        self._wmem: Any = None  # a writable mapping, opened for the first BPF map write
        self._bpf_next = 0.0
        self._vmm_ok = 0.0  # monotonic time of the last answered status request while sampling
        self._domains_read = False
        self._domains_next = 0.0
        self.vcpu = VcpuTimesAsker(self.ctx, vm_ctl, VCPU_TIMES_EVERY_S)
        self.watchdog = None  # a WatchdogOverride when the run asked for one
        if watchdog_timeout_s is not None:
            from .watchdog import WatchdogOverride

            self.watchdog = WatchdogOverride(watchdog_timeout_s, hz)
        # The same judge as the verdict's, live: a sustained violation can ask for a dump.
        from verdicts.monitor import MonitorJudge
        from verdicts.thresholds import resolve_thresholds

        self.judge = MonitorJudge(resolve_thresholds(test=thresholds))
        self.dump_on_violation = dump_on_violation
        self.dumps_requested = 0
        self._last_dump = -DUMP_EVERY_S

    def _on_status(self, _msg: proto.MonitorStatus) -> proto.MonitorStatusReply:
        return proto.MonitorStatusReply(self.state, self.samples, self.errors, self.last_error)

    def _sampling_prog(self) -> Any:
        if self._prog is None or self.state != proto.MonitorState.SAMPLING:
            raise BusError(
                Status.NOT_ALLOWED, f"the monitor is {self.state}: the guest is not up yet"
            )
        return self._prog

    def _on_bpf_list(self, msg: proto.BpfList) -> proto.BpfListReply:
        from .bpf_view import list_reply

        return list_reply(self._sampling_prog(), msg.what)

    def _on_bpf_read(self, msg: proto.BpfRead) -> proto.BpfReadReply:
        from .bpf_view import read_reply

        return read_reply(self._sampling_prog(), msg.map, msg.key)

    def _on_bpf_write(self, msg: proto.BpfWrite) -> proto.BpfWriteReply:
        from .bpf_view import write_reply

        prog = self._sampling_prog()
        return write_reply(prog, msg, lambda va, data: self._write_guest(prog, va, data))

    def _write_guest(self, prog: Any, va: int, data: bytes) -> None:
        """One host-to-guest write asked for over the control socket: through a writable
        mapping of its own (the sampling one stays read-only unless the watchdog needs it)."""
        memory = self._memory
        if memory is None or not getattr(memory, "writable", False):
            if self._wmem is None:
                from .memory import GuestPhysMemory

                self._wmem = GuestPhysMemory(self._regions, writable=True)
            memory = self._wmem
        memory.write(prog.translator.to_phys(va), data)

    def _serve(self, timeout_s: float) -> None:
        """Answer control requests for up to ``timeout_s`` (the loop's only sleep); a
        SIGTERM ends the wait at once (through the wake pipe)."""
        if self._terminate:
            return
        ready = dict(self._poller.poll(int(timeout_s * 1000)))
        if self.server.socket in ready:
            self.server.handle_ready()
        if self.pub.socket in ready:
            self.pub.handle_ready()

    def _wait_until(self, ready) -> vmm_proto.StatusReply | None:  # noqa: ANN001
        """Poll the VMM (and collector) until ``ready(vmm_status, collector_status)``.

        Returns the VMM status then, or None if the VM is gone or we must stop.
        """
        last_ok = time.monotonic()
        while not self._terminate:
            try:
                st = self.vmm.request(vmm_proto.Status_())
                if st.state == VmState.EXITED:
                    return None
                cst = self.collector.request(collector_proto.CollectorStatus())
                last_ok = time.monotonic()
                if ready(st, cst):
                    return st
            except BusError as exc:
                if time.monotonic() - last_ok > self.grace_s:
                    raise
                log.debug("waiting: %s", exc)
            self._serve(0.1)
        return None

    def _open_program(self, status: vmm_proto.StatusReply) -> Any:
        from .memory import GuestPhysMemory
        from .program import Program

        # Writable only for the watchdog override: every other access is a read.
        self._regions = list(vmm_proto.layout_regions(status))
        memory = GuestPhysMemory(self._regions, writable=self.watchdog is not None)
        return Program(self.vmlinux, memory, system_map=self.system_map)

    def _sample(self, prog: Any, started_at: float) -> dict[str, Any]:
        """One sample line (:mod:`schedlab_shared.monitor_schema`)."""
        offsets = per_cpu_offsets(prog)
        cpus = cpu_samples(prog, offsets)
        sample: dict[str, Any] = {
            "elapsed_ms": (time.time() - started_at) * 1000.0,
            "cpus": cpus,
            "monitor": self.name,
        }
        scx = scx_sched_sample(prog, offsets)
        if scx is not None:
            sample["scx"] = scx
        vcpus = self._vcpu_times()
        if vcpus is not None:
            sample["vcpus"] = vcpus
            for c, ns in zip(cpus, vcpus["run_ns"], strict=False):
                if isinstance(ns, int) and ns >= 0:
                    c["vcpu_run_ns"] = ns
        if not self._domains_read and time.monotonic() >= self._domains_next:
            self._domains_next = time.monotonic() + 1.0  # a UP guest has none: try each second
            sample.update(self._domains(prog, len(cpus)))
        if self.watchdog is not None:
            sample.update(self.watchdog.step(prog, scx, sample["elapsed_ms"]))
        if time.monotonic() >= self._bpf_next:
            from .bpf_view import bpf_listing

            self._bpf_next = time.monotonic() + BPF_EVERY_S
            sample["bpf"] = bpf_listing(prog, offsets, sample["elapsed_ms"])
        return sample

    def _domains(self, prog: Any, ncpus: int) -> dict[str, Any]:
        """Each CPU's sched-domain chain, once per run (the first time any CPU has one)."""
        from .helpers.sched import sched_domains
        from .program import BadDataError

        try:
            chains = [sched_domains(prog, cpu) for cpu in range(ncpus)]
        except BadDataError as exc:
            log.debug("sched domains not readable yet: %s", exc)
            return {}
        if not any(chains):
            return {}
        self._domains_read = True
        return {"domains": chains}

    @property
    def _ask_vcpu_times(self) -> bool:
        """Whether the VMM still answers vCPU run times (it may say it cannot tell)."""
        return self.vcpu.enabled

    def _vcpu_times(self) -> dict[str, Any] | None:
        """The host's run time of each vCPU thread, asked for at most every
        :data:`VCPU_TIMES_EVERY_S` and taken when its reply came (never waited for); None
        in between and once the VMM cannot tell."""
        return self.vcpu.poll()

    def close_sockets(self) -> None:
        """Close every bus socket this monitor opened (the context can then terminate)."""
        for sock in (self.vmm, self.collector, self.server, self.pub, self.vcpu):
            sock.close()

    def run(self) -> ProcExit:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller.register(self._wake_r, zmq.POLLIN)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            # Symbols and BTF load while the guest boots; sampling waits for SYS_RDY.
            status = self._wait_until(lambda st, _cst: st.state == VmState.RUNNING)
            if status is None:
                return ProcExit.SIGNALLED if self._terminate else ProcExit.DONE
            prog = self._open_program(status)
            self._memory = prog.memory
            if self._wait_until(lambda _st, cst: bool(cst.sys_rdy)) is None:
                return ProcExit.SIGNALLED if self._terminate else ProcExit.DONE
            self.state = proto.MonitorState.SAMPLING
            self._prog = prog
            return self._sample_loop(prog, status.started_at)
        except BusError as exc:
            log.error("lost the VM: %s", exc)
            return ProcExit.LOST
        finally:
            self.state = proto.MonitorState.STOPPED
            if self._memory is not None:
                self._memory.close()
            if self._wmem is not None:
                self._wmem.close()
            self.close_sockets()
            self.ctx.term()
            wake_w, self._wake_w = self._wake_w, -1  # a late signal must not write to a reused fd
            os.close(self._wake_r)
            os.close(wake_w)

    def _judge_live(self, sample: dict[str, Any]) -> None:
        """Feed the live judge; a violation that just became sustained can ask the guest for
        a dump (SysRq-D with sched_ext's state, through the guest's DUMP_REQUEST control
        byte on its console port), at most once every :data:`DUMP_EVERY_S` seconds."""
        fresh = self.judge.feed(sample, trusted=True)
        if not fresh:
            return
        for v in fresh:
            log.warning("sustained violation: %s on CPU %s: %s", v["check"], v["cpu"], v["detail"])
        if self.dump_on_violation and time.monotonic() - self._last_dump >= DUMP_EVERY_S:
            self._last_dump = time.monotonic()
            self.request_dump()

    def request_dump(self) -> bool:
        """Ask the guest for a dump through the VMM's control path (the hook a live
        violation uses); False if the VMM did not take it."""
        from guest.control import DUMP_REQUEST

        try:
            self.vmm.request(vmm_proto.ConsoleWrite(DUMP_REQUEST), timeout_s=1.0)
        except BusError as exc:
            log.warning("dump request not delivered: %s", exc)
            return False
        self.dumps_requested += 1
        return True

    def _vm_exited(self) -> bool:
        """Ask the VMM whether the VM exited; an unanswered request means "not yet" until
        the VMM was silent for ``grace_s`` (then BusError: the VM is lost)."""
        try:
            st = self.vmm.request(vmm_proto.Status_())
        except BusError as exc:
            if time.monotonic() - self._vmm_ok > self.grace_s:
                raise
            log.warning("status check: %s", exc)
            return False
        self._vmm_ok = time.monotonic()
        return st.state == VmState.EXITED

    def _sample_loop(self, prog: Any, started_at: float) -> ProcExit:
        next_check = last_flush = 0.0
        self._vmm_ok = time.monotonic()
        with open(self.out_path, "a") as out:
            while not self._terminate:
                tick = time.monotonic()
                try:
                    sample = self._sample(prog, started_at)
                except Exception as exc:  # a torn read of live guest memory: count, go on
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                else:
                    out.write(self._encode(sample) + "\n")
                    if tick - last_flush >= FLUSH_EVERY_S:
                        out.flush()
                        last_flush = tick
                    self._judge_live(sample)
                    # the body of a proto.Sample, sent as built (a dataclass per sample costs)
                    self.published += self.pub.publish(self._topic, sample)
                    self.samples += 1
                    if self.max_samples and self.samples >= self.max_samples:
                        return ProcExit.DONE
                if tick >= next_check:
                    next_check = tick + 1.0
                    if self._vm_exited():
                        return ProcExit.DONE
                self._serve(max(0.0, self.interval_s - (time.monotonic() - tick)))
        return ProcExit.SIGNALLED

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self._terminate = True
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
