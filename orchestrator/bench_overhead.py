"""``schedlab bench overhead``: a run's fixed cost against a bare VM with the same kernel.

The bare VM boots the same kernel through the same engine (the same QEMU command line) with
a busybox init that powers off at once; its lifetime is QEMU start to exit. A schedlab run
is the real CLI (``run --duration 1``) as a user starts it. The figure of merit is
``(total - test) / bare``: what schedlab adds around the test, in bare-VM lifetimes.
"""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

__all__ = ("overhead_cmd",)

_PHASES = ("start_ms", "vm_start_to_sys_rdy_ms", "test_ms", "exit_ms", "teardown_ms", "total_ms")
_LABELS = {
    "bare_ms": "bare VM lifetime",
    "start_ms": "start (supervisord, vmm_proc)",
    "vm_start_to_sys_rdy_ms": "boot to SYS_RDY",
    "test_ms": "test",
    "exit_ms": "RESULT to run complete",
    "teardown_ms": "teardown",
    "total_ms": "total",
    "wall_ms": "CLI wall (prepare included)",
}


@dataclass
class _Engine:
    name: str  # qemu | kvm: the engine both VMs run on
    accel: str  # QEMU's accelerator (tcg | kvm)
    rows: list[dict[str, float]] = field(default_factory=list)


def _echo(line: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)


def _bare_cmdline(engine: str) -> str:
    # The console settings of a schedlab run (session._cmdline) without its run spec.
    base = ["console=ttyS0", "panic=-1", "nokaslr", "rdinit=/init"]
    return " ".join(base + (["quiet"] if engine == "kvm" else []))


def _run_bare(eng: _Engine, kernel: Any, initrd: Path, topology: str) -> float:  # noqa: ANN401
    from .initramfs.busybox import BARE_INIT_MARKER

    argv = [
        sys.executable,
        "-m",
        "vmm_proc.bench.bare_vm",
        "--engine",
        eng.name,
        "--accel",
        eng.accel,
        "--kernel",
        str(kernel.vmlinuz),
        "--initrd",
        str(initrd),
        "--cmdline",
        _bare_cmdline(eng.name),
        "--topology",
        topology,
        "--run-id",
        f"bare-{secrets.token_hex(3)}",
    ]
    if eng.name == "kvm" and kernel.vmlinux:
        argv += ["--vmlinux", str(kernel.vmlinux)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise click.ClickException(f"the bare VM failed: {proc.stderr.strip()[-300:]}")
    out = json.loads(proc.stdout)
    if out["exit_reason"] != "guest-exit" or BARE_INIT_MARKER not in out["console_tail"]:
        raise click.ClickException(
            f"the bare VM did not run its init: {out['exit_reason']} {out['exit_detail']}"
        )
    return float(out["lifetime_s"]) * 1000


def _run_schedlab(
    eng: _Engine, kernel_spec: str | None, topology: str, tmp: Path
) -> dict[str, float]:
    out = tmp / f"result-{secrets.token_hex(3)}.json"
    argv = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "run",
        "--engine",
        eng.name,
        "--duration",
        "1",
        "--topology",
        topology,
        "--json",
        str(out),
        "--progress",
        "plain",
    ]
    if kernel_spec:
        argv += ["--kernel", kernel_spec]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    wall = (time.monotonic() - t0) * 1000
    if not out.exists():
        raise click.ClickException(f"schedlab run wrote no result: {proc.stderr.strip()[-300:]}")
    result = json.loads(out.read_text())
    if result["verdict"] != "passed":
        raise click.ClickException(
            f"schedlab run {result['verdict']}: {'; '.join(result['reasons'])}"
        )
    t = result["timings"]
    return {**{k: float(t[k]) for k in _PHASES if t.get(k) is not None}, "wall_ms": wall}


