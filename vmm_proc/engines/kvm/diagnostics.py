"""The text block the engine emits on the ``diag`` stream when it stops a stuck VM."""

from __future__ import annotations

from dataclasses import dataclass

from vmm_proc.kvm.types import Regs, Sregs

__all__ = ("VcpuSnapshot", "format_stuck_report")


@dataclass(frozen=True)
class VcpuSnapshot:
    """One vCPU as seen by the watchdog; ``regs``/``sregs`` None when they could not be read."""

    index: int
    state: str
    exits: int
    regs: Regs | None = None
    sregs: Sregs | None = None
    error: str = ""


def _vcpu_line(s: VcpuSnapshot) -> str:
    head = f"  vcpu{s.index} [{s.state}, {s.exits} exits]"
    if s.regs is None or s.sregs is None:
        return f"{head} registers unavailable: {s.error or '?'}"
    r, sr = s.regs, s.sregs
    return (
        f"{head} RIP={r.rip:#018x} RSP={r.rsp:#018x} RFLAGS={r.rflags:#x} "
        f"CR0={sr.cr0:#x} CR3={sr.cr3:#x} CR4={sr.cr4:#x} EFER={sr.efer:#x} "
        f"CS={sr.cs.selector:#06x}"
    )


def format_stuck_report(
    title: str, snapshots: list[VcpuSnapshot], console_tail: list[str]
) -> bytes:
    """Render the report: a title, one line per vCPU, then the last console lines.

    >>> format_stuck_report("timeout after 5s", [], ["Booting"]).decode().splitlines()[0]
    '=== schedlab kvm engine: timeout after 5s ==='
    """
    lines = [f"=== schedlab kvm engine: {title} ===", "vCPUs:"]
    lines += [_vcpu_line(s) for s in snapshots]
    lines.append(f"last {len(console_tail)} console lines:")
    lines += [f"  | {line}" for line in console_tail]
    lines.append("=== end ===")
    return ("\n".join(lines) + "\n").encode()
