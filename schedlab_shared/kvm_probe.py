"""The answer of ``python -m vmm_proc.probe --json``: is /dev/kvm hardware-backed?

vmm_proc measures it (a micro-guest on /dev/kvm); the orchestrator runs that as a child
process and reads this one JSON line, so it never opens /dev/kvm itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ("Kind", "KINDS", "ProbeResult")

Kind = Literal["hardware", "emulated", "unavailable"]
KINDS: tuple[Kind, ...] = ("hardware", "emulated", "unavailable")


@dataclass(frozen=True)
class ProbeResult:
    """What the probe found.

    :param kind: "hardware" (KVM engine usable), "emulated" (CPL0 emulated: use QEMU TCG),
        or "unavailable" (no usable /dev/kvm).
    :param ns_per_iteration: measured cost of one CPL0 loop iteration, if measured.
    :param reason: one human-readable sentence.
    """

    kind: Kind
    ns_per_iteration: float | None
    reason: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        """Parse the probe's output line; raises ValueError when it is not one."""
        d = json.loads(text)
        if (
            not isinstance(d, dict)
            or d.get("kind") not in KINDS
            or not isinstance(d.get("reason"), str)
        ):
            raise ValueError(f"not a probe result: {text[:200]!r}")
        ns = d.get("ns_per_iteration")
        if ns is not None and (isinstance(ns, bool) or not isinstance(ns, (int, float))):
            raise ValueError(f"probe result: ns_per_iteration is {ns!r}")
        return cls(d["kind"], None if ns is None else float(ns), d["reason"])
