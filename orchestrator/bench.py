"""``schedlab bench``: commands that measure and print figures (never pass/fail)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import click
from rich.console import Console
from rich.table import Table

from schedlab_shared.exitcodes import RunExit
from schedlab_shared.topology import Topology

from .bench_gauntlet import gauntlet_cmd
from .bench_overhead import overhead_cmd
from .bench_restore import restore_cmd
from .bench_workloads import workloads_cmd
from .engine_choice import ENGINES

__all__ = ("bench_group",)

console = Console()


@click.group("bench")
def bench_group() -> None:
    """Benchmarks that print figures."""


@bench_group.command("phases")
@click.option("--runs", default=3, show_default=True, type=int)
@click.option("--engine", default="auto", show_default=True, type=click.Choice(ENGINES))
@click.option("--kernel", "kernel_spec", default=None)
@click.option("--topology", default="1,1,2,1", show_default=True)
@click.option("--duration", default=2.0, show_default=True, type=float)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def phases_cmd(
    runs: int, engine: str, kernel_spec: str | None, topology: str, duration: float, as_json: bool
) -> None:
    """Phase timings of a run (boot to SYS_RDY, test, teardown, total): median of RUNS runs."""
    from .engine_choice import choose_engine
    from .request import RunRequest, Scenario, VmShape
    from .runner import prepare_inputs
    from .session import RunSession

    choice = choose_engine(engine)
    kernel, initrd = prepare_inputs(choice, kernel_spec, lambda p, d: None)
    rows: list[dict] = []
    for i in range(runs):
        vm = VmShape(
            engine=choice.engine,
            engine_reason=choice.reason,
            kernel=kernel,
            initrd=initrd,
            topology=Topology.parse(topology),
            qemu_accel=choice.qemu_accel,
        )
        req = RunRequest(vm=vm, scenario=Scenario(duration_s=duration))
        result, _code = RunSession(req).run()
        rows.append(result["timings"])
        console.print(
            f"run {i + 1}/{runs}: {result['verdict']} {result['timings']}", highlight=False
        )
    keys = list(rows[0])
    med = {
        k: statistics.median(r[k] for r in rows if r[k] is not None)
        for k in keys
        if any(r[k] is not None for r in rows)
    }
    if as_json:
        json.dump(
            {"engine": choice.engine, "runs": runs, "median_ms": med, "all": rows}, sys.stdout
        )
        print()
        return
    table = Table(title=f"phase timings, median of {runs} ({choice.engine})", box=None)
    table.add_column("phase")
    table.add_column("median", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    for k in med:
        vals = [r[k] for r in rows if r[k] is not None]
        table.add_row(k, f"{med[k]:.0f} ms", f"{min(vals):.0f} ms", f"{max(vals):.0f} ms")
    console.print(table)


@bench_group.command("exits")
@click.option("--exits", default=20000, show_default=True, type=int)
def exits_cmd(exits: int) -> None:
    """µs per port-I/O exit of the Python VMM against a C reference loop (ratio)."""
    # vmm_proc measures its own exits, in its own process: /dev/kvm is not ours to open.
    argv = [sys.executable, "-m", "vmm_proc.bench.exit_latency", "--json", "--exits", str(exits)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        click.echo(f"schedlab: the exit benchmark failed (exit {out.returncode}): {err}", err=True)
        sys.exit(RunExit.ERROR)
    console.print_json(out.stdout)


@bench_group.command("boot")
@click.option("--runs", default=3, show_default=True, type=int)
@click.option("--kernel", "kernel_spec", default=None)
@click.option("--topology", default="1,1,2,1", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def boot_cmd(runs: int, kernel_spec: str | None, topology: str, as_json: bool) -> None:
    """Boot to SYS_RDY: our KVM engine against QEMU with KVM, same kernel and initramfs.

    Needs a /dev/kvm with hardware semantics: bare metal, or inside the testbed
    (schedlab testbed -- schedlab bench boot).
    """
    from .engine_choice import EngineChoice
    from .request import RunRequest, Scenario, VmShape
    from .runner import prepare_inputs
    from .session import RunSession

    kvm = EngineChoice("kvm", "kvm", "bench boot")
    qemu = EngineChoice("qemu", "kvm", "bench boot")
    # One image for all: the KVM engine's (it may carry virtio_mmio; QEMU ignores it), and
    # the same quiet console, so only the VMM differs (and, for kvm-elf, the decompression).
    kernel, initrd = prepare_inputs(kvm, kernel_spec, lambda p, d: None)
    variants = (("kvm-bzimage", kvm, True), ("kvm-elf", kvm, False), ("qemu-kvm", qemu, True))
    figures: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for i in range(runs):
        for label, choice, bz in variants:
            vm = VmShape(
                engine=choice.engine,
                engine_reason=choice.reason,
                kernel=kernel,
                initrd=initrd,
                topology=Topology.parse(topology),
                qemu_accel=choice.qemu_accel,
                boot_bzimage=bz,
                extra_cmdline=("quiet",),
            )
            req = RunRequest(vm=vm, scenario=Scenario(duration_s=0.5))
            result, _code = RunSession(req).run()
            ms = result["timings"]["vm_start_to_sys_rdy_ms"]
            console.print(
                f"run {i + 1}/{runs} {label}: {result['verdict']}, boot to SYS_RDY "
                f"{'-' if ms is None else f'{ms:.0f} ms'}",
                highlight=False,
            )
            if ms is not None:
                figures[label].append(ms)
    med = {k: statistics.median(v) for k, v in figures.items() if v}
    ratios = {
        f"{k}/qemu-kvm": round(med[k] / med["qemu-kvm"], 2)
        for k in ("kvm-bzimage", "kvm-elf")
        if k in med and "qemu-kvm" in med
    }
    if as_json:
        json.dump({"runs": runs, "median_ms": med, "ratios": ratios, "all": figures}, sys.stdout)
        print()
        return
    for k, v in med.items():
        console.print(
            f"{k}: median boot to SYS_RDY {v:.0f} ms over {len(figures[k])} runs", highlight=False
        )
    for k, r in ratios.items():
        console.print(f"ratio {k}: {r:.2f}", highlight=False)
    if not ratios:
        console.print("ratio: n/a (a side never reached SYS_RDY)", highlight=False)


@bench_group.command("fuzz")
@click.option("--inputs", default=1_000_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--seconds",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="stop after this long, even before INPUTS",
)
def fuzz_cmd(inputs: int, seed: int, seconds: float | None) -> None:
    """Hostile guest bytes through the whole collector path: inputs/s, crashes, RSS.

    Valid frames with hostile payloads, mutated msgpack, mutated streams and random bytes,
    split at random chunk boundaries, go through the frame decoder, the payload schemas and
    the run files (in a temporary directory, removed). Exit 1 if anything crashed, hung or
    grew RSS without bound.
    """
    # The fuzz engine is collector_proc's; it runs in its own process, measured alone.
    argv = [
        sys.executable,
        "-m",
        "collector_proc.fuzz",
        "--json",
        "--inputs",
        str(inputs),
        "--seed",
        str(seed),
    ] + (["--seconds", str(seconds)] if seconds else [])
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    try:
        fig = json.loads(out.stdout)
    except json.JSONDecodeError:
        click.echo(
            f"schedlab: the fuzzer failed (exit {out.returncode}) without a report", err=True
        )
        sys.exit(RunExit.ERROR)
    console.print_json(data=fig)
    console.print(
        f"{fig['inputs']} inputs in {fig['seconds']:.1f} s: {fig['inputs_per_s']:.0f} inputs/s; "
        f"{fig['crashes']} crashes, {fig['hangs']} hangs; RSS {fig['rss_warm_mib']:.1f} -> "
        f"{fig['rss_end_mib']:.1f} MiB after warm-up",
        highlight=False,
    )
    if out.returncode != 0:
        sys.exit(RunExit.FAILED)


bench_group.add_command(overhead_cmd)
bench_group.add_command(restore_cmd)
bench_group.add_command(gauntlet_cmd)
bench_group.add_command(workloads_cmd)


@bench_group.command("monitor")
@click.option("--cpus", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--rate",
    default=100.0,
    show_default=True,
    type=click.FloatRange(1, 1000),
    help="samples per second",
)
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(0.5, 600))
@click.option(
    "--kernel", "kernel_spec", default=None, help="a sched_ext kernel (default: the cached one)"
)
@click.option(
    "--subscribed",
    is_flag=True,
    help="a live subscriber takes the samples (as attach monitor --live does)",
)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def monitor_cmd(
    cpus: int,
    rate: float,
    seconds: float,
    kernel_spec: str | None,
    subscribed: bool,
    as_json: bool,
) -> None:
    """The monitor's CPU cost (% of one core) and sample latency p50/p99, for CPUS vCPUs
    sampled at RATE Hz with the full sched_ext sample, against synthetic guest memory laid
    out from the kernel's BTF (goal: under 10 % at 8 vCPUs and 100 Hz)."""
    from .kernel.artifacts import KernelError
    from .kernel.resolve import resolve_kernel

    try:
        kernel = resolve_kernel(kernel_spec, progress=lambda p, d: None)
    except KernelError as exc:
        click.echo(f"schedlab: {exc}", err=True)
        sys.exit(RunExit.ERROR)
    if kernel.vmlinux is None or not kernel.enabled("SCHED_CLASS_EXT"):
        click.echo(f"schedlab: kernel {kernel.version} has no vmlinux with sched_ext", err=True)
        sys.exit(RunExit.ERROR)
    # monitor_proc measures itself, in its own process (the import rule keeps it apart).
    argv = [
        sys.executable,
        "-m",
        "monitor_proc.bench",
        "--vmlinux",
        str(kernel.vmlinux),
        "--cpus",
        str(cpus),
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        *(["--subscribed"] if subscribed else []),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        click.echo(
            f"schedlab: the monitor benchmark failed (exit {out.returncode}): {err}", err=True
        )
        sys.exit(RunExit.ERROR)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if as_json:
        console.print_json(json.dumps(figures))
        return
    console.print(
        f"monitor, {figures['cpus']} vCPUs at {figures['rate_hz']:g} Hz for {figures['seconds']} s: "
        f"{figures['cpu_percent_of_one_core']:.1f} % of one core (goal < 10 %), sample latency "
        f"p50 {figures['sample_ms_p50']} ms, p99 {figures['sample_ms_p99']} ms; "
        f"{figures['samples']} samples of {figures['sample_bytes']} bytes, {figures['errors']} errors"
        + (f", {figures['published']} published to a subscriber" if subscribed else ""),
        highlight=False,
    )


@bench_group.command("sched-exit")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--engine", default="auto", show_default=True, type=click.Choice(ENGINES))
@click.option("--kernel", "kernel_spec", default=None)
@click.option(
    "--enqueues",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="scx_qmap -e: scx_bpf_error() after this many enqueues",
)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def sched_exit_cmd(
    runs: int, engine: str, kernel_spec: str | None, enqueues: int, as_json: bool
) -> None:
    """Milliseconds from a scheduler's exit (the guest's clock) to the VM stopped on the host:
    scx_qmap -e N, median of RUNS runs (each cut short by the exit, not by its 30 s scenario)."""
    from .engine_choice import choose_engine
    from .request import RunRequest, Scenario, VmShape
    from .runner import SchedChoice, prepare_inputs, resolve_launch, sched_parts
    from .session import RunSession

    choice = choose_engine(engine)
    topo = Topology.parse("1,1,2,1")
    kernel, initrd = prepare_inputs(choice, kernel_spec, lambda p, d: None)
    launch = resolve_launch(
        SchedChoice("scx_qmap", f"-e {enqueues}"), kernel, topo, lambda p, d: None
    )
    rows: list[dict] = []
    for i in range(runs):
        vm = VmShape(
            engine=choice.engine,
            engine_reason=choice.reason,
            kernel=kernel,
            initrd=initrd,
            topology=topo,
            qemu_accel=choice.qemu_accel,
        )
        req = RunRequest(vm=vm, scenario=Scenario(duration_s=30.0), **sched_parts(launch))
        result, _code = RunSession(req).run()
        s = result["scheduler"]
        row = {
            "verdict": result["verdict"],
            "exit_to_stop_ms": s.get("exit_to_stop_ms"),
            "stopped_early": s.get("stopped_early"),
            "test_ms": result["timings"]["test_ms"],
            "reason": (result["reasons"] or [""])[0][:80],
        }
        rows.append(row)
        console.print(f"run {i + 1}/{runs}: {row}", highlight=False)
    ms = [
        r["exit_to_stop_ms"]
        for r in rows
        if r["stopped_early"] and r["exit_to_stop_ms"] is not None
    ]
    med = statistics.median(ms) if ms else None
    if as_json:
        json.dump(
            {"engine": choice.engine, "runs": runs, "median_ms": med, "all": rows}, sys.stdout
        )
        print()
        return
    if med is None:
        console.print(
            "no run was stopped early by its scheduler's exit: no figure", highlight=False
        )
        return
    console.print(
        f"scheduler exit -> VM stopped ({choice.engine}, scx_qmap -e {enqueues}): "
        f"median {med:.0f} ms (min {min(ms):.0f}, max {max(ms):.0f}) over {len(ms)} of "
        f"{runs} runs",
        highlight=False,
    )


@bench_group.command("transfer")
@click.option(
    "--mb",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.001, 200),
    help="size of the file sent",
)
@click.option("--runs", default=1, show_default=True, type=click.IntRange(1, 20))
@click.option("--engine", default="auto", show_default=True)
@click.option("--kernel", "kernel_spec", default=None)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def transfer_cmd(mb: float, runs: int, engine: str, kernel_spec: str | None, as_json: bool) -> None:
    """Host-to-guest MB/s over the bulk port: a run's inputs carrying one file of MB megabytes.

    Host figure: first bulk write to the guest's INPUTS_ACK decoded (frames, sha256 check and
    tmpfs writes in the guest included); guest figure: its first input byte to its last frame.
    """
    import os
    import tempfile
    from pathlib import Path

    from .engine_choice import choose_engine
    from .inputs import HostFile
    from .request import RunRequest, Scenario, VmShape
    from .runner import prepare_inputs
    from .session import RunSession

    choice = choose_engine(engine)
    kernel, initrd = prepare_inputs(choice, kernel_spec, lambda p, d: None)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="schedlab-bench-") as tmp:
        blob = Path(tmp) / "blob.bin"
        with open(blob, "wb") as f:
            left = int(mb * 1e6)
            while left > 0:
                f.write(os.urandom(min(left, 1 << 20)))
                left -= 1 << 20
        for i in range(runs):
            vm = VmShape(
                engine=choice.engine,
                engine_reason=choice.reason,
                kernel=kernel,
                initrd=initrd,
                topology=Topology.parse("1,1,2,1"),
                qemu_accel=choice.qemu_accel,
            )
            req = RunRequest(
                vm=vm, scenario=Scenario(duration_s=0.5), files=(HostFile("payload", blob),)
            )
            result, _code = RunSession(req).run()
            inp = result.get("inputs") or {}
            row = {
                "verdict": result["verdict"],
                "acked": inp.get("acked", False),
                "file_bytes": inp.get("file_bytes"),
                "host_ms": inp.get("transfer_ms"),
                "host_mb_s": inp.get("mb_per_s"),
                "guest_ms": inp.get("guest_recv_ms"),
                "guest_wait_ms": inp.get("guest_wait_ms"),
                "guest_reads": inp.get("guest_reads"),
                "guest_mb_s": (
                    round(inp["file_bytes"] / inp["guest_recv_ms"] / 1e3, 2)
                    if inp.get("guest_recv_ms")
                    else None
                ),
            }
            rows.append(row)
            console.print(f"run {i + 1}/{runs} ({choice.engine}): {row}", highlight=False)
    good = [r for r in rows if r["acked"]]
    med = {
        k: statistics.median(r[k] for r in good)
        for k in ("host_mb_s", "guest_mb_s", "host_ms")
        if good and all(r[k] is not None for r in good)
    }
    if as_json:
        json.dump(
            {"engine": choice.engine, "mb": mb, "runs": runs, "median": med, "all": rows},
            sys.stdout,
        )
        print()
        return
    if not med:
        console.print("no run delivered its inputs: no figure", highlight=False)
        return
    console.print(
        f"host->guest over the bulk port ({choice.engine}, {mb:g} MB): "
        f"{med['host_mb_s']:.2f} MB/s host-measured ({med['host_ms']:.0f} ms), "
        f"{med.get('guest_mb_s', 0):.2f} MB/s guest-measured, median of {len(good)}",
        highlight=False,
    )
