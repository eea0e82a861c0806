"""Which engine runs a VM: KVM by default only where /dev/kvm is hardware-backed.

A CPL0 micro-guest loop tells hardware KVM (milliseconds) from an emulating /dev/kvm
(seconds) by orders of magnitude; the reason is always reported to the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from schedlab_shared.kvm_probe import ProbeResult

__all__ = (
    "ENGINES",
    "EngineChoice",
    "EngineChoiceError",
    "choose_engine",
    "probe_this_host",
    "run_probe",
)

ENGINES = ("auto", "kvm", "qemu")
# An emulating /dev/kvm answers within seconds (FACTS §3); a hung one must not hang the run.
_PROBE_TIMEOUT_S = 60.0


class EngineChoiceError(Exception):
    pass


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # kvm | qemu
    qemu_accel: str  # kvm | tcg (QEMU engine only)
    reason: str


def run_probe(timeout_s: float = _PROBE_TIMEOUT_S) -> ProbeResult:
    """Run ``python -m vmm_proc.probe --json`` as a child: /dev/kvm is vmm_proc's to open."""
    argv = [sys.executable, "-m", "vmm_proc.probe", "--json"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return ProbeResult("unavailable", None, f"the KVM probe did not answer in {timeout_s:g} s")
    except OSError as exc:
        return ProbeResult("unavailable", None, f"the KVM probe did not start: {exc}")
    try:
        return ProbeResult.from_json(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return ProbeResult(
            "unavailable", None, f"the KVM probe failed (exit {out.returncode}): {err}"
        )


def probe_this_host() -> ProbeResult:
    """The probe's answer, from this boot's cache when there is one (no /dev/kvm: no probe)."""
    from .probe_cache import KVM_DEV, cached_probe

    if not os.path.exists(KVM_DEV):
        return ProbeResult("unavailable", None, f"{KVM_DEV} does not exist")
    return cached_probe(run_probe)


def choose_engine(
    requested: str, probe: Callable[[], ProbeResult] = probe_this_host
) -> EngineChoice:
    if requested not in ENGINES:
        raise EngineChoiceError(f"--engine {requested!r}: choose one of {', '.join(ENGINES)}")
    result = probe()
    hw = result.kind == "hardware"
    accel = "kvm" if hw else "tcg"
    if requested == "qemu":
        return EngineChoice("qemu", accel, f"--engine qemu; /dev/kvm: {result.reason}")
    if requested == "kvm":
        if result.kind == "unavailable":
            raise EngineChoiceError(f"--engine kvm: /dev/kvm is not usable ({result.reason})")
        return EngineChoice("kvm", accel, f"--engine kvm; /dev/kvm: {result.reason}")
    if hw:
        return EngineChoice("kvm", accel, f"auto: /dev/kvm is hardware-backed ({result.reason})")
    return EngineChoice("qemu", "tcg", f"auto: QEMU with TCG because /dev/kvm {result.reason}")
