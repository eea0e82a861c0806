"""What a Linux kernel console line says about the kernel: one table for every reader.

Both VM engines classify the guest's COM1 with it (so they agree on what a crash is), and
the testbed classifies its L1 kernel's console with it. Only the kernel's own text is
matched here; the guest init's crash lines carry ``guest.wire.PANIC_PREFIX`` on COM2.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ("PANIC_MARKS", "OOPS_MARKS", "CLEAN_MARK", "is_panic", "is_oops", "panic_line")

# Userspace writes to the same UART interleave with printk, so one garbled line must not
# hide a panic: x86 panic notifiers print "Kernel Offset:" after the panic line, and
# panic() ends with "---[ end Kernel panic" (kernel/panic.c).
PANIC_MARKS = (b"Kernel panic - not syncing", b"Kernel Offset: ", b"---[ end Kernel panic")
# An oops or BUG the kernel survived (without oops=panic) is still a broken kernel.
OOPS_MARKS = (*PANIC_MARKS, b"Oops:", b"BUG:", b"general protection fault")
# "reboot: Restarting system" / "Power down" / "System halted": a clean stop follows.
CLEAN_MARK = b"reboot: "


def is_panic(line: bytes) -> bool:
    return any(m in line for m in PANIC_MARKS)


def is_oops(line: bytes) -> bool:
    return any(m in line for m in OOPS_MARKS)


def panic_line(lines: Iterable[bytes]) -> bytes | None:
    """The line that says the kernel panicked: the panic line itself when it is intact,
    else the first line of the panic's aftermath; None if the kernel did not panic."""
    first = None
    for line in lines:
        if PANIC_MARKS[0] in line:
            return line
        if first is None and is_panic(line):
            first = line
    return first
