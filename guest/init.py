"""The guest's PID 1: boot, run the scenario, report on the bulk port, power off.

``/init`` runs ``from guest.init import main; main()``. Lifecycle: mount, check the image
sentinel, load modules, open the bulk port, send SYS_RDY, read the run spec, run the
scenario, send RESULT and EXIT, then sync and reboot(2) (QEMU runs with ``-no-reboot``, so
a restart is a clean exit).

Failure paths: a bad image or spec is reported on the bulk port (LOG, RESULT, EXIT with
its :class:`~guest.wire.ExitCode`). An unexpected exception is a crash: its traceback goes
to COM2 as ``PANIC:`` lines and nothing more is written to the bulk port (a virtio-console
write can block on the host and would hang the power-off). No EXIT frame then tells the
host the guest was lost rather than the test failed.
"""

from __future__ import annotations

import os
import threading

from guest import boot
from guest.cgroups import CgroupError, CgroupTree
from guest.channels import BulkChannel, Com2, StdioCapture
from guest.control import ControlReader
from guest.dump import gather_dump
from guest.spec import RunSpec, SpecError, parse_cmdline
from guest.syscalls import LinuxSystem
from guest.wire import ExitCode, FrameType
from guest.workload import run_cgroup_spinners

TYPE_CHECKING = False  # typing and pathlib cost seconds of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from guest.syscalls import System

    StrPath = str | os.PathLike[str]

__all__ = ("Init", "main")


