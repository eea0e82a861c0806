"""The run's result document (``schedlab run --json``) and the host-side checks behind it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guest.scenario import record as scenario_record
from guest.schema import SchemaError as RecordError
from guest.wire import PANIC_PREFIX
from schedlab_shared import run_layout
from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.monitor_schema import CPU_FIELDS, SchemaError, check_sample
from verdicts.run import monitor_section
from verdicts.thresholds import MonitorThresholds

from .result_schema import validate_result
from .sched_outcome import ERROR, SchedReport, findings

__all__ = (
    "Timings", "RunOutcome", "load_monitor_samples", "check_rq_clocks", "build_result", "scenario_records",
)


@dataclass
class Timings:
    """Milliseconds of each phase, host clock."""

    start_ms: float | None = None  # session start to VM start (supervisord, vmm_proc)
    vm_start_to_sys_rdy_ms: float | None = None
    test_ms: float | None = None
    exit_ms: float | None = None  # RESULT to the run seen complete (guest exit, drain)
    teardown_ms: float | None = None
    total_ms: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {k: (round(v, 1) if v is not None else None) for k, v in self.__dict__.items()}


@dataclass
class RunOutcome:
    """What the orchestrator gathered; ``build_result`` turns it into the JSON document."""

    engine: str
    engine_reason: str
    kernel: dict[str, Any]
    topology: dict[str, Any]
    run_dir: Path
    run_id: str = ""
    guest_result: dict[str, Any] | None = None
    guest_exit_code: int | None = None
    vm_exit_reason: str = ""
    vm_exit_detail: str = ""
    decoder: dict[str, int] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    errors: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    sched: SchedReport = field(default_factory=SchedReport)
    thresholds: MonitorThresholds | None = None  # the monitor's (verdicts.thresholds)
    watchdog_timeout_s: float | None = None  # the sched_ext watchdog override asked for


def load_monitor_samples(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Valid samples per monitor instance from its samples file (a torn last line, or one
    that is not a sample as :mod:`schedlab_shared.monitor_schema` defines it, is skipped)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, path in run_layout.monitor_files(run_dir).items():
        samples = []
        for line in path.read_text().splitlines():
            try:
                samples.append(check_sample(json.loads(line)))
            except (json.JSONDecodeError, SchemaError):
                continue  # torn last line, or not a sample this version defines
        out[name] = samples
    return out


def check_rq_clocks(samples: list[dict[str, Any]], nr_cpus: int) -> tuple[bool, str]:
    """Every CPU's rq clock must advance between its first and last sample."""
    if len(samples) < 2:
        return False, f"monitor: {len(samples)} samples, need at least 2"
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for s in samples:
        for c in s.get("cpus", []):
            cpu, clock = int(c["cpu"]), int(c["rq_clock"])
            first.setdefault(cpu, clock)
            last[cpu] = clock
    stuck = [cpu for cpu in range(nr_cpus) if cpu not in first or last[cpu] <= first[cpu]]
    if stuck:
        return False, f"monitor: rq_clock did not advance on CPU(s) {stuck}"
    return True, f"monitor: rq_clock advanced on all {nr_cpus} CPUs over {len(samples)} samples"


