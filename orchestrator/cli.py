"""The ``schedlab`` command line.

Conventions: every ``--help`` works with no run present, enumerated options are choices
(shown in help and completed by the shell), usage errors are one ``schedlab:`` line with
exit 2, and ``--version`` comes from the installed package's metadata.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from guest.spec import CRASHES
from schedlab_shared.exitcodes import RunExit
from schedlab_shared.host_llc import performance_refusal
from schedlab_shared.topology import TopologyError
from schedlab_shared.topology_presets import engine_refusal, parse_shape

from .cli_options import complete_kernel, fail, progress_option, version_option
from .engine_choice import ENGINES, EngineChoiceError, choose_engine
from .faults import FaultError, parse_fault
from .lazy_group import LazyGroup

__all__ = ("main", "cli")


_SUBCOMMANDS = {
    "attach": "orchestrator.attach:attach_group",
    "bench": "orchestrator.bench:bench_group",
    "collect": "orchestrator.collect_cli:collect_cmd",
    "compare": "orchestrator.compare_cli:compare_cmd",
    "completions": "orchestrator.completions:completions_cmd",
    "kernel": "orchestrator.kernel.cli:kernel_group",
    "list": "orchestrator.scenarios:list_cmd",
    "report": "orchestrator.report_cli:report_cmd",
    "scheduler": "orchestrator.scheduler.cli:scheduler_group",
    "shell": "orchestrator.shell_cli:shell_cmd",
    "test": "orchestrator.suite:suite_cmd",
    "testbed": "orchestrator.testbed.cli:testbed",
    "topo": "orchestrator.topo_cli:topo_group",
}


@click.group(
    cls=LazyGroup, lazy=_SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@version_option
def cli() -> None:
    """schedlab: test Linux schedulers in VMs whose topology is code.

    \b
    schedlab run                 boot a VM, run the test, print a verdict
    schedlab test [--quick]      run schedlab's own test suite
    schedlab completions bash    shell completion (also zsh, fish)
    """


@cli.command("run", short_help="Boot a VM, run the test, print a verdict.")
@click.option(
    "--engine",
    default="auto",
    show_default=True,
    type=click.Choice(ENGINES),
    help="auto: the KVM engine where /dev/kvm is hardware-backed, else QEMU",
)
@click.option(
    "--kernel",
    "kernel_spec",
    default=None,
    shell_complete=complete_kernel,
    help="vmlinuz/bzImage path or cached version",
)
@click.option(
    "--topology",
    default="1,1,2,1",
    show_default=True,
    help="N,L,C,T (nodes,LLCs/node,cores/LLC,threads/core), a preset name "
    "('schedlab topo list') or ktstr's 1n2l4c1t (l: all LLCs)",
)
@click.option("--duration", default=5.0, show_default=True, type=float, help="test seconds")
@click.option(
    "--scenario",
    "scenario_name",
    default=None,
    help="a catalog scenario ('schedlab list'); default: steady, --cgroups cgroups",
)
@click.option(
    "--plan",
    "plan_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    hidden=True,
    help="test hook: a scenario document as JSON (schedlab_scenario.Scenario.to_document)",
)
@click.option("--cgroups", default=2, show_default=True, type=int)
@click.option(
    "--workers", default=2, show_default=True, type=int, help="spinning workers per cgroup"
)
@click.option(
    "--fairness",
    default=None,
    type=click.FloatRange(0, 1),
    help="largest allowed spread of the workers' off-CPU shares within a cgroup "
    "(default 0.15: 15 points)",
)
@click.option(
    "--max-gap-ms",
    default=None,
    type=click.FloatRange(0),
    help="longest allowed gap between a worker's checkpoints (default 2000; 0: no check)",
)
@click.option("--mem", "mem_mib", default=512, show_default=True, type=int, help="guest MiB")
@click.option(
    "--timeout",
    default=None,
    type=click.FloatRange(0, min_open=True),
    help="seconds until the guest is asked to stop and report what it has; the VM is "
    "killed a grace period later (default: derived from --duration)",
)
@click.option(
    "--snapshot",
    "snapshots",
    is_flag=True,
    help="KVM engine: start from the cached snapshot of this VM taken at SYS_RDY (or take "
    "one for the next run); a snapshot that fails to restore means a cold boot",
)
@click.option(
    "--performance",
    is_flag=True,
    help="KVM engine: pin vCPUs by host LLC, huge pages, SCHED_FIFO, no HLT/PAUSE exits "
    "(each measure the host refuses is reported by name)",
)
@click.option(
    "--oops-panic",
    is_flag=True,
    help="add oops=panic to the kernel command line (off: sched_ext's error exit can run)",
)
@click.option(
    "--json",
    "json_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="write the result here",
)
@click.option("--run-dir", default=None, type=click.Path(file_okay=False), help="where logs go")
@click.option(
    "--monitors", default=1, show_default=True, type=int, help="monitor processes to attach"
)
@click.option(
    "--inject",
    multiple=True,
    help="fault injection, e.g. kill:collector@1.5 or pause:vm@1+1.2 (s after SYS_RDY)",
)
@click.option(
    "--listen", default=None, help="serve the VMM's bus on TCP at this host (remote collectors)"
)
@click.option(
    "--store",
    default=None,
    metavar="ADDR",
    help="forward the run directory to a 'schedlab collect' store, e.g. tcp://HOST:5601",
)
@click.option(
    "--scheduler",
    "scheduler",
    default="eevdf",
    show_default=True,
    metavar="NAME|PATH",
    help="the sched_ext scheduler under test: an example (`schedlab scheduler list`), "
    "an executable's path, or eevdf (none)",
)
@click.option(
    "--sched-args", default="", metavar="ARGS", help="its arguments, quoted as one shell word"
)
@click.option(
    "--sched-flag",
    "sched_flags",
    multiple=True,
    metavar="FLAG",
    help="a named flag of an example scheduler (repeatable), e.g. stall-user",
)
@click.option(
    "--watchdog-timeout",
    "watchdog_timeout",
    default=None,
    type=click.FloatRange(0.01, 30),
    help="seconds: shorten the sched_ext scheduler's watchdog once it attached",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help="monitor threshold override, e.g. max_imbalance_ratio=8 (repeatable)",
)
@click.option(
    "-i",
    "--include",
    "includes",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a file the guest gets at /run/schedlab/inputs/include/NAME (repeatable)",
)
@click.option(
    "--wire-noise",
    default=0,
    type=click.IntRange(0, 100),
    hidden=True,
    help="test hook: rounds of broken frames the guest sends before the workload",
)
@click.option(
    "--crash-guest",
    default="",
    type=click.Choice(CRASHES),
    hidden=True,
    help="test hook: crash the guest kernel or its init (a Python exception or a native "
    "fault), or fail its cgroup setup, on purpose",
)
@click.option(
    "--corrupt-spec",
    is_flag=True,
    hidden=True,
    help="test hook: hand the guest a run spec it must reject",
)
@click.option(
    "--truncate-image",
    default=0,
    type=click.IntRange(0),
    hidden=True,
    help="test hook: cut this many bytes off the end of the guest image",
)
@click.option(
    "--hide-bulk-port",
    is_flag=True,
    hidden=True,
    help="test hook: the VMM names the bulk port otherwise (QEMU engine)",
)
@progress_option
def run_cmd(
    engine: str,
    kernel_spec: str | None,
    topology: str,
    duration: float,
    scenario_name: str | None,
    plan_file: Path | None,
    cgroups: int,
    workers: int,
    fairness: float | None,
    max_gap_ms: float | None,
    mem_mib: int,
    timeout: float | None,
    json_path: str | None,
    run_dir: str | None,
    monitors: int,
    inject: tuple[str, ...],
    listen: str | None,
    store: str | None,
    scheduler: str,
    sched_args: str,
    sched_flags: tuple[str, ...],
    watchdog_timeout: float | None,
    thresholds: tuple[str, ...],
    includes: tuple[Path, ...],
    wire_noise: int,
    crash_guest: str,
    progress: str,
    oops_panic: bool = False,
    performance: bool = False,
    snapshots: bool = False,
    corrupt_spec: bool = False,
    truncate_image: int = 0,
    hide_bulk_port: bool = False,
) -> None:
    """Boot a VM and run a scenario (default: steady cgroup spinners) under a scheduler (EEVDF by default); print a verdict."""
    from schedlab_scenario import ScenarioError

    from .inputs import HostFile
    from .request import Hooks, VerdictLimits
    from .runner import SchedChoice, execute
    from .scenarios import plan_for

    checks = _monitor_checks(watchdog_timeout, thresholds)

    try:
        shape = parse_shape(topology)
        faults = tuple(parse_fault(f) for f in inject)
        choice = choose_engine(engine)
        refused = engine_refusal(shape, choice.engine)
        if refused:
            fail(f"--topology {topology}: {refused}")
        topo = shape.topology()
    except (TopologyError, FaultError, EngineChoiceError) as exc:
        fail(str(exc))
    if performance and choice.engine != "kvm":
        fail(f"--performance needs the KVM engine (this run uses {choice.engine})")
    if performance and (refused := performance_refusal(topo.nr_cpus)):
        fail(refused)
    if snapshots and choice.engine != "kvm":
        fail(f"--snapshot needs the KVM engine (this run uses {choice.engine})")
    if not 0 < duration <= 3600:
        fail(f"--duration {duration:g}: must be in (0, 3600] seconds")
    if not 1 <= monitors <= 8:
        fail(f"--monitors {monitors}: must be 1..8")
    try:
        scenario = plan_for(scenario_name, topo, duration, workers, cgroups, plan_file)
    except ScenarioError as exc:
        fail(str(exc))
    code = execute(
        choice=choice,
        kernel_spec=kernel_spec,
        topology=topo,
        scenario=scenario,
        limits=VerdictLimits(fairness=fairness, max_gap_ms=max_gap_ms),
        hooks=Hooks(
            wire_noise=wire_noise,
            crash=crash_guest,
            faults=faults,
            corrupt_spec=corrupt_spec,
            truncate_image=truncate_image,
            hide_bulk_port=hide_bulk_port,
        ),
        oops_panic=oops_panic,
        performance=performance,
        snapshots=snapshots,
        mem_mib=mem_mib,
        timeout=timeout,
        run_dir=Path(run_dir) if run_dir else None,
        monitors=monitors,
        json_path=Path(json_path) if json_path else None,
        listen=listen,
        store=store,
        progress_mode=progress,
        sched=SchedChoice(scheduler, sched_args, sched_flags),
        checks=checks,
        files=tuple(HostFile("include", p) for p in includes),
    )
    sys.exit(code)


def _monitor_checks(watchdog_timeout: float | None, thresholds: tuple[str, ...]):  # noqa: ANN202
    """The monitor's thresholds (defaults, then each --threshold) and watchdog override."""
    from verdicts.thresholds import ThresholdError, parse_override, resolve_thresholds

    from .request import MonitorChecks

    try:
        resolved = resolve_thresholds(test=dict(parse_override(t) for t in thresholds))
    except ThresholdError as exc:
        fail(f"--threshold: {exc}")
    return MonitorChecks(thresholds=resolved, watchdog_timeout_s=watchdog_timeout)


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's own handling, except that a usage error is one line, exit 2."""
    try:
        rv = cli.main(args=argv, prog_name="schedlab", standalone_mode=False)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(exc.format_message() + where)
    except click.ClickException as exc:
        fail(exc.format_message())
    except click.Abort:  # Ctrl-C outside a run (a run handles its own)
        sys.exit(RunExit.INTERRUPTED)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
