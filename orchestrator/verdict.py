"""A run's verdict and the one table that maps what went wrong to it.

Every check of a run yields :class:`Finding` objects; the heaviest one decides the verdict
and the verdict alone decides the exit code (:attr:`Verdict.exit_code`): 0 passed, 1 the
scheduler was judged and failed, 2 the harness could not judge it. The guest's EXIT code
(:class:`guest.wire.ExitCode`) and the VM's exit reason map to findings here and nowhere
else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from guest.wire import ExitCode
from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.exitcodes import RunExit

__all__ = (
    "GUEST_EXIT",
    "MAX_REASON",
    "Finding",
    "Severity",
    "Verdict",
    "decide",
    "guest_exit_finding",
    "one_line",
    "ordered_reasons",
    "vm_exit_finding",
)

#: Longest reason kept from guest-supplied text (the guest is untrusted).
MAX_REASON = 300


class Verdict(enum.StrEnum):
    """The ``verdict`` field of the result document."""

    PASSED = "passed"
    FAILED = "failed"  # the scheduler was judged and a check failed
    ERROR = "error"  # the harness could not judge the scheduler

    @property
    def exit_code(self) -> RunExit:
        return _EXIT[self]


_EXIT = {
    Verdict.PASSED: RunExit.PASSED,
    Verdict.FAILED: RunExit.FAILED,
    Verdict.ERROR: RunExit.ERROR,
}


class Severity(enum.IntEnum):
    """How much a finding weighs; the heaviest decides the verdict."""

    INCONCLUSIVE = 1  # one check could not judge: error, unless another check failed the test
    FAILED = 2  # a check judged the scheduler and it failed
    BROKEN = 3  # the run itself could not be carried out: error, whatever was judged


@dataclass(frozen=True)
class Finding:
    """One thing a check found; ``reason`` is a single line for the user."""

    severity: Severity
    reason: str


def decide(findings: list[Finding]) -> Verdict:
    """The verdict for ``findings`` (no finding: passed)."""
    worst = max((f.severity for f in findings), default=None)
    if worst is None:
        return Verdict.PASSED
    return Verdict.FAILED if worst is Severity.FAILED else Verdict.ERROR


def ordered_reasons(findings: list[Finding]) -> list[str]:
    """Reasons, heaviest first (stable), without repeats: the first is the one-line reason."""
    out: list[str] = []
    for f in sorted(findings, key=lambda f: -f.severity):
        if f.reason not in out:
            out.append(f.reason)
    return out


def one_line(text: object, limit: int = MAX_REASON) -> str:
    """Guest text made safe for a one-line reason: no control characters, bounded."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


#: Guest EXIT code -> (severity or None for "nothing wrong", what it means).
GUEST_EXIT: dict[ExitCode, tuple[Severity | None, str]] = {
    ExitCode.OK: (None, "the test ran and passed"),
    ExitCode.TEST_FAILED: (Severity.FAILED, "the test ran and its verdict failed"),
    ExitCode.BAD_SPEC: (Severity.BROKEN, "the guest rejected the run spec"),
    ExitCode.BAD_IMAGE: (Severity.BROKEN, "the guest image is truncated or corrupt"),
    ExitCode.SETUP_FAILED: (Severity.BROKEN, "the guest could not set the test up"),
    ExitCode.SHUTDOWN: (Severity.BROKEN, "the guest was stopped before the test finished"),
}


def guest_exit_finding(code: int, result: dict | None) -> Finding | None:
    """What the guest's EXIT ``code`` (with its RESULT payload, if any) says about the run."""
    try:
        exit_code = ExitCode(code)
    except ValueError:
        return Finding(Severity.BROKEN, f"the guest sent an unknown exit code {one_line(code, 20)}")
    severity, meaning = GUEST_EXIT[exit_code]
    reason = one_line(result.get("reason", "")) if isinstance(result, dict) else ""
    if exit_code is ExitCode.OK:
        if result is None:
            return Finding(Severity.BROKEN, "the guest exited OK but sent no test result")
        if not result.get("passed"):
            return Finding(Severity.FAILED, f"guest verdict: {reason or 'failed'}")
        return None
    assert severity is not None
    if exit_code is ExitCode.TEST_FAILED:
        if result is None:
            return Finding(Severity.BROKEN, "the guest reported a failed test but sent no result")
        return Finding(severity, f"guest verdict: {reason or 'failed'}")
    return Finding(severity, f"guest {exit_code.name}: {reason or meaning + ' (no reason sent)'}")


def vm_exit_finding(reason: str, detail: str, *, guest_ready: bool) -> Finding | None:
    """What the VM's :class:`ExitReason` says (a guest exit is judged from the EXIT code).

    A kernel crash while the test runs is the system under test failing; one before the
    guest reported ready is a setup failure (the kernel or its image could not boot).
    """
    detail = one_line(detail)
    if reason == ExitReason.GUEST_EXIT:
        return None
    if reason == ExitReason.CRASH:
        if guest_ready:
            return Finding(Severity.FAILED, f"the guest kernel crashed: {detail}")
        return Finding(Severity.BROKEN, f"the guest kernel crashed while booting: {detail}")
    if reason == ExitReason.ERROR:
        return Finding(Severity.BROKEN, f"VM engine failed: {detail}")
    if reason == ExitReason.STOPPED:
        return Finding(Severity.BROKEN, f"the VM was stopped before the guest finished ({detail})")
    if reason == ExitReason.TIMEOUT:
        return Finding(Severity.BROKEN, f"the VM hit its hard timeout: {detail}")
    if not reason:
        return Finding(Severity.BROKEN, "the VM's exit was never observed")
    return Finding(Severity.BROKEN, f"VM exit: {one_line(reason, 40)} {detail}".strip())
