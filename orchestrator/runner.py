"""``schedlab run`` end to end: inputs, progress on the terminal, summary, result file."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from schedlab_shared import run_layout
from schedlab_shared.exitcodes import RunExit
from schedlab_shared.topology import Topology

from .engine_choice import EngineChoice
from .progress import make_reporter
from .request import Hooks, RunRequest, Scenario, VerdictLimits, VmShape
from .session import RunSession
from .summary import render_summary

__all__ = ("execute", "prepare_inputs")

console = Console(stderr=True, soft_wrap=True)  # a log line is one line, whatever the width


def _fail(message: str) -> int:
    console.print(f"[bold red]schedlab:[/] {message}", highlight=False)
    return RunExit.ERROR


def prepare_inputs(choice: EngineChoice, kernel_spec: str | None, progress) -> tuple[Any, Path]:  # noqa: ANN001
    """Resolve the kernel (fetching the default if needed) and build the initramfs."""
    from .initramfs.builder import build_initramfs
    from .kernel.resolve import resolve_kernel

    progress("kernel", f"resolving {kernel_spec or 'the default kernel'}")
    kernel = resolve_kernel(kernel_spec, progress=progress)
    modules = []
    if choice.engine == "kvm" and kernel.opt("CONFIG_VIRTIO_MMIO") == "m":
        modules.append("virtio_mmio")
    progress("initramfs", "building the guest image")
    return kernel, build_initramfs(kernel, modules=modules)


def execute(*, choice: EngineChoice, kernel_spec: str | None, topology: Topology, scenario: Scenario,
            limits: VerdictLimits, hooks: Hooks, mem_mib: int, timeout: float | None,
            run_dir: Path | None, monitors: int, json_path: Path | None, listen: str | None = None,
            progress_mode: str = "auto") -> int:
    from .kernel.artifacts import KernelError

    # SIGTERM gets the same orderly teardown as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
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
        vm = VmShape(
            engine=choice.engine, engine_reason=choice.reason, kernel=kernel, initrd=initrd,
            topology=topology, mem_mib=mem_mib, timeout_s=timeout, qemu_accel=choice.qemu_accel,
        )
        req = RunRequest(vm=vm, scenario=scenario, limits=limits, hooks=hooks, run_dir=run_dir,
                         monitors=monitors, listen=listen)
        session = RunSession(req, progress)
        console.print(f"[bold]run dir[/] {session.run_dir}", highlight=False)
        t0 = time.monotonic()
        result, code = session.run()
    render_summary(result, console)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
    (session.run_dir / run_layout.RESULT).write_text(json.dumps(result, indent=2))
    console.print(f"done in {time.monotonic() - t0:.1f} s", highlight=False)
    progress.done(verdict=result["verdict"], exit_code=int(code), run_dir=str(session.run_dir),
                  timings=result["timings"])
    return code
