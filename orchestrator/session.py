"""One ``schedlab run``: prepare inputs, start the processes, follow the run, tear down.

The session owns a runtime directory (sockets, configs) that it always removes, and a run
directory (logs, results) that it always keeps. Teardown runs on success, failure, timeout
and Ctrl-C alike.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import zmq

from guest import control as guest_control
from schedlab_shared import run_layout
from schedlab_shared.bus import collector as collector_proto
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError
from schedlab_shared.bus.vmm import ExitReason, VmState
from schedlab_shared.cache import runs_dir
from schedlab_shared.exitcodes import RunExit
from schedlab_shared.guest_ram import SHM_DIR, SHM_PREFIX, run_leftovers
from schedlab_shared.vm_config import RUNTIME_DIR_ENV, VmConfig

from . import snapshot_cache
from .cli_options import package_version
from .endpoints import Endpoints
from .faults import Fault
from .inputs import InputSender, InputsError, RunInputs, corrupted
from .inputs import prepare as prepare_run_inputs
from .monitor_watch import MonitorWatch, monitor_name
from .reaper import start_reaper
from .request import STOP_GRACE_S, RunRequest
from .result import RunOutcome, build_result
from .sched_outcome import SchedReport, cut_debug_dump
from .sched_watch import SchedWatch
from .supervise import Program, Supervisor, SupervisorError
from .verdict import Verdict

__all__ = ("RunRequest", "RunSession", "RunError")

Progress = Callable[[str, str], None]
_DRAIN_GRACE_S = 30.0
_POLL_S = 0.2  # following the run; the processes' health is checked at this pace too
_END_POLL_S = 0.02  # between the guest's RESULT and the collector's "complete"
_STOP_RESEND_S = 2.0  # the guest may open its control port only after the first request
_SNAPSHOT_S = 120.0  # pause, save KVM and device state, copy the RAM image (sparse)
_ACK_TIMEOUT_S = 60.0  # all inputs sent -> the guest's INPUTS_ACK (it hashes and writes them)


class RunError(Exception):
    """Infrastructure failure before or around the test; one line for the user."""


#: The Hooks.hide_bulk_port name: not the one the guest looks for.
HIDDEN_BULK_PORT = "org.schedlab.hidden-by-test-hook"


def _cmdline(req: RunRequest) -> str:
    """The kernel command line: the kernel's own options only. What the guest runs travels
    in the run document over the bulk port after SYS_RDY (orchestrator.inputs)."""
    vm = req.vm
    base = [
        "console=ttyS0",
        "panic=-1",
        "nokaslr",
        "rdinit=/init",
        "schedstats=enable",
    ]  # the monitor's schedstat fields count only when enabled
    if vm.oops_panic:
        base.append("oops=panic")
    if vm.engine == "kvm" and "quiet" not in vm.extra_cmdline:
        # Our VMM takes one exit per UART byte: keep the console for warnings and panics;
        # the guest sends the whole kernel log over the bulk port instead (kernel.log).
        base.append("quiet")
    return " ".join([*base, *vm.extra_cmdline])


def _anchors(messages: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """(host arrival time, guest CLOCK_BOOTTIME) of the frames that carry the guest's clock:
    SYS_RDY's ``boot_ns`` and each PHASE's ``t_ns`` (schedlab_shared.host_pauses)."""
    out = []
    for m in messages:
        p = m.get("payload")
        key = {"SYS_RDY": "boot_ns", "PHASE": "t_ns"}.get(m.get("type", ""))
        if key and isinstance(p, dict) and isinstance(p.get(key), int):
            if isinstance(m.get("host_time"), int | float):
                out.append((float(m["host_time"]), p[key]))
    return out[:1024]


class RunSession:
    def __init__(self, req: RunRequest, progress: Progress | None = None) -> None:
        self.req = req
        self.progress = progress or (lambda phase, detail: None)
        self.run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        self.run_dir = (req.run_dir or runs_dir() / self.run_id).resolve()
        self.runtime = Path(tempfile.mkdtemp(prefix="schedlab-run-"))
        self.endpoints = Endpoints.allocate(self.run_id, self.runtime, req.monitors, req.listen)
        self.endpoints.vmlinux = str(req.vm.kernel.vmlinux or "")
        self.endpoints.system_map = str(req.vm.kernel.system_map or "")
        self.ctx = zmq.Context()
        self.supervisor: Supervisor | None = None
        self.monitors: MonitorWatch | None = None
        #: ``schedlab shell``: made once the VMM's client exists (orchestrator.shell_relay)
        self.make_relay: Callable[[RunSession], Any] | None = None
        self.relay: Any = None
        self._relay_stop_at = 0.0
        self._stop_sent_at = 0.0  # monotonic time of the last timeout stop request
        self._snapshot_to: Path | None = None  # take a snapshot there at SYS_RDY
        self._snapshot_key: dict[str, str] = {}
        self.outcome = RunOutcome(
            engine=req.vm.engine,
            engine_reason=req.vm.engine_reason,
            kernel={"version": req.vm.kernel.version, "path": str(req.vm.kernel.vmlinuz)},
            topology={
                **req.vm.topology.to_dict(),
                "spec": req.vm.topology.spec,
                "cpus": req.vm.topology.nr_cpus,
            },
            run_dir=self.run_dir,
            run_id=self.run_id,
            sched=SchedReport(req.sched),
            thresholds=req.checks.thresholds,
            watchdog_timeout_s=req.checks.watchdog_timeout_s,
            test_limits=req.limits.worker_overrides(),
            expect_error=req.limits.expect_error,
            tcg=req.vm.engine == "qemu" and req.vm.qemu_accel == "tcg",
        )

    # --- setup ---
    def _vm_config(self) -> Path:
        vm = self.req.vm
        k = vm.kernel
        cfg = VmConfig(
            run_id=self.run_id,
            engine=vm.engine,
            kernel=str(k.vmlinuz),
            initrd=str(self._guest_image()),
            cmdline=_cmdline(self.req),
            topology=vm.topology,
            mem_mib=vm.mem_mib,
            timeout_s=self.req.vm_timeout_s,
            qemu_accel=vm.qemu_accel,
            vmlinux="" if vm.boot_bzimage else str(k.vmlinux or ""),
            bulk_port_name=HIDDEN_BULK_PORT if self.req.hooks.hide_bulk_port else "",
            performance=vm.performance,
            **self._snapshot_plan(),
        )
        path = self.runtime / "vm.msgpack"
        path.write_bytes(msgpack.packb(cfg.to_dict(), use_bin_type=True))
        (self.run_dir / run_layout.VM_CONFIG).write_text(
            __import__("json").dumps(cfg.to_dict(), indent=2)
        )
        return path

    def _snapshot_plan(self) -> dict[str, Any]:
        """KVM engine: start from the cached snapshot of this VM if there is one, else take
        one at SYS_RDY (``_take_snapshot``) for the next run."""
        vm = self.req.vm
        if vm.engine != "kvm" or not self.req.snapshots or self.req.hooks.truncate_image:
            return {}
        key = snapshot_cache.snapshot_key(
            Path(vm.kernel.vmlinux or vm.kernel.vmlinuz),
            self._guest_image(),
            vm.topology.spec,
            vm.mem_mib,
            _cmdline(self.req),
            package_version(),
            vm.performance,
        )
        directory = snapshot_cache.snapshot_dir(key)
        if snapshot_cache.usable(directory):
            return {"restore_dir": str(directory), "snapshot_key": key}
        self._snapshot_to, self._snapshot_key = directory, key
        return {}

    def _take_snapshot(self) -> None:
        """At SYS_RDY, before the run's inputs: save the VM for later runs (never fatal)."""
        directory, self._snapshot_to = self._snapshot_to, None
        if directory is None:
            return
        try:
            reply = self.vmm.request(
                vmm_proto.Snapshot(str(directory), self._snapshot_key), timeout_s=_SNAPSHOT_S
            )
        except BusError as exc:
            self.outcome.engine_notes.append(f"snapshot: not saved: {exc}")
            return
        if reply.ok:
            self.outcome.engine_notes.append(
                f"snapshot: saved for the next runs (guest paused {reply.paused_ms:.0f} ms)"
            )
        else:
            self.outcome.engine_notes.append(f"snapshot: not saved: {reply.error}")

    def _guest_image(self) -> Path:
        """The initramfs, or for the truncate_image hook a copy missing its last bytes."""
        cut = self.req.hooks.truncate_image
        if not cut:
            return self.req.vm.initrd
        out = self.runtime / "initrd-truncated.cpio"
        shutil.copyfile(self.req.vm.initrd, out)
        os.truncate(out, max(0, out.stat().st_size - cut))
        return out

    def _programs(self, vm_config: Path) -> list[Program]:
        py, ep, rd = sys.executable, self.endpoints, str(self.run_dir)
        progs = [
            Program(
                "vmm",
                [
                    py,
                    "-m",
                    "vmm_proc",
                    "--config",
                    str(vm_config),
                    "--ctl",
                    ep.vmm_ctl,
                    "--pub",
                    ep.vmm_pub,
                ],
                self.run_dir / run_layout.process_log("vmm"),
                restart=False,
                env={RUNTIME_DIR_ENV: str(self.runtime)},
            ),
            Program(
                "collector",
                [
                    py,
                    "-m",
                    "collector_proc",
                    "--vm-id",
                    self.run_id,
                    "--vm-ctl",
                    ep.vmm_ctl,
                    "--vm-pub",
                    ep.vmm_pub,
                    "--run-dir",
                    rd,
                    "--ctl",
                    ep.collector_ctl,
                    "--pub",
                    ep.collector_pub,
                    *(["--store", self.req.store] if self.req.store else []),
                ],
                self.run_dir / run_layout.process_log("collector"),
            ),
        ]
        vmlinux = self.req.vm.kernel.vmlinux
        for i, (ctl, pub) in enumerate(ep.monitors):
            name = monitor_name(i)
            argv = [
                py,
                "-m",
                "monitor_proc",
                "--vm-id",
                self.run_id,
                "--vm-ctl",
                ep.vmm_ctl,
                "--collector-ctl",
                ep.collector_ctl,
                "--vmlinux",
                str(vmlinux),
                "--run-dir",
                rd,
                "--ctl",
                ctl,
                "--pub",
                pub,
                "--name",
                name,
                "--interval",
                str(self.req.monitor_interval_s),
            ]
            if self.req.vm.kernel.system_map:
                argv += ["--system-map", str(self.req.vm.kernel.system_map)]
            if i == 0:
                argv += self._primary_monitor_args()
            progs.append(Program(name, argv, self.run_dir / run_layout.process_log(name)))
        return progs

    def _primary_monitor_args(self) -> list[str]:
        """The primary monitor judges live (a sustained violation asks for a dump) and
        applies the watchdog override; extra monitors only read."""
        checks = self.req.checks
        args = ["--dump-on-violation", "--thresholds", json.dumps(checks.thresholds.to_dict())]
        if checks.watchdog_timeout_s is not None:
            hz = self.req.vm.kernel.opt("CONFIG_HZ")
            if not (hz or "").isdigit():
                raise RunError(
                    f"kernel {self.req.vm.kernel.version}: no CONFIG_HZ in its config; "
                    "the watchdog override needs it"
                )
            args += ["--watchdog-timeout", str(checks.watchdog_timeout_s), "--hz", hz]
        return args

    # --- the run ---
    def run(self) -> tuple[dict[str, Any], int]:
        """Run the test; returns the result document and the exit code (0, 1 or 2)."""
        t0 = time.monotonic()
        self._t0_wall = time.time()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        interrupted = False
        # Removes what this process would leave if SIGKILLed (its finally never runs).
        reaper = start_reaper(
            self.runtime,
            self.run_dir / run_layout.ENDPOINTS,
            os.path.join(SHM_DIR, f"{SHM_PREFIX}{self.run_id}*"),
        )
        try:
            self._start()
            self._follow(t0)
        except (SupervisorError, RunError) as exc:
            self.outcome.errors.append(str(exc))
        except KeyboardInterrupt:
            interrupted = True
            self.outcome.errors.append("interrupted by the user; everything was stopped")
        finally:
            t_down = time.monotonic()
            self._teardown()
            reaper.release()
            self.outcome.timings.teardown_ms = (time.monotonic() - t_down) * 1000
            self.outcome.timings.total_ms = (time.monotonic() - t0) * 1000
        self._gather_restarts()
        result = build_result(self.outcome)
        code = Verdict(result["verdict"]).exit_code
        return result, (RunExit.INTERRUPTED if interrupted else code)

    def _start(self) -> None:
        if self.req.vm.kernel.vmlinux is None:
            raise RunError(f"kernel {self.req.vm.kernel.version}: no vmlinux ELF for the monitor")
        try:  # before anything starts: a bad file is the user's error, with nothing to undo
            self.inputs: RunInputs = prepare_run_inputs(
                self.req.guest_spec(),
                self.req.files,
                self.req.scheduler,
                run_id=self.run_id,
                session=self.req.session,
                scenario=self.req.scenario.plan,
            )
        except InputsError as exc:
            raise RunError(str(exc)) from None
        if self.req.hooks.corrupt_spec:
            self.inputs = corrupted(self.inputs)
        # supervisord spawns them itself, VMM first, as it comes up: no RPC per program.
        progs = [
            replace(p, autostart=True, priority=i + 1)
            for i, p in enumerate(self._programs(self._vm_config()))
        ]
        self.endpoints.write(self.run_dir)
        self.supervisor = Supervisor(self.runtime, self.run_dir, progs)
        self.progress("start", "starting processes under supervisord")
        self.supervisor.start()
        self.vmm = BusClient(self.ctx, self.endpoints.vmm_ctl, timeout_s=2.0)
        self.collector = BusClient(self.ctx, self.endpoints.collector_ctl, timeout_s=2.0)
        self.sched_watch = SchedWatch(self.vmm, self.collector, self.outcome.sched, self.progress)
        self.monitors = MonitorWatch(
            self.ctx,
            [ctl for ctl, _ in self.endpoints.monitors],
            self.supervisor,
            self.run_dir,
            self.progress,
        )
        if self.make_relay is not None:
            self.relay = self.make_relay(self)

    def _follow(self, t0: float) -> None:
        started_at = 0.0
        follow_wall = time.time()
        deadline = time.monotonic() + self.req.vm_timeout_s + _DRAIN_GRACE_S
        pending_faults = list(self.req.hooks.faults)
        timed_out = False
        self.progress("boot", "booting the guest")
        interval, next_check = _POLL_S, 0.0
        self._sender: InputSender | None = None
        self._inputs_state = "waiting"  # -> sending -> sent -> acked | failed
        while True:
            if self._inputs_state == "sending":
                self._send_inputs()  # a bounded slice, in place of the sleep
            elif self.relay is not None:
                self._pump_relay(_END_POLL_S if self.sched_watch.urgent else interval)
            else:
                time.sleep(_END_POLL_S if self.sched_watch.urgent else interval)
            try:
                if not started_at:
                    st = self.vmm.request(vmm_proto.Status_())
                    started_at = st.started_at
                    self.outcome.engine_notes[:0] = list(st.notes)
                cst = self.collector.request(collector_proto.CollectorStatus())
            except BusError:
                cst = None  # a process is (re)starting; supervisor brings it back
            if cst is not None:
                self.sched_watch.poll(cst)  # the scheduler exited: stop the VM early
                self._note_progress(cst, started_at)
                if cst.complete:
                    self._collect(cst, started_at)
                    self._inputs_at_end()
                    return
                if cst.sys_rdy:
                    self._follow_inputs(cst)
                    pending_faults = self._inject(pending_faults, time.time() - cst.sys_rdy)
                # Once the guest reported, the VM exits within moments: notice it at once.
                interval = _END_POLL_S if cst.result is not None or cst.vm_exited else _POLL_S
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + _POLL_S
                self._check_processes()
                ending = cst is not None and (cst.result is not None or cst.vm_exited)
                if self.monitors is not None and not ending:  # what they said until now stands
                    self.monitors.poll()
                sys_rdy = cst.sys_rdy if cst is not None else None
                stop_at = self.req.stop_at(started_at or follow_wall, sys_rdy)
                now = time.time()
                if now >= stop_at:
                    self._stop_on_timeout(cst, stop_at - (started_at or follow_wall))
                if now >= stop_at + STOP_GRACE_S and not timed_out:
                    timed_out = True
                    self.outcome.errors.append("the run did not complete in time; VM stopped")
                    self._stop_vm(ExitReason.TIMEOUT)
                    deadline = time.monotonic() + _DRAIN_GRACE_S
            if time.monotonic() > deadline and not timed_out:
                timed_out = True
                self.outcome.errors.append("the run did not complete in time; VM stopped")
                self._stop_vm(ExitReason.TIMEOUT)
                deadline = time.monotonic() + _DRAIN_GRACE_S
            elif time.monotonic() > deadline:
                raise RunError("processes did not drain after the VM was stopped")

    def _pump_relay(self, budget_s: float) -> None:
        """The shell session: relay for a while; the user's escape asks the guest to stop
        (again every few seconds, as the timeout's request)."""
        self.relay.pump(budget_s)
        if self.relay.left and time.monotonic() - self._relay_stop_at >= _STOP_RESEND_S:
            self._relay_stop_at = time.monotonic()
            self._request_guest_stop()

    def _stop_on_timeout(
        self, cst: collector_proto.CollectorStatusReply | None, elapsed_s: float
    ) -> None:
        """The run's timeout: ask the guest to stop and report (again every few seconds, in
        case its control port was not open yet); the VM's hard stop follows later."""
        if self.outcome.timed_out_s is None:
            if cst is not None and (cst.result is not None or cst.vm_exited):
                return  # the test finished in time; the guest is on its way out
            self.outcome.timed_out_s = round(elapsed_s, 1)
            self.progress(
                "timeout",
                f"timed out after {self.outcome.timed_out_s:g} s; asking the guest "
                "to stop and report",
            )
        if time.monotonic() - self._stop_sent_at >= _STOP_RESEND_S:
            self._stop_sent_at = time.monotonic()
            self._request_guest_stop()

    def _request_guest_stop(self) -> None:
        """The shutdown control byte on the guest's console port: stop, report, power off."""
        try:
            self.vmm.request(vmm_proto.ConsoleWrite(guest_control.SHUTDOWN_REQUEST), timeout_s=1.0)
        except BusError:
            pass  # the VMM is busy or the port is not connected yet: asked again later

    # --- the run's inputs, after SYS_RDY ---
    def _follow_inputs(self, cst: collector_proto.CollectorStatusReply) -> None:
        """Start sending at SYS_RDY; then watch for the guest's answer, which may come early
        (a refused document) or never (a stalled guest: bounded by _ACK_TIMEOUT_S)."""
        if self._inputs_state == "waiting":
            self._take_snapshot()  # PID 1 waits for these inputs: nothing of the run yet
            self._sender = InputSender(self.vmm, self.inputs)
            self._inputs_state = "sending"
            self._inputs_since = time.monotonic()
            return
        if self._inputs_state not in ("sending", "sent") or self._sender is None:
            return
        try:
            ack = self._sender.poll_ack(self.collector)
        except BusError:
            return  # the collector is restarting: ask again next turn
        if ack is None:
            if time.monotonic() - self._inputs_since > _ACK_TIMEOUT_S:
                what = "took no input byte" if self._inputs_state == "sending" else "did not answer"
                self._inputs_failed(f"the guest {what} for {_ACK_TIMEOUT_S:g} s")
            return
        self.outcome.inputs = self._sender.summary(ack)
        self.outcome.timings.inputs_ms = (self._sender.stats.acked_at - cst.sys_rdy) * 1000
        if ack.ok:
            self._inputs_state = "acked"
        else:
            # The guest reports it too (RESULT, EXIT BAD_SPEC) and powers off by itself.
            self._inputs_state = "failed"
            self.outcome.errors.append(f"the guest refused the run's inputs: {ack.error}")

    def _send_inputs(self) -> None:
        assert self._sender is not None
        before = self._sender.stats.bytes
        try:
            if self._sender.step(_POLL_S):
                self._inputs_state = "sent"
        except InputsError as exc:
            self._inputs_failed(str(exc))
        if self._sender.stats.bytes != before or self._inputs_state == "sent":
            self._inputs_since = time.monotonic()  # progress: the stall clock restarts

    def _inputs_failed(self, why: str) -> None:
        self._inputs_state = "failed"
        if self._sender is not None:
            self.outcome.inputs = self._sender.summary(None)
        self.outcome.errors.append(f"the run's inputs did not reach the guest: {why}")
        self._stop_vm(ExitReason.STOPPED)

    def _inputs_at_end(self) -> None:
        """The run is over: an answer not seen yet is in the collector's messages, or none came."""
        if self._sender is None or self._inputs_state not in ("sending", "sent"):
            return
        try:
            ack = self._sender.poll_ack(self.collector)
        except BusError:
            ack = None
        self.outcome.inputs = self._sender.summary(ack)
        if ack is None:
            self.outcome.errors.append("the guest never acknowledged the run's inputs")
        elif not ack.ok:
            self.outcome.errors.append(f"the guest refused the run's inputs: {ack.error}")

    def _note_progress(self, cst: collector_proto.CollectorStatusReply, started_at: float) -> None:
        if cst.vm_exited:
            self.progress("drain", f"VM exited ({cst.vm_exit_reason}); draining streams")
        elif cst.result is not None:
            self.progress("result", "test finished; waiting for the guest to exit")
        elif cst.sys_rdy and self._inputs_state in ("waiting", "sending", "sent"):
            mib = self.inputs.file_bytes / (1 << 20)
            self.progress(
                "inputs",
                f"sending the run's inputs ({len(self.inputs.files)} files, {mib:.1f} MiB)",
            )
        elif cst.sys_rdy:
            self.progress("test", f"guest ready; test running ({self.req.scenario.duration_s:g} s)")

    def _inject(self, faults: list[Fault], since_ready_s: float) -> list[Fault]:
        left = []
        for f in faults:
            if since_ready_s >= f.at_s and f.pause_s:
                self.outcome.injected.append(
                    f"{f} ({self._pause_vm(f.pause_s)}, {since_ready_s:.1f} s after SYS_RDY)"
                )
            elif since_ready_s >= f.at_s and self.supervisor is not None:
                pid = self.supervisor.kill(f.target, signal.SIGKILL)
                self.outcome.injected.append(
                    f"{f} (pid {pid}, {since_ready_s:.1f} s after SYS_RDY)"
                )
                self.progress("fault", f"killed {f.target} (pid {pid})")
            else:
                left.append(f)
        return left

    def _pause_vm(self, seconds: float) -> str:
        """Stop the process of the vCPU threads for ``seconds`` (SIGSTOP, then SIGCONT: the
        host not running the VM, as a loaded host does); what was stopped, or why not."""
        try:
            tids = self.vmm.request(vmm_proto.VcpuTimes()).threads
        except BusError as exc:
            return f"not paused: {exc}"
        try:
            with open(f"/proc/{int(tids[0])}/status") as f:
                pid = next(int(ln.split()[1]) for ln in f if ln.startswith("Tgid:"))
        except (OSError, ValueError, IndexError, StopIteration) as exc:
            return f"not paused: vCPU thread unknown ({exc})"
        self.progress("fault", f"pausing the VM (pid {pid}) for {seconds:g} s")
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"pid {pid} stopped {seconds:g} s"

    def _check_processes(self) -> None:
        """The VMM must not die before the run completes; the collector must not give up."""
        if self.supervisor is None:
            return
        for name, failed in (("vmm", ("EXITED", "FATAL", "BACKOFF")), ("collector", ("FATAL",))):
            info = self.supervisor.info(name)
            if info["statename"] in failed and info["exitstatus"] != 0:
                text = (self.run_dir / run_layout.process_log(name)).read_text(errors="replace")
                last = text.strip().splitlines()[-1:] or [""]
                raise RunError(f"{name}_proc failed (exit {info['exitstatus']}): {last[0]}")

    def _collect(self, cst: collector_proto.CollectorStatusReply, started_at: float) -> None:
        o = self.outcome
        o.guest_result = cst.result
        o.guest_exit_code = cst.exit_code
        o.sys_rdy = cst.sys_rdy
        o.vm_exit_reason, o.vm_exit_detail = cst.vm_exit_reason, cst.vm_exit_detail
        o.decoder = dict(cst.decoder)
        o.sched.state = cst.sched
        o.sched.stopped_early = cst.vm_exit_reason == ExitReason.SCHED_EXIT
        o.sched.debug_dump = cut_debug_dump(self.run_dir)
        times: dict[str, float] = {}
        start = 0
        while True:  # page through: a chatty guest can send many STDOUT frames first
            page = self.collector.request(collector_proto.Messages(start, 5000)).messages
            times.update(
                (m["type"], m["host_time"]) for m in page if m["type"] in ("SYS_RDY", "RESULT")
            )
            o.clock_anchors += _anchors(page)
            start += len(page)
            if len(page) < 5000:
                break
        o.vm_started_at = started_at
        if started_at:
            o.timings.start_ms = (started_at - self._t0_wall) * 1000
        if cst.sys_rdy and started_at:
            o.timings.vm_start_to_sys_rdy_ms = (cst.sys_rdy - started_at) * 1000
        if "SYS_RDY" in times and "RESULT" in times:
            o.timings.test_ms = (times["RESULT"] - times["SYS_RDY"]) * 1000
        if "RESULT" in times:
            o.timings.exit_ms = (time.time() - times["RESULT"]) * 1000

    def _stop_vm(self, reason: ExitReason) -> None:
        try:
            self.vmm.request(vmm_proto.Stop(reason))
        except BusError:
            pass

    def _gather_restarts(self) -> None:
        """Restart counts from supervisord's log, once every process has stopped."""
        if self.supervisor is None:
            return
        self.outcome.restarts = {n: h.restarts for n, h in self.supervisor.history().items()}
        if self.monitors is not None:
            self.outcome.monitors = self.monitors.reports()

    # --- teardown ---
    def _stop_guest_gracefully(self, wait_s: float = 3.0) -> None:
        """Ask the guest to shut down (a control byte on its console port), then the VM."""
        try:
            if self.vmm.request(vmm_proto.Status_(), timeout_s=1.0).state != VmState.RUNNING:
                return
            self._request_guest_stop()
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if self.vmm.request(vmm_proto.Status_(), timeout_s=1.0).state == VmState.EXITED:
                    return
                time.sleep(0.1)
            self.vmm.request(vmm_proto.Stop(ExitReason.STOPPED), timeout_s=1.0)
        except BusError:
            pass  # the VMM is gone or busy: supervisor's stop below ends it anyway

    def _teardown(self) -> None:
        self.progress("teardown", "stopping processes")
        if hasattr(self, "vmm"):
            self._stop_guest_gracefully()
        try:
            if self.supervisor is not None:
                self.supervisor.shutdown()
        finally:
            for client in ("vmm", "collector"):
                if hasattr(self, client):
                    getattr(self, client).close()
            if self.monitors is not None:
                self.monitors.close()
            if self.relay is not None:
                self.relay.close()
            self.ctx.term()
            shutil.rmtree(self.runtime, ignore_errors=True)
            (self.run_dir / run_layout.ENDPOINTS).unlink(
                missing_ok=True
            )  # the run is no longer live
            # The VMM unlinks guest RAM itself; this covers a VMM that was killed.
            for path in run_leftovers(self.run_id):
                os.unlink(path)
