"""Which engine runs a VM: KVM by default only where /dev/kvm is hardware-backed.

A CPL0 micro-guest loop tells hardware KVM (milliseconds) from an emulating /dev/kvm
(seconds) by orders of magnitude; the reason is always reported to the user.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("EngineChoice", "EngineChoiceError", "choose_engine")

ENGINES = ("auto", "kvm", "qemu")


class EngineChoiceError(Exception):
    pass


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # kvm | qemu
    qemu_accel: str  # kvm | tcg (QEMU engine only)
    reason: str


def _probe():  # noqa: ANN202 - vmm_proc.probe.ProbeResult
    from vmm_proc.probe import probe

    return probe()


def choose_engine(requested: str, probe=_probe) -> EngineChoice:  # noqa: ANN001
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