class Init:
    """One guest run. :meth:`run` is the whole life of PID 1.

    :param system: kernel calls (a fake in tests).
    :param root: filesystem root.
    :param pid1: really PID 1: capture stdio, enable faulthandler on COM2, reap orphans.
        Tests pass False.
    :param bulk_timeout_s: how long to wait for the bulk port to appear.
    :param cgroup_rmdir: directory removal for the cgroup tree (tests remove plain files).
    """

    def __init__(
        self,
        system: System,
        root: StrPath = "/",
        pid1: bool = True,
        bulk_timeout_s: float = 5.0,
        cgroup_rmdir: Callable[[str], None] = os.rmdir,
    ) -> None:
        self.sys = system
        self.root = os.fspath(root)
        self.pid1 = pid1
        self._bulk_timeout_s = bulk_timeout_s
        self._rmdir = cgroup_rmdir
        self.com2: Com2 | None = None
        self.bulk: BulkChannel | None = None
        self._kmsg: Any = None  # guest.kmsg.KmsgReader once SYS_RDY is sent
        self._stdio: StdioCapture | None = None
        self._control: ControlReader | None = None
        self.stop_requested = threading.Event()
        self._notes: list[tuple[str, str]] = []  # LOG frames waiting for the bulk port
        self.children_reaped = 0
        self._main_ns = system.boot_ns()  # after imports: SYS_RDY reports the startup cost

    def run(self) -> None:
        """Run to the end and reboot. Returns only if reboot(2) failed (or is faked)."""
        code: ExitCode | None = None
        crashed = False
        try:
            code = self._lifecycle()
        except BaseException as e:  # noqa: B036 - PID 1 must reach the power-off below
            crashed = True
            self._crash("init crashed", e)
        finally:
            self._power_off(code, crashed)

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    # -- lifecycle -----------------------------------------------------------------------

    def _lifecycle(self) -> ExitCode:
        mount_errors = boot.mount_all(self.sys, self.root)
        if self.pid1:
            _ensure_std_fds()
        self.com2 = Com2(self._path("dev/ttyS1"))
        if self.pid1 and self.com2.fd >= 0:
            import faulthandler  # a fatal signal in the interpreter still leaves a trace

            faulthandler.enable(self.com2.fd, all_threads=True)
        for err in mount_errors:
            self._note("error" if err.startswith("required") else "warning", err)
        image_err = boot.check_image(self.root)
        if image_err:
            self._note("error", f"BAD_IMAGE: {image_err}")
            self._open_bulk()
            return self._result_fail(ExitCode.BAD_IMAGE, f"bad image: {image_err}")
        modules = boot.load_modules(self.sys, self.root, self.sys.kernel_release())
        for m in modules:
            if m.status == "failed":
                self._note("error", f"module {m.name}: {m.error}")
        if not self._open_bulk():
            return ExitCode.SETUP_FAILED
        self._send_sys_rdy(modules)
        self._send_kmsg()
        if any(e.startswith("required") for e in mount_errors):
            return self._result_fail(ExitCode.SETUP_FAILED, "; ".join(mount_errors))
        self._start_io()
        self._phase("setup")
        return self._run_scenario()

    def _run_scenario(self) -> ExitCode:
        try:
            with open(self._path("proc/cmdline")) as f:
                spec = parse_cmdline(f.read())
        except SpecError as e:
            self._log("error", f"bad run spec: {e}")
            return self._result_fail(ExitCode.BAD_SPEC, f"bad run spec: {e}")
        if self.stop_requested.is_set():
            return self._result_fail(ExitCode.SHUTDOWN, "host requested shutdown before start")
        if spec.wire_noise and self.bulk is not None:
            from guest.noise import noise_round

            for i in range(spec.wire_noise):
                self.bulk.write_raw(noise_round(i))
            self._log("info", f"wrote {spec.wire_noise} rounds of wire noise")
        self._phase("workload")
        if spec.crash:
            self._crash_on_purpose(spec.crash)
        tree = CgroupTree(self._path("sys/fs/cgroup"), rmdir=self._rmdir)
        try:
            out = run_cgroup_spinners(
                spec, tree, stop=self.stop_requested, on_tick=self._reap_orphans
            )
        except CgroupError as e:
            return self._result_fail(ExitCode.SETUP_FAILED, f"cgroup setup failed: {e}", spec)
        self._phase("verdict")
        for err in out.cleanup_errors:
            self._log("warning", f"cgroup cleanup: {err}")
        payload = out.verdict.as_payload()
        if out.stopped:
            payload["passed"] = False
            payload["reason"] = f"stopped by host shutdown request; {payload['reason']}"
        payload.update(
            scenario=spec.scenario,
            spec=spec.as_dict(),
            stopped=out.stopped,
            workers=[r.as_map() for r in out.reports],
        )
        self._send(FrameType.RESULT, payload)
        if out.stopped:
            return ExitCode.SHUTDOWN
        return ExitCode.OK if out.verdict.passed else ExitCode.TEST_FAILED

    # -- channels ------------------------------------------------------------------------

    def _open_bulk(self) -> bool:
        assert self.com2 is not None
        dev = boot.find_bulk_port(self.root, self._bulk_timeout_s)
        if dev is None:
            self.com2.line(f"bulk port {boot.BULK_PORT_NAME} not found; cannot report")
            return False
        try:
            fd = os.open(dev, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            self.com2.line(f"open {dev}: {e.strerror}; cannot report")
            return False
        self.bulk = BulkChannel(fd, self.com2)
        for level, msg in self._notes:
            self.bulk.log(level, msg)
        self._notes.clear()
        return True

    def _send_sys_rdy(self, modules: list[boot.ModuleLoad]) -> None:
        self._send(
            FrameType.SYS_RDY,
            {
                "kernel": self.sys.kernel_release(),
                "cpus": self.sys.cpus(),
                "boot_ns": self.sys.boot_ns(),
                "main_ns": self._main_ns,
                "modules": [m.as_map() for m in modules],
            },
        )

    def _start_io(self) -> None:
        assert self.bulk is not None
        if self.pid1:
            self._stdio = StdioCapture(self.bulk)
            self._stdio.start()
        self._control = ControlReader(self._path("dev/hvc0"), self.stop_requested.set, self._dump)
        if not self._control.start():
            self._log("warning", f"no host control channel: {self._control.error}")

    def _send_kmsg(self) -> None:
        """Ship the kernel log records not sent yet (boot log first, test-time ones later)."""
        from guest.kmsg import SOURCE, KmsgReader

        if self._kmsg is None:
            self._kmsg = KmsgReader(self._path("dev/kmsg"))
        data = self._kmsg.drain()
        if data:
            self._send(FrameType.DUMP, {"source": SOURCE, "data": data})

    def _dump(self) -> None:
        """Answer a host dump request (runs in the control thread)."""
        try:
            for source, data in gather_dump(self.root):
                self._send(FrameType.DUMP, {"source": source, "data": data})
        except Exception as e:  # a failed dump must not end the control thread
            self._log("warning", f"dump failed: {type(e).__name__}: {e}")

    def _send(self, ftype: FrameType, payload: dict[str, Any]) -> None:
        if self.bulk is not None:
            self.bulk.send(ftype, payload)

    def _log(self, level: str, msg: str) -> None:
        self._send(FrameType.LOG, {"level": level, "msg": msg})

    def _note(self, level: str, msg: str) -> None:
        """Diagnostic before the bulk port exists: COM2 now, a LOG frame once it opens."""
        if self.com2 is not None:
            self.com2.line(f"{level}: {msg}")
        if self.bulk is not None:
            self.bulk.log(level, msg)
        else:
            self._notes.append((level, msg))

    def _phase(self, name: str) -> None:
        self._send(FrameType.PHASE, {"name": name, "t_ns": self.sys.boot_ns()})

    def _result_fail(self, code: ExitCode, reason: str, spec: RunSpec | None = None) -> ExitCode:
        payload: dict[str, Any] = {"passed": False, "reason": reason}
        if spec is not None:
            payload.update(scenario=spec.scenario, spec=spec.as_dict())
        self._send(FrameType.RESULT, payload)
        return code

    # -- the end -------------------------------------------------------------------------

    def _reap_orphans(self) -> None:
        """Reap any exited child: orphans of the whole VM reparent to PID 1.

        SIGCHLD keeps its default disposition: SIG_IGN would auto-reap and make every
        waitpid() fail with ECHILD, so the workload could not wait for its workers.
        """
        if not self.pid1:
            return
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children_reaped += 1

    def _shutdown_stats(self) -> dict[str, Any]:
        """The shutdown PHASE, with counters that show misbehaviour (e.g. a spinning hvc0)."""
        c = self._control
        control = None
        if c is not None:
            control = {
                "polls": c.polls,
                "hangups": c.hangups,
                "unknown": c.unknown,
                "error": c.error,
            }
        return {
            "name": "shutdown",
            "t_ns": self.sys.boot_ns(),
            "control": control,
            "children_reaped": self.children_reaped,
            "bulk_dropped": self.bulk.dropped if self.bulk is not None else 0,
        }

    def _crash_on_purpose(self, kind: str) -> None:
        """The ``schedlab.crash`` test hook: a real kernel panic, or a PID-1 exception."""
        self._log("warning", f"schedlab.crash={kind}: crashing on purpose")
        if kind == "kernel":
            for path, data in (("proc/sys/kernel/sysrq", b"1"), ("proc/sysrq-trigger", b"c")):
                with open(self._path(path), "wb", buffering=0) as f:
                    f.write(data)
        raise RuntimeError(f"schedlab.crash={kind}: deliberate crash")

    def _crash(self, what: str, e: BaseException) -> None:
        import traceback  # only on the crash path

        com2 = self.com2 or Com2(self._path("dev/ttyS1"))
        com2.panic(f"{what}: " + "".join(traceback.format_exception(e)))

    def _power_off(self, code: ExitCode | None, crashed: bool) -> None:
        try:
            if self._control is not None:
                self._control.stop()
            self._reap_orphans()
            if not crashed and self.bulk is not None:
                if self._kmsg is not None:
                    self._send_kmsg()
                self._send(FrameType.PHASE, self._shutdown_stats())
                if self._stdio is not None:
                    self._stdio.stop()
                if code is not None:
                    self._send(FrameType.EXIT, {"code": int(code)})
        except BaseException as e:  # noqa: B036 - still power off
            self._crash("power-off failed", e)
        finally:
            try:
                self.sys.sync()
                self.sys.reboot()
            except OSError as e:
                self._crash("reboot failed", e)


def _ensure_std_fds() -> None:
    """Give fds 0-2 a target (/dev/null) if the kernel found no /dev/console for init."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def main() -> None:
    """Entry point of ``/init``: run, then reboot (never returns in a real guest)."""
    Init(LinuxSystem()).run()
