"""``schedlab attach RUN_DIR ...``: act on a live run from another terminal (or host).

The run's ``endpoints.json`` says where its processes listen; it exists while the run is
live. Extra monitors and collectors attached this way are the same ``monitor_proc`` and
``collector_proc`` processes the run supervises, started as children of this command: they
follow the VM, stop when it exits, and stop with this command (Ctrl-C is forwarded).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import click
import zmq

from guest import control as guest_control
from schedlab_shared import run_layout
from schedlab_shared.bus import collector as collector_proto
from schedlab_shared.bus import monitor as monitor_proto
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError, to_body
from schedlab_shared.bus.vmm import STREAMS, Stream, VmState
from schedlab_shared.exitcodes import RunExit

from .endpoints import AttachError, Endpoints, load_endpoints
from .foreground import python_module, run_foreground

__all__ = ("attach_group",)


def _fail(message: str) -> NoReturn:
    click.echo(f"schedlab: {message}", err=True)
    sys.exit(RunExit.ERROR)


def _endpoints(run_dir: str) -> Endpoints:
    try:
        return load_endpoints(Path(run_dir))
    except AttachError as exc:
        _fail(f"{exc} (a finished run keeps its logs but cannot be attached to)")
        raise AssertionError("unreachable") from None


class _LiveRun:
    """The run's endpoints, loaded on first use: a subcommand's --help needs no live run."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self._ep: Endpoints | None = None

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - an Endpoints field
        if self._ep is None:
            self._ep = _endpoints(self.run_dir)
        return getattr(self._ep, name)


@click.group("attach")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.pass_context
def attach_group(ctx: click.Context, run_dir: str) -> None:
    """Act on the live run in RUN_DIR (status, dump, console, ...)."""
    ctx.obj = _LiveRun(run_dir)


def _request(endpoint: str, msg):  # noqa: ANN001, ANN202
    zctx = zmq.Context()
    client = BusClient(zctx, endpoint, timeout_s=3.0)
    try:
        return client.request(msg)
    except BusError as exc:
        _fail(f"{endpoint}: {exc}")
    finally:
        client.close()
        zctx.term()


@attach_group.command("status")
@click.pass_obj
def status_cmd(ep: Endpoints) -> None:
    """Print the VMM's, the collector's and each monitor's status as JSON."""
    out = {
        "vmm": to_body(_request(ep.vmm_ctl, vmm_proto.Status_())),
        "collector": to_body(_request(ep.collector_ctl, collector_proto.CollectorStatus())),
        "monitors": [
            to_body(_request(ctl, monitor_proto.MonitorStatus())) for ctl, _ in ep.monitors
        ],
    }
    click.echo(json.dumps(out, indent=2, default=str))


@attach_group.command("dump")
@click.pass_obj
def dump_cmd(ep: Endpoints) -> None:
    """SysRq-D in the guest: the kernel's sched_ext state dump, into sched_ext_dump.log."""
    _request(ep.vmm_ctl, vmm_proto.ConsoleWrite(guest_control.DUMP_REQUEST))
    click.echo(f"SysRq-D requested; the dump lands in {run_layout.SCHED_EXT_DUMP}")


@attach_group.command("procdump")
@click.pass_obj
def procdump_cmd(ep: Endpoints) -> None:
    """A snapshot of the guest's /proc scheduler statistics and cgroup cpu.stat, into dumps.log."""
    _request(ep.vmm_ctl, vmm_proto.ConsoleWrite(guest_control.PROCDUMP_REQUEST))
    click.echo(f"/proc snapshot requested; it lands in {run_layout.DUMPS}")


@attach_group.command("shutdown")
@click.pass_obj
def shutdown_cmd(ep: Endpoints) -> None:
    """Ask the guest to stop its test, report and power off (a control byte on its console)."""
    _request(ep.vmm_ctl, vmm_proto.ConsoleWrite(guest_control.SHUTDOWN_REQUEST))
    click.echo("shutdown requested")


