"""Fault injection for runs: ``kill:<program>@<seconds after SYS_RDY>``.

Used by tests (and by users checking their own setup) to prove that supervised processes
restart and reattach without losing or duplicating data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Fault", "parse_fault", "FaultError")

KILLABLE = ("collector", "monitor", "vmm")  # vmm: proves a lost VM is an error and leaves nothing


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    target: str
    at_s: float

    def __str__(self) -> str:
        return f"kill:{self.target}@{self.at_s:g}"


def parse_fault(text: str) -> Fault:
    """Parse ``kill:collector@1.5``."""
    action, _, rest = text.partition(":")
    target, _, at = rest.partition("@")
    if action != "kill" or target not in KILLABLE or not at:
        raise FaultError(
            f"--inject {text!r}: expected kill:<{'|'.join(KILLABLE)}>@<seconds after SYS_RDY>"
        )
    try:
        at_s = float(at)
    except ValueError:
        raise FaultError(f"--inject {text!r}: {at!r} is not a number of seconds") from None
    if at_s < 0:
        raise FaultError(f"--inject {text!r}: the time must be >= 0")
    return Fault(target, at_s)
