"""The run's result document (``schedlab run --json``) and the evidence behind it.

Classification lives in :mod:`orchestrator.verdict` (the guest EXIT code and VM exit
reason tables) and :mod:`orchestrator.monitor_check` (the monitors); this module gathers
the findings of one run and writes the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guest.scenario import record as scenario_record
from guest.schema import SchemaError as RecordError
from guest.wire import PANIC_PREFIX
from schedlab_shared import run_layout
from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.host_pauses import clock_base_ns, describe, find_pauses, place_in_guest
from schedlab_shared.kernel_console import is_oops
from schedlab_shared.monitor_schema import CPU_FIELDS
from verdicts.run import monitor_section
from verdicts.run_workers import workers_section
from verdicts.thresholds import MonitorThresholds
from verdicts.worker_limits import WorkerLimitError, resolve_worker_limits

from .monitor_check import MonitorReport, check_rq_clocks, load_monitor_samples, monitor_findings
from .result_schema import validate_result
from .sched_outcome import ERROR as SCHED_ERROR
from .sched_outcome import SchedFinding, SchedReport
from .sched_outcome import findings as sched_findings
from .verdict import (
    Finding,
    Severity,
    decide,
    guest_exit_finding,
    one_line,
    ordered_reasons,
    vm_exit_finding,
)

__all__ = (
    "Timings",
    "RunOutcome",
    "build_result",
    "check_rq_clocks",
    "collect_evidence",
    "load_monitor_samples",
    "scenario_records",
)

# Without oops=panic the VM survives an oops: the kernel log is where it shows.
_KERNEL_LOG_SCAN = 8 << 20  # bytes of kernel.log scanned for oops lines (guest output is untrusted)


@dataclass
class Timings:
    """Milliseconds of each phase, host clock."""

    start_ms: float | None = None  # session start to VM start (supervisord, vmm_proc)
    vm_start_to_sys_rdy_ms: float | None = None
    inputs_ms: float | None = None  # SYS_RDY to the guest's INPUTS_ACK
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
    sys_rdy: float = 0.0  # host time the guest reported ready (0: never)
    vm_exit_reason: str = ""
    vm_exit_detail: str = ""
    timed_out_s: float | None = None  # the run hit --timeout: the graceful stop was sent
    decoder: dict[str, int] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    errors: list[str] = field(default_factory=list)  # host-side infrastructure failures
    injected: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # supervised program -> restarts
    monitors: dict[str, MonitorReport] = field(default_factory=dict)  # requested monitors
    sched: SchedReport = field(default_factory=SchedReport)
    thresholds: MonitorThresholds | None = None  # the monitor's (verdicts.thresholds)
    watchdog_timeout_s: float | None = None  # the sched_ext watchdog override asked for
    inputs: dict[str, Any] | None = None  # orchestrator.inputs.InputSender.summary()
    engine_notes: list[str] = field(default_factory=list)  # e.g. performance measures
    #: Worker limit overrides (verdicts.worker_limits): the scheduler's, then the test's.
    scheduler_limits: dict[str, Any] = field(default_factory=dict)
    test_limits: dict[str, Any] = field(default_factory=dict)
    expect_error: str | None = None  # the workers' check that must fail (an expected error)
    tcg: bool = False  # the guest ran under QEMU's TCG (the workers' limits allow for it)
    vm_started_at: float = 0.0  # host time.time() the VM started (the samples' elapsed_ms 0)
    #: (host time a guest frame arrived, the guest CLOCK_BOOTTIME it carried): SYS_RDY, PHASE
    clock_anchors: list[tuple[float, int]] = field(default_factory=list)


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


def _oops_lines(path: Path, limit: int = 20) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(_KERNEL_LOG_SCAN)
    except OSError:
        return []
    lines = [ln for ln in data.splitlines() if is_oops(ln)][:limit]
    return [ln.decode(errors="replace")[:300] for ln in lines]


def _crash_text(console: list[str], before: int = 3, limit: int = 60) -> list[str]:
    """The console from just before its first panic or oops line on (a backtrace can be
    longer than any fixed tail)."""
    first = next((i for i, ln in enumerate(console) if is_oops(ln.encode())), None)
    if first is None:
        return []
    start = max(0, first - before)
    return console[start : start + limit]


def collect_evidence(run_dir: Path) -> dict[str, list[str]]:
    """Crash text from COM2 (``PANIC:`` lines and the rest), kernel oopses, the console's
    crash text and end."""
    diag = _tail_lines(run_dir / run_layout.DIAG, 200)
    console = _tail_lines(run_dir / run_layout.CONSOLE, 400)
    return {
        "panic": [ln for ln in diag if ln.startswith(PANIC_PREFIX)][:40],
        "diag_tail": [ln for ln in diag if ln.strip() and not ln.startswith(PANIC_PREFIX)][-10:],
        "oops": _oops_lines(run_dir / run_layout.KERNEL_LOG),
        "console_crash": _crash_text(console),
        "console_tail": console[-30:],
    }


def _pid1_crash(panic: list[str]) -> Finding:
    first = next((ln for ln in panic if "Error" in ln), panic[0])
    return Finding(
        Severity.BROKEN, f"the guest's PID 1 crashed: {one_line(first.removeprefix(PANIC_PREFIX))}"
    )


def _timeout_finding(o: RunOutcome) -> Finding:
    kept = "partial reports kept" if _workers(o.guest_result) else "no worker reports"
    if o.vm_exit_reason == ExitReason.TIMEOUT:
        return Finding(
            Severity.BROKEN,
            f"timed out after {o.timed_out_s:g} s; the guest did not stop on "
            f"request, so the VM was stopped; {kept}",
        )
    return Finding(Severity.BROKEN, f"timed out after {o.timed_out_s:g} s; {kept}")


def _guest_findings(
    o: RunOutcome, evidence: dict[str, list[str]], sched: list[SchedFinding], early: bool
) -> list[Finding]:
    """Findings from the VM's exit and the guest's EXIT code (one place: verdict tables).

    When the scheduler under test spoke (it did not load, it exited), the guest's verdict
    and exit code are its consequences; when the host stopped the VM because it exited,
    so is the early VM exit.
    """
    if o.errors and not o.vm_exit_reason:
        return []  # the run never got to observe the VM's end: the host errors say why
    if evidence["panic"] and not any(f.kind == SCHED_ERROR for f in sched):
        return [_pid1_crash(evidence["panic"])]  # native fault or exception in PID 1
    if o.timed_out_s is not None:
        return [_timeout_finding(o)]
    if o.vm_exit_reason == ExitReason.SCHED_EXIT or (
        early and o.vm_exit_reason != ExitReason.ERROR
    ):
        if sched:
            return []
        return [
            Finding(
                Severity.BROKEN, "the VM was stopped for a scheduler exit that was not recorded"
            )
        ]
    vm = vm_exit_finding(o.vm_exit_reason, o.vm_exit_detail, guest_ready=bool(o.sys_rdy))
    if vm is not None:
        return [vm]
    if sched:
        return []
    if o.guest_exit_code is None:
        last = evidence["diag_tail"][-1:] or [""]
        why = (
            f"; its last COM2 line: {one_line(last[0])}"
            if last[0]
            else " (see guest-stderr.log, diag.log)"
        )
        return [Finding(Severity.BROKEN, f"the guest exited without a test result{why}")]
    guest = guest_exit_finding(o.guest_exit_code, o.guest_result)
    return [guest] if guest is not None else []


def _workers(guest_result: dict[str, Any] | None) -> list[dict[str, Any]]:
    keys = ("cgroup", "pid", "work_units", "cpu_time_ns", "max_gap_ms")
    workers = (guest_result or {}).get("workers", [])
    if not isinstance(workers, list):
        return []
    return [{k: w.get(k) for k in keys} for w in workers if isinstance(w, dict)]


def _cpu_fields(c: dict[str, Any]) -> dict[str, Any]:
    """A CPU sample as the result shows it: every field the monitor read except the
    current task (monitor_schema.CPU_FIELDS)."""
    return {k: v for k, v in c.items() if k in CPU_FIELDS and k not in ("curr_pid", "curr_comm")}


def _bpf_listing(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"bpf": the last BPF listing of the primary monitor}``, or {} when it made none
    (monitor_schema.BPF_FIELDS; the sample lines were checked when read)."""
    for s in reversed(samples):
        if "bpf" in s:
            return {"bpf": s["bpf"]}
    return {}


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


