"""Crash text: ``PANIC:`` lines on COM2 and COM1, the host's evidence that the guest was lost.

Written on two paths that end the same way: the init process writes its own Python traceback
here, and PID 1's reaper writes how the init process died (a native fault, an unexpected exit)
with the faulthandler text that process left in the crash pipe. Nothing goes to the bulk port
then: a virtio-console write can block on the host and would hang the power-off.
"""

from __future__ import annotations

import os

__all__ = ("CRASHED", "SERIAL_PORTS", "describe_status", "panic")

#: Exit status of the init process after it reported its own crash (EX_SOFTWARE).
CRASHED = 70
#: COM2 (the host's diag.log) first, then COM1 (console.log); relative to the root.
SERIAL_PORTS = ("dev/ttyS1", "dev/ttyS0")
_FALLBACK = "dev/console"  # exists in the image before devtmpfs is mounted (COM1)


def describe_status(status: int) -> str:
    """``waitpid`` status as words: ``exit 3``, ``killed by SIGSEGV``."""
    if os.WIFSIGNALED(status):
        import signal  # only on this path

        n = os.WTERMSIG(status)
        try:
            name = signal.Signals(n).name
        except ValueError:
            name = f"signal {n}"
        return f"killed by {name}"
    if os.WIFEXITED(status):
        return f"exit {os.WEXITSTATUS(status)}"
    return f"status {status:#x}"


def panic(root: str, text: str) -> int:
    """Write ``text`` as ``PANIC:`` lines on COM2 and COM1 (best effort, bounded).

    :return: how many ports took the text (the console fallback counts when both failed).
    """
    from guest.channels import Com2  # any 16550 port; imported only on a crash

    written = 0
    for rel in SERIAL_PORTS:
        port = Com2(os.path.join(root, rel))
        if port.fd >= 0:
            port.panic(text)
            os.close(port.fd)
            written += 1
    if not written:  # crashed before devtmpfs was mounted
        port = Com2(os.path.join(root, _FALLBACK))
        if port.fd >= 0:
            port.panic(text)
            os.close(port.fd)
            written = 1
    return written
