"""Fault injection for runs: ``kill:<program>@<seconds after SYS_RDY>`` and
``pause:vm@<seconds after SYS_RDY>+<seconds>``.

Used by tests (and by users checking their own setup) to prove that supervised processes
restart and reattach without losing or duplicating data, and that a host that stops running
the VM (``pause``: SIGSTOP of the vCPU threads' process, SIGCONT after) is reported as the
host's, not failed as the scheduler's (:mod:`schedlab_shared.host_pauses`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Fault", "parse_fault", "FaultError")

KILLABLE = ("collector", "monitor", "vmm")  # vmm: proves a lost VM is an error and leaves nothing
MAX_PAUSE_S = 30.0  # a longer pause would look like a hung VM to every timeout


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    target: str
    at_s: float
    pause_s: float = 0.0  # > 0: pause the VM this long (target "vm") instead of a kill

    def __str__(self) -> str:
        if self.pause_s:
            return f"pause:{self.target}@{self.at_s:g}+{self.pause_s:g}"
        return f"kill:{self.target}@{self.at_s:g}"


def _seconds(text: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise FaultError(f"--inject {text!r}: {value!r} is not a number of seconds") from None
    if not v >= 0:
        raise FaultError(f"--inject {text!r}: the time must be >= 0")
    return v


def parse_fault(text: str) -> Fault:
    """Parse ``kill:collector@1.5`` or ``pause:vm@1.0+1.2``."""
    action, _, rest = text.partition(":")
    target, _, at = rest.partition("@")
    if action == "pause" and target == "vm" and "+" in at:
        at, _, length = at.partition("+")
        pause_s = _seconds(text, length)
        if not 0 < pause_s <= MAX_PAUSE_S:
            raise FaultError(f"--inject {text!r}: the pause must be > 0 and <= {MAX_PAUSE_S:g} s")
        return Fault("vm", _seconds(text, at), pause_s)
    if action != "kill" or target not in KILLABLE or not at:
        raise FaultError(
            f"--inject {text!r}: expected kill:<{'|'.join(KILLABLE)}>@<seconds after SYS_RDY>"
            " or pause:vm@<seconds after SYS_RDY>+<seconds>"
        )
    return Fault(target, _seconds(text, at))
