"""The init process's run, phase by phase: boot, channels, workers, inputs, workload, report.

PID 1 (:mod:`guest.init`) forks this process and powers off after it. Phases, in order:

1. boot: mounts, fds 0-2, the image sentinel, kernel modules (:mod:`guest.boot`).
2. channels: the bulk port, SYS_RDY, the boot log (:class:`~guest.reporter.Reporter`).
3. workers: stdio pipes, then the worker parent, forked while this process has one thread
   (:class:`~guest.worker_pool.WorkerPool`); then the host I/O threads
   (:class:`~guest.hostio.HostIo`).
4. inputs: the run document and files from the host (:func:`guest.inputs.receive_inputs`).
5. scheduler: the scheduler under test started and attached
   (:class:`~guest.schedphase.SchedulerPhase`; nothing for EEVDF).
6. workload: the scenario (:mod:`guest.scenario.runner`); the scheduler's exit stops it
   early. RESULT carries its step records. A shell or exec session (the run document's
   ``session``) runs in its place (:mod:`guest.shellphase`).
   Then the scheduler is stopped (its detach checked), and RESULT.
7. report: the kernel log, the shutdown PHASE and EXIT; the worker parent is closed.

A bad image or bad inputs are reported on the bulk port (LOG, RESULT, EXIT with its
:class:`~guest.wire.ExitCode`). An unexpected exception is a crash: its traceback goes out as
``PANIC:`` lines (:func:`guest.crash.panic`) and nothing more is written to the bulk port; no
EXIT frame then tells the host the guest was lost rather than the test failed.
"""

from __future__ import annotations

import os

from guest import boot
from guest.crash import CRASHED, panic
from guest.hostio import HostIo
from guest.inputs import InputError, receive_inputs
from guest.probes import probe_plan
from guest.reporter import Reporter
from guest.rundoc import Scheduler
from guest.scenario.cgroupfs import CgroupError, Cgroups
from guest.scenario.runner import WORK_DIR, run_scenario, spinners_plan
from guest.schedphase import SchedulerPhase
from guest.spec import PLAN, PROBES, RunSpec
from guest.wire import ExitCode, FrameType
from guest.worker_pool import WorkerError, WorkerPool

TYPE_CHECKING = False  # typing and pathlib cost seconds of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

    from guest.env import Env
    from guest.receiver import Received
    from guest.rundoc import Scheduler, Session

__all__ = ("GuestRun",)


