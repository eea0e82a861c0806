"""One test's VM run, through ``schedlab run`` itself (the orchestrator's run path, in a
child process: its own signal handling and teardown, one VM per test), and its outcome.

The scenario document travels by the run's hidden ``--plan FILE``; everything else is the
command line a user would type. The result document is ``--json``'s.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import GUEST_LIMITS, VmSpec

__all__ = ("RunOutcome", "cli_argv", "evidence_text", "run_vm")

_TAIL_LINES = 5


@dataclass
class RunOutcome:
    """What a run produced: its exit code, result document (None if it wrote none) and the
    last lines it printed (what an exit-2 refusal says)."""

    exit_code: int
    result: dict[str, Any] | None
    wall_s: float
    log: Path
    tail: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.result is not None:
            return str(self.result.get("verdict", "error"))
        return "passed" if self.exit_code == 0 else "error"

    @property
    def reasons(self) -> list[str]:
        if self.result is not None:
            rs = [str(r) for r in self.result.get("reasons") or () if r]
            return rs or ([str(self.result["reason"])] if self.result.get("reason") else [])
        return [ln.removeprefix("schedlab: ") for ln in self.tail[-1:]]

    @property
    def run_dir(self) -> str:
        return str((self.result or {}).get("run_dir") or "")


def cli_argv(
    spec: VmSpec, plan: Path | None, json_path: Path, kernel: str | None, engine: str
) -> list[str]:
    """The ``schedlab run`` command line for ``spec``."""
    argv = [sys.executable, "-m", "orchestrator.cli", "run", "--progress", "plain"]
    argv += ["--topology", spec.topology, "--duration", f"{spec.duration:g}"]
    argv += ["--workers", str(spec.workers), "--mem", str(spec.memory)]
    argv += ["--engine", engine, "--json", str(json_path)]
    if kernel:
        argv += ["--kernel", kernel]
    if plan is not None:
        argv += ["--plan", str(plan)]
    if spec.scheduler.lower() != "eevdf":
        argv += ["--scheduler", spec.scheduler]
        for f in spec.flags:
            argv += ["--sched-flag", f]
        if spec.sched_args:
            argv += ["--sched-args", spec.sched_args]
    if spec.watchdog_timeout is not None:
        argv += ["--watchdog-timeout", f"{spec.watchdog_timeout:g}"]
    if spec.timeout is not None:
        argv += ["--timeout", f"{spec.timeout:g}"]
    for k, v in sorted(spec.asserts.items()):
        if k == "fairness":
            argv += ["--fairness", f"{v:g}"]
        elif k == "max_gap_ms":
            argv += ["--max-gap-ms", f"{v:g}"]
        else:
            argv += ["--threshold", f"{k}={v:g}"]
    assert set(GUEST_LIMITS) == {"fairness", "max_gap_ms"}
    return argv


def run_vm(argv: list[str], json_path: Path, log: Path) -> RunOutcome:
    """Run ``argv`` (a ``schedlab run``), its output into ``log``; wait for it even on Ctrl-C
    (it tears its VM down on the same SIGINT), then read its result."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "wb") as out:
        out.write(("$ " + shlex.join(argv) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    wall = time.monotonic() - t0
    result = None
    try:
        result = json.loads(json_path.read_text())
    except (OSError, ValueError):
        pass
    tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return RunOutcome(
        code, result if isinstance(result, dict) else None, wall, log, tail[-_TAIL_LINES:]
    )


def evidence_text(o: RunOutcome) -> str:
    """The failure message: verdict and reasons, the guest's failed checks, crash lines,
    where the logs are."""
    lines = [f"schedlab verdict: {o.verdict} (exit {o.exit_code})"]
    lines += [f"  reason: {r}" for r in o.reasons]
    r = o.result or {}
    guest = (r.get("guest") or {}).get("result") or {}
    for v in guest.get("verdicts") or ():
        if isinstance(v, dict) and not v.get("passed"):
            lines.append(f"  check {v.get('name')}: {v.get('detail')}")
    ev = r.get("evidence") or {}
    for key in ("panic", "oops", "console_crash"):
        for ln in (ev.get(key) or [])[:3]:
            lines.append(f"  {key}: {ln}")
    if o.result is None:
        lines += [f"  | {ln}" for ln in o.tail]
    if o.run_dir:
        lines.append(f"  run dir: {o.run_dir}")
    lines.append(f"  log: {o.log}")
    return "\n".join(lines)
