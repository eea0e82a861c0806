"""``schedlab run`` end to end: inputs, progress on the terminal, summary, result file."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from schedlab_shared import run_layout
from schedlab_shared.exitcodes import RunExit
from schedlab_shared.topology import Topology

from .engine_choice import EngineChoice
from .inputs import HostFile, InputsError, check_host_file
from .progress import make_reporter
from .request import Hooks, MonitorChecks, RunRequest, Scenario, VerdictLimits, VmShape
from .sched_outcome import SchedAsked
from .session import RunSession
from .store_forward import forward_rest
from .summary import render_summary

__all__ = ("SchedChoice", "execute", "prepare_inputs", "resolve_launch")

console = Console(stderr=True, soft_wrap=True)  # a log line is one line, whatever the width


def _fail(message: str) -> int:
    console.print(f"[bold red]schedlab:[/] {message}", highlight=False)
    return RunExit.ERROR


@dataclass(frozen=True)
class SchedChoice:
    """``--scheduler``, ``--sched-args`` (one shell-quoted string), ``--sched-flag``s."""

    spec: str = "eevdf"
    args: str = ""
    flags: tuple[str, ...] = ()


def resolve_launch(
    choice: SchedChoice,
    kernel: Any,
    topology: Topology,
    progress,  # noqa: ANN001
    resolve: Any = None,
) -> Any:
    """The scheduler's launch for this kernel and topology (``SchedulerLaunch``).

    A kernel whose config says it has no sched_ext is refused here, before anything is built
    or booted (a kernel with no known config is found out by the guest).

    :param resolve: ``orchestrator.scheduler.resolve.resolve_scheduler`` (tests pass a fake).
    :raises SchedulerError: one line: no sched_ext, a bad name, flag or path, a topology
        it cannot run on, a failed build.
    """
    from .scheduler.definition import EEVDF
    from .scheduler.errors import ResolveError
    from .scheduler.resolve import resolve_scheduler, split_sched_args

    args = split_sched_args(choice.args)
    if choice.spec.lower() != EEVDF.name and kernel.config_known and not kernel.has_sched_ext:
        raise ResolveError(
            f"--scheduler {choice.spec}: this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT "
            f"is not set in {kernel.version}); pick a kernel with it, or --scheduler eevdf"
        )
    launch = (resolve or resolve_scheduler)(
        choice.spec,
        kernel,
        flags=choice.flags,
        sched_args=args,
        progress=lambda m: progress("scheduler", m),
    )
    why = launch.definition.fits(topology)
    if why:
        raise ResolveError(f"--scheduler {choice.spec}: {why}")
    return launch


def asked_of(launch: Any) -> SchedAsked:
    """How the result names a launch."""
    d = launch.definition
    return SchedAsked(d.name, launch.origin, tuple(launch.argv[1:]), d.ops)


def sched_parts(launch: Any) -> dict[str, Any]:
    """The :class:`RunRequest` fields a launch fills (its report name; files and argv)."""
    return {
        "sched": asked_of(launch),
        "files": tuple(launch.files),
        "scheduler": launch.rundoc_scheduler(),
    }


def prepare_inputs(
    choice: EngineChoice,
    kernel_spec: str | None,
    progress,  # noqa: ANN001
    extra_files: dict[str, Any] | None = None,
) -> tuple[Any, Path]:
    """Resolve the kernel (fetching the default if needed) and build the initramfs
    (with ``extra_files``: guest path -> bytes or host file, e.g. the shell's busybox)."""
    from .initramfs.builder import build_initramfs
    from .kernel.resolve import resolve_kernel

    progress("kernel", f"resolving {kernel_spec or 'the default kernel'}")
    kernel = resolve_kernel(kernel_spec, progress=progress)
    modules = []
    if choice.engine == "kvm" and kernel.opt("CONFIG_VIRTIO_MMIO") == "m":
        modules.append("virtio_mmio")
    progress("initramfs", "building the guest image")
    return kernel, build_initramfs(kernel, modules=modules, extra_files=extra_files)


def execute(
    *,
    choice: EngineChoice,
    kernel_spec: str | None,
    topology: Topology,
    scenario: Scenario,
    limits: VerdictLimits,
    hooks: Hooks,
    mem_mib: int,
    timeout: float | None,
    run_dir: Path | None,
    monitors: int,
    json_path: Path | None,
    listen: str | None = None,
    store: str | None = None,
    progress_mode: str = "auto",
    sched: SchedChoice = SchedChoice(),
    checks: MonitorChecks | None = None,
    oops_panic: bool = False,
    files: tuple[HostFile, ...] = (),
    performance: bool = False,
    snapshots: bool = False,
) -> int:
    from .kernel.artifacts import KernelError
    from .scheduler.errors import SchedulerError

    # SIGTERM gets the same orderly teardown as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:  # before a kernel is fetched or an image built: bad input is one line
        for hf in files:
            check_host_file(hf)
    except InputsError as exc:
        return _fail(str(exc))
    console.print(f"[bold]engine[/] {choice.engine} ({choice.reason})", highlight=False)
    with make_reporter(progress_mode, console) as progress:
        try:
            kernel, initrd = prepare_inputs(choice, kernel_spec, progress)
        except KernelError as exc:
            progress.done(verdict="error", exit_code=int(RunExit.ERROR), reason=str(exc))
            return _fail(str(exc))
        except OSError as exc:
            progress.done(verdict="error", exit_code=int(RunExit.ERROR), reason=str(exc))
            return _fail(f"preparing the guest image failed: {exc}")
        try:
            launch = resolve_launch(sched, kernel, topology, progress)
        except SchedulerError as exc:
            progress.done(verdict="error", exit_code=int(RunExit.ERROR), reason=str(exc))
            return _fail(str(exc))
        vm = VmShape(
            engine=choice.engine,
            engine_reason=choice.reason,
            kernel=kernel,
            initrd=initrd,
            topology=topology,
            mem_mib=mem_mib,
            timeout_s=timeout,
            qemu_accel=choice.qemu_accel,
            oops_panic=oops_panic,
            performance=performance,
        )
        req = RunRequest(
            vm=vm,
            scenario=scenario,
            limits=limits,
            hooks=hooks,
            run_dir=run_dir,
            monitors=monitors,
            listen=listen,
            store=store,
            sched=asked_of(launch),
            checks=checks or MonitorChecks(),
            files=(*files, *launch.files),
            scheduler=launch.rundoc_scheduler(),
            snapshots=snapshots,
        )
        session = RunSession(req, progress)
        console.print(f"[bold]run dir[/] {session.run_dir}", highlight=False)
        t0 = time.monotonic()
        result, code = session.run()
    render_summary(result, console)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
    (session.run_dir / run_layout.RESULT).write_text(json.dumps(result, indent=2))
    if store is not None:  # the collector forwarded the logs live; the result comes last
        forward_rest(session.run_dir, session.run_id, store, console)
    console.print(f"done in {time.monotonic() - t0:.1f} s", highlight=False)
    progress.done(
        verdict=result["verdict"],
        exit_code=int(code),
        run_dir=str(session.run_dir),
        timings=result["timings"],
    )
    return code
