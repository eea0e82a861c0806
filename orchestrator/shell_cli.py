"""``schedlab shell``: the test VM by hand (busybox's sh on a pty) or by script (``--exec``).

The same pipeline as ``schedlab run`` (vmm_proc, collector_proc, monitor_proc under
supervisord, a run directory, ``schedlab attach`` on it); the guest runs the command in
place of the scenario (:mod:`guest.shellphase`) and the host relays the user's terminal
(:mod:`orchestrator.shell_relay`). Exit status: the command's (128+N when signal N killed
it); 0 after the escape (Ctrl-A X); 2 when the session could not run; 130 interrupted.
Under ``--exec`` a Ctrl-C is the command's (:mod:`orchestrator.shell_signals`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from guest.rundoc import Session
from schedlab_shared import run_layout
from schedlab_shared.exitcodes import RunExit

from .cli_options import complete_kernel, fail
from .engine_choice import ENGINES, EngineChoiceError, choose_engine

__all__ = ("exit_status", "include_files", "shell_cmd")

#: A shell session runs until the user leaves; this only bounds a forgotten one.
DEFAULT_TIMEOUT_S = 12 * 3600.0


def exit_status(code: int, sig: int) -> int:
    """The CLI's exit status for the guest command's: its code, or 128+N for signal N."""
    return 128 + sig if sig else max(0, code) if code >= 0 else RunExit.ERROR


def include_files(paths: tuple[Path, ...]) -> list[Any]:
    """``-i`` files as transfer inputs: each file (kind ``include``), and for an ELF its
    ``DT_NEEDED`` libraries (kind ``lib``, under their sonames), the loader's own excepted.

    :raises click.ClickException: an unreadable file or a library that cannot be found.
    """
    from .initramfs.elfdeps import ElfDepsError, resolve_libraries
    from .inputs import HostFile

    files: list[HostFile] = []
    libs: dict[str, Path] = {}
    for p in paths:
        files.append(HostFile("include", p))
        try:
            with p.open("rb") as f:
                is_elf = f.read(4) == b"\x7fELF"
            if is_elf:
                found, interp = resolve_libraries([p])
                skip = {interp.name} if interp is not None else set()
                libs.update((n, h) for n, h in found.items() if n not in skip)
        except (OSError, ElfDepsError) as exc:
            raise click.ClickException(f"-i {p}: {exc}") from None
    files += [HostFile("lib", h.resolve(), n, 0o644) for n, h in sorted(libs.items())]
    return files


def _busybox_files() -> dict[str, Any]:
    """busybox (static) and its applet list, added to the image for a shell session."""
    from guest.rundoc import BUSYBOX
    from guest.rundoc import BUSYBOX_APPLETS_FILE as APPLETS_FILE

    from .initramfs.busybox import BusyboxMissing, find_busybox

    try:
        bb = find_busybox()
    except BusyboxMissing as exc:
        raise click.ClickException(str(exc)) from None
    out = subprocess.run([str(bb), "--list"], capture_output=True, check=False, timeout=10)
    return {BUSYBOX: bb, APPLETS_FILE: out.stdout}


@click.command("shell", short_help="A shell (or one command) in the test VM.")
@click.option("--engine", default="auto", show_default=True, type=click.Choice(ENGINES))
@click.option(
    "--kernel", "kernel_spec", default=None, shell_complete=complete_kernel,
    help="vmlinuz/bzImage path or cached version",
)  # fmt: skip
@click.option("--topology", default="1,1,2,1", show_default=True, help="N,L,C,T or a preset")
@click.option("--memory", "--mem", "mem_mib", default=512, show_default=True, type=int,
              help="guest MiB")  # fmt: skip
@click.option("--scheduler", default="eevdf", show_default=True, metavar="NAME|PATH",
              help="started and attached before the shell; its log goes to sched.log")  # fmt: skip
@click.option("--sched-args", default="", metavar="ARGS", help="its arguments, one shell word")
@click.option("--sched-flag", "sched_flags", multiple=True, metavar="FLAG")
@click.option(
    "-i", "--include", "includes", multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a file the guest gets at /include-files/NAME (on PATH; an ELF's libraries too)",
)  # fmt: skip
@click.option("--exec", "command", default=None, metavar="CMD",
              help="run CMD (sh -c) instead of an interactive shell; exit with its status")  # fmt: skip
@click.option("--dmesg", is_flag=True, help="stream the guest kernel's console to stderr")
@click.option("--timeout", default=DEFAULT_TIMEOUT_S, type=click.FloatRange(1),
              show_default=True, help="seconds until the VM is stopped")  # fmt: skip
@click.option("--run-dir", default=None, type=click.Path(file_okay=False), help="where logs go")
def shell_cmd(
    engine: str,
    kernel_spec: str | None,
    topology: str,
    mem_mib: int,
    scheduler: str,
    sched_args: str,
    sched_flags: tuple[str, ...],
    includes: tuple[Path, ...],
    command: str | None,
    dmesg: bool,
    timeout: float,
    run_dir: str | None,
) -> None:
    """A shell in the test VM (Ctrl-A X leaves), or with --exec one command whose stdout,
    stderr and exit status are its own. Same kernel, topology and scheduler as a run.

    \b
    --exec and Ctrl-C (or SIGINT): the first one goes to CMD in the guest, and
    schedlab exits with CMD's status (130 if it died of it) after the VM shut down;
    a second one while CMD still runs stops the VM (exit 130). Ctrl-\\ is SIGQUIT,
    likewise. SIGTERM stops the VM (exit 130)."""
    from schedlab_shared.topology import TopologyError
    from schedlab_shared.topology_presets import engine_refusal, parse_shape

    try:
        shape = parse_shape(topology)
        choice = choose_engine(engine)
        refused = engine_refusal(shape, choice.engine)
        if refused:
            fail(f"--topology {topology}: {refused}")
        topo = shape.topology()
    except (TopologyError, EngineChoiceError) as exc:
        fail(str(exc))
    try:
        files = include_files(includes)
        extra = _busybox_files()
    except click.ClickException as exc:
        fail(exc.format_message())
    sys.exit(
        _session(choice, kernel_spec, topo, mem_mib, (scheduler, sched_args, sched_flags),
                 files, command, dmesg, timeout, Path(run_dir) if run_dir else None, extra)
    )  # fmt: skip


def _session(  # noqa: PLR0913 - the command's options, passed on once
    choice: Any,
    kernel_spec: str | None,
    topo: Any,
    mem_mib: int,
    sched: tuple[str, str, tuple[str, ...]],
    files: list[Any],
    command: str | None,
    dmesg: bool,
    timeout: float,
    run_dir: Path | None,
    extra: dict[str, Any],
) -> int:
    import signal

    from .inputs import InputsError, check_host_file
    from .kernel.artifacts import KernelError
    from .request import RunRequest, VmShape
    from .runner import SchedChoice, asked_of, prepare_inputs, resolve_launch
    from .scheduler.errors import SchedulerError
    from .session import RunSession
    from .shell_relay import ESCAPE_HELP, ShellRelay
    from .shell_signals import SessionSignals
    from .terminal import RawTerminal, window_size

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # the same teardown as Ctrl-C
    quiet = lambda *_a, **_k: None  # noqa: E731 - the user's terminal is the guest's now
    interactive = command is None
    try:
        for hf in files:
            check_host_file(hf)
        kernel, initrd = prepare_inputs(choice, kernel_spec, quiet, extra_files=extra)
        launch = resolve_launch(SchedChoice(*sched), kernel, topo, quiet)
    except (InputsError, KernelError, SchedulerError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"preparing the guest image failed: {exc}")
    rows, cols = window_size(0) if interactive else (24, 80)
    session = Session(
        "shell" if interactive else "exec",
        () if interactive else ("sh", "-c", command),
        interactive,
        rows,
        cols,
        os.environ.get("TERM", "xterm") if interactive else "",
    )
    req = RunRequest(
        vm=VmShape(
            engine=choice.engine, engine_reason=choice.reason, kernel=kernel, initrd=initrd,
            topology=topo, mem_mib=mem_mib, timeout_s=timeout, qemu_accel=choice.qemu_accel,
        ),
        run_dir=run_dir, sched=asked_of(launch), files=(*files, *launch.files),
        scheduler=launch.rundoc_scheduler(), session=_sanitized(session),
    )  # fmt: skip
    run = RunSession(req)
    term = RawTerminal(0)
    holder: dict[str, ShellRelay] = {}

    def ready() -> None:
        if interactive:
            term.enter()
            holder["relay"].crlf = term.raw
            holder["relay"].winch(*window_size(0))

    def make(s: RunSession) -> ShellRelay:
        relay = ShellRelay(
            s.vmm, s.ctx, s.endpoints.vmm_pub, s.run_id, interactive=interactive,
            stdin=0, dmesg=dmesg, on_ready=ready,
        )  # fmt: skip
        term.on_winch = relay.winch
        holder["relay"] = relay
        return relay

    run.make_relay = make
    how = f"; {ESCAPE_HELP}" if interactive else ""
    click.echo(f"schedlab: run dir {run.run_dir} ({choice.engine}{how})", err=True)
    sigs = SessionSignals(forward=not interactive, relay=lambda: holder.get("relay"))
    try:
        with sigs.installed():
            result, code = run.run()
    finally:
        term.restore()
    (run.run_dir / run_layout.RESULT).write_text(json.dumps(result, indent=2))
    relay = holder.get("relay")
    return _outcome(result, code, relay)


def _sanitized(session: Session) -> Session:
    """TERM as the guest accepts it ([a-z0-9-+._]); an odd one becomes xterm."""
    term = session.term.lower()
    if term and not all(c.isalnum() or c in "-+._" for c in term):
        term = "xterm"
    return session._replace(term=term[:64])


def _outcome(result: dict[str, Any], code: int, relay: Any) -> int:
    if code == RunExit.INTERRUPTED:
        click.echo("schedlab: interrupted; the VM was stopped", err=True)
        return RunExit.INTERRUPTED
    if relay is not None and relay.left:  # the guest then hangs the shell up: not its status
        click.echo("\r\nschedlab: left the shell (Ctrl-A X); the VM was stopped", err=True)
        return 0
    if relay is not None and relay.exit is not None:
        return exit_status(*relay.exit)
    why = (relay.error if relay is not None else "") or result.get("reason") or "no exit status"
    click.echo(f"schedlab: the session ended without the command's status: {why}", err=True)
    click.echo(f"schedlab: logs in {result.get('run_dir', '')}", err=True)
    return RunExit.ERROR