def _engines() -> tuple[list[_Engine], list[str]]:
    """The engines to measure, and a sentence for each one skipped."""
    from .engine_choice import probe_this_host

    probe = probe_this_host()
    accel = "kvm" if probe.kind == "hardware" else "tcg"
    engines = [_Engine("qemu", accel)]
    skipped = []
    if probe.kind == "hardware":
        engines.append(_Engine("kvm", "kvm"))
    else:
        skipped.append(
            f"kvm engine skipped: /dev/kvm {probe.reason} (it needs hardware-backed KVM)"
        )
    return engines, skipped


def _summary(eng: _Engine) -> dict[str, Any]:
    keys = [k for k in ("bare_ms", *_PHASES, "wall_ms") if all(k in r for r in eng.rows)]
    med = {k: statistics.median(r[k] for r in eng.rows) for k in keys}
    ratios = {}
    if {"bare_ms", "total_ms", "test_ms"} <= med.keys():
        ratios["(total - test) / bare"] = statistics.median(
            (r["total_ms"] - r["test_ms"]) / r["bare_ms"] for r in eng.rows
        )
        ratios["(CLI wall - test) / bare"] = statistics.median(
            (r["wall_ms"] - r["test_ms"]) / r["bare_ms"] for r in eng.rows
        )
    return {
        "engine": eng.name,
        "accel": eng.accel,
        "runs": len(eng.rows),
        "median_ms": med,
        "ratios": ratios,
        "all": eng.rows,
    }


def _print(s: dict[str, Any]) -> None:
    click.echo(f"engine {s['engine']} ({s['accel']}), median of {s['runs']} runs:")
    for k, v in s["median_ms"].items():
        click.echo(f"  {_LABELS[k]:<32} {v / 1000:7.2f} s")
    for k, v in s["ratios"].items():
        click.echo(f"  ratio {k:<26} {v:7.2f}")


@click.command("overhead")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--kernel", "kernel_spec", default=None, help="vmlinuz/bzImage path or cached version"
)
@click.option("--topology", default="1,1,2,1", show_default=True, help="N,L,C,T of both VMs")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def overhead_cmd(runs: int, kernel_spec: str | None, topology: str, as_json: bool) -> None:
    """A run's fixed cost over a bare VM, per engine.

    Each round boots a bare VM (same kernel, same engine and QEMU arguments, a busybox
    init that powers off at once), then runs "schedlab run --duration 1". Prints medians
    of the bare VM's lifetime, of the run's phases, and the ratio (total - test) / bare.
    Errors exit 2; the KVM engine is measured only where /dev/kvm is hardware-backed.
    """
    from .initramfs.busybox import BusyboxMissing, build_busybox_initramfs
    from .kernel.artifacts import KernelError
    from .kernel.resolve import resolve_kernel

    try:
        kernel = resolve_kernel(kernel_spec)
    except KernelError as exc:
        raise click.ClickException(str(exc)) from None
    engines, skipped = _engines()
    for line in skipped:
        _echo(line)
    with tempfile.TemporaryDirectory(prefix="schedlab-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            initrd = build_busybox_initramfs(tmp / "busybox.cpio")
        except BusyboxMissing as exc:
            raise click.ClickException(str(exc)) from None
        for i in range(runs):
            for eng in engines:
                bare = _run_bare(eng, kernel, initrd, topology)
                row = {"bare_ms": bare, **_run_schedlab(eng, kernel_spec, topology, tmp)}
                eng.rows.append(row)
                _echo(
                    f"round {i + 1}/{runs} {eng.name}: bare {bare / 1000:.2f} s, schedlab total "
                    f"{row['total_ms'] / 1000:.2f} s (test {row['test_ms'] / 1000:.2f} s)"
                )
    summaries = [_summary(e) for e in engines]
    if as_json:
        click.echo(json.dumps({"engines": summaries, "skipped": skipped}))
        return
    for s in summaries:
        _print(s)
    for line in skipped:
        click.echo(line)
