"""Exit codes of every schedlab executable; supervisor's ``exitcodes=`` derive from these."""

from __future__ import annotations

import enum

__all__ = ("RunExit", "ProcExit")


class RunExit(enum.IntEnum):
    """``schedlab run`` and friends."""

    PASSED = 0
    FAILED = 1  # the test ran and its verdict is a failure
    ERROR = 2  # bad input or infrastructure failure: no verdict
    INTERRUPTED = 130  # Ctrl-C; everything was torn down


class ProcExit(enum.IntEnum):
    """The long-running processes (vmm_proc, collector_proc, monitor_proc)."""

    DONE = 0  # finished its job (for vmm_proc: the VM ran and is gone, whatever the guest did)
    CONFIG = 2  # bad configuration: restarting cannot help
    ENGINE = 3  # vmm_proc: the engine failed to start or run the VM
    LOST = 4  # a peer it needs vanished for longer than its grace period
    SIGNALLED = 5  # stopped by SIGTERM/SIGINT before its job was done

    @classmethod
    def expected(cls) -> tuple[int, ...]:
        """Codes after which supervisor must not restart the process."""
        return (cls.DONE, cls.CONFIG, cls.SIGNALLED)