def _run_attached(what: str, module: str, *args: str) -> None:
    """Run one more ``module`` process in the foreground with private control endpoints."""
    with tempfile.TemporaryDirectory(prefix="schedlab-attach-") as tmp:
        code = run_foreground(
            python_module(module, *args, "--ctl", f"ipc://{tmp}/ctl", "--pub", f"ipc://{tmp}/pub")
        )
    if code == RunExit.INTERRUPTED:
        click.echo(f"schedlab: {what} interrupted and stopped", err=True)
    elif code != 0:
        click.echo(f"schedlab: {what} ended with {module} exit status {code} (see above)", err=True)
        code = RunExit.ERROR
    sys.exit(code)


def _top(ep: Endpoints, seconds: float) -> None:
    from .live_table import follow

    try:
        follow(ep.run_id, ep.vmm_ctl, ep.monitors[0][1], max_s=seconds)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


@attach_group.command("top")
@click.option("--seconds", default=0.0, type=float, help="stop after this long (0: VM exit)")
@click.pass_obj
def top_cmd(ep: Endpoints, seconds: float) -> None:
    """A live per-CPU table from the run's monitor: nr_running, scx nr, DSQ depth, events/s."""
    _top(ep, seconds)


@attach_group.command("monitor")
@click.option("--name", default=None, help="instance name: samples go to monitor-NAME.jsonl")
@click.option("--interval", default=0.1, show_default=True, type=float)
@click.option("--samples", default=0, type=int, help="stop after this many samples (0: VM exit)")
@click.option("--live", is_flag=True, help="show the run's monitor as a live table (as `top`)")
@click.pass_obj
def monitor_cmd(ep: Endpoints, name: str | None, interval: float, samples: int, live: bool) -> None:
    """Attach one more monitor to the live VM, in the foreground (or, with --live, watch the
    run's monitor as a live table)."""
    if live:
        _top(ep, 0.0)
    if name is None:
        _fail("--name is required (or --live to watch the run's monitor)")
    try:
        run_layout.monitor_file(name)
    except ValueError as exc:
        _fail(f"--name: {exc}")
    args = [
        "--vm-id",
        ep.run_id,
        "--vm-ctl",
        ep.vmm_ctl,
        "--collector-ctl",
        ep.collector_ctl,
        "--vmlinux",
        ep.vmlinux,
        "--run-dir",
        ep.run_dir,  # type: ignore[attr-defined]
        "--name",
        name,
        "--interval",
        str(interval),
        "--max-samples",
        str(samples),
    ]
    if ep.system_map:
        args += ["--system-map", ep.system_map]
    _run_attached(f"monitor {name}", "monitor_proc", *args)


@attach_group.command("collect")
@click.option(
    "--run-dir",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="a separate directory for this collector's files",
)
@click.pass_obj
def collect_cmd(ep: Endpoints, out_dir: str) -> None:
    """Run one more collector (e.g. on another host) into OUT_DIR until the VM is drained."""
    _run_attached(
        "collector",
        "collector_proc",
        "--vm-id",
        ep.run_id,
        "--vm-ctl",
        ep.vmm_ctl,
        "--vm-pub",
        ep.vmm_pub,
        "--run-dir",
        out_dir,
        "--stop-when-complete",
    )


@attach_group.command("console")
@click.option(
    "--stream",
    default=Stream.CONSOLE.value,
    show_default=True,
    type=click.Choice([s.value for s in STREAMS]),
)
@click.pass_obj
def console_cmd(ep: Endpoints, stream: str) -> None:
    """Print a guest stream from its start, following it until the VM exits."""
    zctx = zmq.Context()
    client = BusClient(zctx, ep.vmm_ctl, timeout_s=3.0)
    seq = 0
    try:
        while True:
            reply = client.request(vmm_proto.Replay(stream, seq))
            for s, data in reply.chunks:
                sys.stdout.buffer.write(data)
                seq = s + 1
            sys.stdout.flush()
            if not reply.chunks:
                if (
                    client.request(vmm_proto.Status_()).state == VmState.EXITED
                    and seq >= reply.next_seq
                ):
                    return
                time.sleep(0.2)
    except BusError as exc:
        _fail(f"{ep.vmm_ctl}: {exc}")
    finally:
        client.close()
        zctx.term()


def _register_bpf() -> None:
    from .attach_bpf import bpf_group

    attach_group.add_command(bpf_group)


_register_bpf()