def host_pauses(o: RunOutcome, primary: list[dict[str, Any]]) -> dict[str, Any]:
    """``result.json``'s ``host_pauses`` (:mod:`schedlab_shared.host_pauses`): when the host
    did not run the vCPUs, placed on the guest's clock through the frames' anchors."""
    base = clock_base_ns(o.clock_anchors, o.vm_started_at)
    pauses = place_in_guest(find_pauses(primary), base)
    return {"pauses": pauses, "clock_base_ns": base}


def _judge_workers(
    o: RunOutcome, pauses: list[dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[Finding]]:
    """The host's verdict on the workers' facts (verdicts.workers); a bad limit is broken."""
    try:
        limits = resolve_worker_limits(o.scheduler_limits, o.test_limits, tcg=o.tcg)
    except WorkerLimitError as exc:
        section = {"passed": False, "reason": str(exc), "verdicts": [], "cgroups": []}
        return section, [Finding(Severity.BROKEN, str(exc))]
    section = workers_section(o.guest_result, limits, o.topology, o.expect_error, pauses)
    if o.guest_result is None or section["passed"]:
        return section, []
    return section, [Finding(Severity.FAILED, one_line(f"workers: {section['reason']}"))]


def build_result(o: RunOutcome) -> dict[str, Any]:
    """The result document; ``verdict`` follows from the findings (see :mod:`.verdict`).

    The scheduler under test speaks first: its errors (it did not load, no sched_ext) and
    failures (it exited during the test, it would not stop) lead their severity, in its own
    words.
    """
    sched = o.sched.section(o.run_dir)
    sched_said = sched_findings(sched)
    early = sched.stopped_early
    samples = load_monitor_samples(o.run_dir)
    primary = samples.get("monitor", [])
    nr_cpus = int(o.topology.get("cpus", 0))
    evidence = collect_evidence(o.run_dir)
    findings = [
        Finding(Severity.BROKEN if f.kind == SCHED_ERROR else Severity.FAILED, f.reason)
        for f in sched_said
    ]
    findings += [Finding(Severity.BROKEN, e) for e in o.errors]
    findings += _guest_findings(o, evidence, sched_said, early)
    if evidence["oops"] and o.vm_exit_reason != ExitReason.CRASH:
        findings.append(
            Finding(Severity.FAILED, f"the guest kernel reported: {one_line(evidence['oops'][0])}")
        )
    clocks, mon_findings, notes = monitor_findings(samples, o.monitors, nr_cpus)
    if o.sys_rdy and not early:  # before the guest is ready they have nothing to read
        findings += mon_findings
    judged = monitor_section(samples, o.thresholds, o.watchdog_timeout_s)
    if judged["status"] == "failed":
        findings.append(Finding(Severity.FAILED, judged["reason"]))
    elif judged["status"] == "inconclusive" and primary:
        # the monitor read something no kernel holds
        findings.append(Finding(Severity.INCONCLUSIVE, judged["reason"]))
    notes += [str(n) for n in o.engine_notes]
    paused = host_pauses(o, primary)
    workers_verdict, worker_findings = _judge_workers(o, paused["pauses"])
    findings += worker_findings
    notes += [describe(p) for p in paused["pauses"][:8]]
    notes += [
        f"{name} restarted {n} time(s)"
        for name, n in sorted(o.restarts.items())
        if n and name not in o.monitors
    ]
    verdict = decide(findings)
    reasons = ordered_reasons(findings)
    return validate_result(
        {
            "passed": verdict == "passed",
            "verdict": str(verdict),
            "reason": reasons[0] if reasons else "",
            "reasons": reasons,
            "notes": notes,
            "engine": o.engine,
            "engine_reason": o.engine_reason,
            "kernel": o.kernel,
            "topology": o.topology,
            "workers": _workers(o.guest_result),
            "workers_verdict": workers_verdict,
            "host_pauses": paused,
            "scenario": scenario_records(o.guest_result),
            "guest": {
                "result": o.guest_result,
                "exit_code": o.guest_exit_code,
            },
            "vm_exit": {"reason": o.vm_exit_reason, "detail": o.vm_exit_detail},
            "timed_out_s": o.timed_out_s,
            "monitor": {
                "ok": clocks.verdict == "passed",
                "verdict": str(clocks.verdict),
                "reason": clocks.reason,
                "samples": [
                    {
                        "elapsed_ms": round(s["elapsed_ms"], 1),
                        "cpus": [_cpu_fields(c) for c in s["cpus"]],
                    }
                    for s in primary
                ],
                "checks": {
                    k: judged[k] for k in ("status", "reason", "judged_samples", "thresholds")
                },
                "events": judged["events"],
                "violations": judged["violations"],
                **({"watchdog": judged["watchdog"]} if "watchdog" in judged else {}),
                **_bpf_listing(primary),
                "instances": {name: len(s) for name, s in samples.items()},
                "processes": {
                    name: {"restarts": r.restarts, "gave_up": r.gave_up, **r.status}
                    for name, r in sorted(o.monitors.items())
                },
            },
            "restarts": dict(sorted(o.restarts.items())),
            "evidence": evidence if verdict != "passed" else {},
            "decoder": o.decoder,
            "timings": o.timings.as_dict(),
            "run_dir": str(o.run_dir),
            "run_id": o.run_id,
            "injected_faults": o.injected,
            "scheduler": sched.to_dict(),
            "inputs": o.inputs,
        }
    )
