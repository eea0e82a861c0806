"""The signal that kicks vCPU threads out of KVM_RUN, and its installed no-op handler.

KVM_RUN returns EINTR only if a signal is *handled* (a default or ignored disposition would
kill the process or be dropped); Python runs its handler later on the main thread.
"""

from __future__ import annotations

import signal
import threading

from vmm_proc.engines.base import EngineError

__all__ = ("KICK_SIGNAL", "install_kick_handler")

# SIGUSR1 and SIGUSR2 are left for supervisor-style process control.
KICK_SIGNAL = signal.SIGRTMIN + 3


def _noop(signum: int, frame: object) -> None:
    """The kick's only job is to interrupt the ioctl."""


def install_kick_handler() -> int:
    """Install the no-op handler (idempotent) and return the signal number.

    :raises EngineError: called off the main thread before the handler was installed.
    """
    if signal.getsignal(KICK_SIGNAL) is _noop:
        return KICK_SIGNAL
    if threading.current_thread() is not threading.main_thread():
        raise EngineError("the KVM engine must first be started from the main thread")
    signal.signal(KICK_SIGNAL, _noop)
    # Restart other syscalls (queue waits, eventfd writes); KVM_RUN still sees EINTR.
    signal.siginterrupt(KICK_SIGNAL, False)
    return KICK_SIGNAL