def _tail_lines(path: Path, n: int, max_bytes: int = 64 << 10) -> list[str]:
    """The last ``n`` lines of a log, reading at most ``max_bytes`` (guest output is untrusted)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - max_bytes))
            data = f.read()
    except OSError:
        return []
    return [ln.decode(errors="replace").rstrip("\r") for ln in data.splitlines()[-n:]]


def collect_evidence(run_dir: Path) -> dict[str, list[str]]:
    """Crash text from COM2 (the guest init's PANIC lines) and the end of the kernel console."""
    panic = [ln for ln in _tail_lines(run_dir / run_layout.DIAG, 200) if ln.startswith(PANIC_PREFIX)]
    return {"panic": panic[:40], "console_tail": _tail_lines(run_dir / run_layout.CONSOLE, 30)}


def _workers(guest_result: dict[str, Any] | None) -> list[dict[str, Any]]:
    keys = ("cgroup", "pid", "work_units", "cpu_time_ns", "max_gap_ms")
    return [{k: w.get(k) for k in keys} for w in (guest_result or {}).get("workers", [])]


def _cpu_fields(c: dict[str, Any]) -> dict[str, Any]:
    """A CPU sample as the result shows it: every field the monitor read except the
    current task (monitor_schema.CPU_FIELDS)."""
    return {k: v for k, v in c.items() if k in CPU_FIELDS and k not in ("curr_pid", "curr_comm")}


def scenario_records(guest_result: dict[str, Any] | None) -> dict[str, Any]:
    """The result's ``scenario``: the scenario's name, its step records and the backdrop's
    (:mod:`guest.scenario.record`), checked again here; a bad record is left out, with why."""
    g = guest_result or {}
    out: dict[str, Any] = {"name": g.get("scenario", ""), "steps": [], "backdrop": None}
    try:
        if "steps" in g:
            out["steps"] = scenario_record.check_steps(g["steps"])
        if "backdrop" in g:
            out["backdrop"] = scenario_record.check_backdrop(g["backdrop"])
    except RecordError as e:
        out["error"] = f"step records refused: {e}"
    return out


def build_result(o: RunOutcome) -> dict[str, Any]:
    """The result document; ``passed`` needs the guest verdict, a clean exit and the monitor.

    The scheduler under test speaks first: its errors (it did not load, no sched_ext) and
    failures (it exited during the test, it would not stop) lead their lists, in its own
    words. When the host stopped the VM because the scheduler exited, the missing guest
    result and the early VM exit are consequences, not reasons.
    """
    monitors = load_monitor_samples(o.run_dir)
    primary = monitors.get("monitor", next(iter(monitors.values()), []))
    nr_cpus = int(o.topology.get("cpus", 0))
    mon_ok, mon_reason = check_rq_clocks(primary, nr_cpus)
    sched = o.sched.section(o.run_dir)
    sched_findings = findings(sched)
    sched_errors = [f.reason for f in sched_findings if f.kind == ERROR]
    sched_failures = [f.reason for f in sched_findings if f.kind != ERROR]
    early = sched.stopped_early
    infra = sched_errors + list(o.errors)
    if o.vm_exit_reason == ExitReason.ERROR:
        infra.append(f"VM engine failed: {o.vm_exit_detail}")
    evidence = collect_evidence(o.run_dir)
    if o.guest_result is None and o.vm_exit_reason == ExitReason.GUEST_EXIT and not sched_errors:
        if evidence["panic"]:
            first = next((ln for ln in evidence["panic"] if "Error" in ln), evidence["panic"][0])
            infra.append(f"the guest's PID 1 crashed: {first.removeprefix(PANIC_PREFIX).strip()}")
        else:
            infra.append("the guest exited without a test result (see guest-stderr.log, diag.log)")
    reasons: list[str] = infra + sched_failures
    guest_passed = bool(o.guest_result and o.guest_result.get("passed"))
    if o.guest_result is not None and not guest_passed and not sched_findings:
        reasons.append(f"guest verdict: {o.guest_result.get('reason', 'failed')}")
    if o.guest_result is not None and o.guest_exit_code != 0 and not sched_findings:
        reasons.append(f"guest exit code {o.guest_exit_code}")
    if o.vm_exit_reason not in (ExitReason.GUEST_EXIT, ExitReason.ERROR) and not early:
        reasons.append(f"VM exit: {o.vm_exit_reason or 'unknown'} {o.vm_exit_detail}".strip())
    if not mon_ok and not early:
        reasons.append(mon_reason)
    judged = monitor_section(monitors, o.thresholds, o.watchdog_timeout_s)
    if judged["status"] == "failed":
        reasons.append(judged["reason"])
    elif judged["status"] == "inconclusive" and primary:
        infra.append(judged["reason"])  # the monitor read something no kernel holds
        reasons.insert(0, judged["reason"])
    verdict = "error" if infra else ("failed" if reasons else "passed")
    verdict_ok = verdict == "passed"
    return validate_result({
        "passed": verdict_ok,
        "verdict": verdict,
        "reasons": reasons,
        "engine": o.engine,
        "engine_reason": o.engine_reason,
        "kernel": o.kernel,
        "topology": o.topology,
        "workers": _workers(o.guest_result),
        "scenario": scenario_records(o.guest_result),
        "guest": {
            "result": o.guest_result,
            "exit_code": o.guest_exit_code,
        },
        "vm_exit": {"reason": o.vm_exit_reason, "detail": o.vm_exit_detail},
        "monitor": {
            "ok": mon_ok,
            "reason": mon_reason,
            "samples": [
                {
                    "elapsed_ms": round(s["elapsed_ms"], 1),
                    "cpus": [_cpu_fields(c) for c in s["cpus"]],
                }
                for s in primary
            ],
            "checks": {k: judged[k] for k in ("status", "reason", "judged_samples", "thresholds")},
            "events": judged["events"],
            "violations": judged["violations"],
            **({"watchdog": judged["watchdog"]} if "watchdog" in judged else {}),
            "instances": {name: len(s) for name, s in monitors.items()},
        },
        "evidence": evidence if verdict != "passed" else {},
        "decoder": o.decoder,
        "timings": o.timings.as_dict(),
        "run_dir": str(o.run_dir),
        "run_id": o.run_id,
        "injected_faults": o.injected,
        "scheduler": sched.to_dict(),
    })