class GuestRun:
    """One guest run. :meth:`run` is the whole life of the init process.

    :param env: where and how it runs (a fake system and a temp root in tests).
    """

    def __init__(self, env: Env) -> None:
        self.env = env
        self.out = Reporter(env)
        self.host = HostIo(env, self.out)
        self.pool: WorkerPool | None = None
        self.sched: SchedulerPhase | None = None
        self.workers_closed: dict[str, Any] = {}
        self.inputs: Received | None = None
        self._main_ns = env.system.boot_ns()  # after imports: SYS_RDY reports the startup cost

    def run(self) -> int:
        """Run every phase; return this process's exit status (0, or CRASHED once reported)."""
        code: ExitCode | None = None
        if self.env.crash_fd >= 0:
            import faulthandler  # a native fault still leaves a trace for PID 1 to report

            faulthandler.enable(self.env.crash_fd, all_threads=False)  # the faulting thread
        try:
            code = self._phases()
        except BaseException as e:  # noqa: B036 - PID 1 must still get to power off
            self._crash("init crashed", e)
            return CRASHED
        finally:
            self._close(crashed=code is None)
        if not self._report(code):
            return CRASHED
        return 0

    # -- phases --------------------------------------------------------------------------

    def _phases(self) -> ExitCode:
        mount_errors = self._boot()
        image_err = boot.check_image(self.env.root)
        if image_err:
            self.out.note("error", f"BAD_IMAGE: {image_err}")
            self.out.open_bulk()
            return self.out.result_fail(ExitCode.BAD_IMAGE, f"bad image: {image_err}")
        modules = boot.load_modules(
            self.env.system, self.env.root, self.env.system.kernel_release()
        )
        for m in modules:
            if m.status == "failed":
                self.out.note("error", f"module {m.name}: {m.error}")
        if not self._channels(modules):
            return ExitCode.SETUP_FAILED
        if any(e.startswith("required") for e in mount_errors):
            return self.out.result_fail(ExitCode.SETUP_FAILED, "; ".join(mount_errors))
        try:
            self._start_workers()
        except (WorkerError, OSError) as e:
            return self.out.result_fail(ExitCode.SETUP_FAILED, f"worker parent: {e}")
        self.host.start()
        self.out.phase("setup")
        try:
            self.inputs = receive_inputs(self.env, self.out, self.host.stop_requested)
        except InputError as e:
            self.out.log("error", f"run inputs: {e}")
            if self.host.stop_requested.is_set():
                return self.out.result_fail(ExitCode.SHUTDOWN, f"run inputs: {e}")
            return self.out.result_fail(ExitCode.BAD_SPEC, f"run inputs: {e}")
        return self._with_scheduler(self.inputs.doc.spec, self.inputs.doc.scheduler)

    def _boot(self) -> list[str]:
        """Mount, reopen COM2; return the mount errors (noted)."""
        mount_errors = boot.mount_all(self.env.system, self.env.root)
        self.out.reopen_com2()
        for err in mount_errors:
            self.out.note("error" if err.startswith("required") else "warning", err)
        return mount_errors

    def _channels(self, modules: list[boot.ModuleLoad]) -> bool:
        if not self.out.open_bulk():
            return False
        sys = self.env.system
        self.out.send(
            FrameType.SYS_RDY,
            {
                "kernel": sys.kernel_release(),
                "cpus": sys.cpus(),
                "boot_ns": sys.boot_ns(),
                "main_ns": self._main_ns,
                "modules": [m.as_map() for m in modules],
            },
        )
        self.out.send_kmsg()
        return True

    def _start_workers(self) -> None:
        """Fork the worker parent while this process still has one thread."""
        self.host.redirect_stdio()
        self.pool = WorkerPool.fork(self.out.com2.fd, single_threaded=self.env.pid1)

    def _with_scheduler(self, spec: RunSpec, sched: Scheduler) -> ExitCode:
        """The scheduler phase around the workload; the scheduler stopped on every path."""
        if self.host.stop_requested.is_set():
            return self.out.result_fail(ExitCode.SHUTDOWN, "host requested shutdown before start")
        self.sched = SchedulerPhase(self.env, self.out, sched, self.host.stop_requested)
        self.host.sysrq_dump = self.sched.sysrq_dump
        try:
            failed = self.sched.start()
            if failed is not None:
                code, why = failed
                self.out.log("error", why)
                return self.out.result_fail(code, why, spec)
            doc = self.inputs.doc if self.inputs is not None else None
            if doc is not None and doc.session.interactive:
                return self._session(doc.session)
            plan = doc.scenario if doc is not None and spec.scenario == PLAN else None
            return self._workload(spec, plan)
        finally:
            self.sched.finish()

    def _workload(self, spec: RunSpec, plan: dict[str, Any] | None = None) -> ExitCode:
        """The scenario ``plan`` (a validated scenario document), or, for a cgroup-spinners
        spec, its steady document; then RESULT."""
        assert self.sched is not None
        if self.host.stop_requested.is_set():
            return self.out.result_fail(ExitCode.SHUTDOWN, "host requested shutdown before start")
        if spec.wire_noise and self.out.bulk is not None:
            from guest.noise import noise_round

            for i in range(spec.wire_noise):
                self.out.bulk.write_raw(noise_round(i))
            self.out.log("info", f"wrote {spec.wire_noise} rounds of wire noise")
        self.out.phase("workload")
        if spec.crash:
            self._crash_on_purpose(spec.crash)
        assert self.pool is not None
        if plan is None and spec.scenario in PROBES:
            plan = probe_plan(spec.scenario, spec.duration, self.env.system.cpus())
        if plan is None:
            plan = spinners_plan(spec.cgroups, spec.workers, spec.duration, self.env.system.cpus())
        cgroups = Cgroups(self.env.path("sys/fs/cgroup"), rmdir=self.env.cgroup_rmdir)
        try:
            out = run_scenario(
                plan,
                cgroups,
                self.pool,
                stop=self.host.stop_requested,
                work_dir=self.env.path(WORK_DIR.lstrip("/")),
                fairness=spec.fairness,
                max_gap_ms=spec.max_gap_ms,
            )
        except CgroupError as e:
            cgroups.remove_all()
            return self.out.result_fail(ExitCode.SETUP_FAILED, f"cgroup setup failed: {e}", spec)
        except WorkerError as e:
            return self.out.result_fail(ExitCode.SETUP_FAILED, f"workers: {e}", spec)
        if out.setup_error:
            return self.out.result_fail(
                ExitCode.SETUP_FAILED, f"cgroup setup failed: {out.setup_error}", spec
            )
        self.out.phase("verdict")
        for err in out.cleanup_errors:
            self.out.log("warning", f"cgroup cleanup: {err}")
        self.sched.finish()  # before RESULT: the host may stop the VM once it has it
        # Facts only: the host judges the reports (verdicts.workers). ``passed`` says the
        # workload ran to its end with its scheduler still attached.
        sched_exit = self.sched.exit_reason()
        reason = sched_exit or ("stopped by host shutdown request" if out.stopped else "")
        payload = {
            "passed": not reason,
            "reason": reason or "workload complete",
            "scenario": plan["name"],
            "spec": spec.as_dict(),
            "stopped": out.stopped,
            "workers": [r.as_map() for r in out.reports],
            "steps": out.steps,
            "backdrop": out.backdrop,
            "fairness_exempt": list(out.fairness_exempt),
        }
        self.out.send(FrameType.RESULT, payload)
        if sched_exit:
            return ExitCode.TEST_FAILED
        return ExitCode.SHUTDOWN if out.stopped else ExitCode.OK

    def _session(self, session: Session) -> ExitCode:
        """A shell or exec session in place of the scenario (:mod:`guest.shellphase`)."""
        from guest.shellphase import ShellError, ShellPhase, exit_words

        assert self.sched is not None
        self.out.phase(session.mode)
        phase = ShellPhase(self.env, self.out, session, self.host.stop_requested)
        try:
            phase.open()
            code, sig = phase.run()
        except ShellError as e:
            return self.out.result_fail(ExitCode.SETUP_FAILED, f"{session.mode}: {e}")
        finally:
            phase.close()
        self.sched.finish()  # before RESULT: the host may stop the VM once it has it
        words = f"{session.mode}: the command {exit_words(code, sig)}"
        sched_exit = self.sched.exit_reason()
        self.out.send(FrameType.RESULT, {
            "passed": not sched_exit, "reason": f"{sched_exit}; {words}" if sched_exit else words,
            "scenario": session.mode,
        })  # fmt: skip
        return ExitCode.TEST_FAILED if sched_exit else ExitCode.OK

    # -- the end -------------------------------------------------------------------------

    def _close(self, crashed: bool) -> None:
        """Stop the control thread and the worker parent (also after a crash; never raises)."""
        try:
            self.host.stop_control()
            if self.pool is not None:
                self.workers_closed = self.pool.close()
        except BaseException as e:  # noqa: B036 - still power off
            if not crashed:
                self._crash("closing failed", e)

    def _report(self, code: ExitCode | None) -> bool:
        """The kernel log, the shutdown PHASE, EXIT; False if that crashed (reported)."""
        try:
            self.out.send_kmsg()
            self.out.send(FrameType.PHASE, self._shutdown_stats())
            self.host.stop_stdio()
            if code is not None:
                self.out.send(FrameType.EXIT, {"code": int(code)})
        except BaseException as e:  # noqa: B036 - still power off
            self._crash("report failed", e)
            return False
        return True

    def _shutdown_stats(self) -> dict[str, Any]:
        """The shutdown PHASE, with counters that show misbehaviour (e.g. a spinning hvc0)."""
        return {
            "name": "shutdown",
            "t_ns": self.env.system.boot_ns(),
            "control": self.host.stats(),
            "workers": self.workers_closed or None,
            "bulk_dropped": self.out.dropped,
        }

    def _crash_on_purpose(self, kind: str) -> None:
        """The ``hooks.crash`` test hook: a kernel panic, a Python exception, a native
        fault, or a cgroup tree the kernel refuses (``cgroup`` returns: the setup fails)."""
        self.out.log("warning", f"hooks.crash={kind}: crashing on purpose")
        if kind == "cgroup":
            from guest.cgroups import BASE_NAME  # cgroup.max.descendants=0: mkdir gets EAGAIN

            base = self.env.path(os.path.join("sys/fs/cgroup", BASE_NAME))
            os.makedirs(base, exist_ok=True)
            with open(os.path.join(base, "cgroup.max.descendants"), "w") as f:
                f.write("0")
            return
        if kind == "kernel":
            for path, data in (("proc/sys/kernel/sysrq", b"1"), ("proc/sysrq-trigger", b"c")):
                with open(self.env.path(path), "wb", buffering=0) as f:
                    f.write(data)
        if kind == "native":
            import ctypes

            ctypes.string_at(0)  # a real SIGSEGV: reading address 0
        raise RuntimeError(f"hooks.crash={kind}: deliberate crash")

    def _crash(self, what: str, e: BaseException) -> None:
        import traceback  # only on the crash path

        panic(self.env.root, f"{what}: " + "".join(traceback.format_exception(e)))
