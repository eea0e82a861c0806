"""Kicking a thread out of KVM_RUN: immediate_exit plus a signal with a no-op handler.

``install_kick_handler()`` must run in the main thread (CPython installs handlers only
there) before the first kick; vCPU threads must not block ``KICK_SIGNAL``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from vmm_proc.kvm.vcpu import VcpuFd

__all__ = ("KICK_SIGNAL", "install_kick_handler", "kick")

# A real-time signal: queued rather than merged, and unused by Python and pytest.
KICK_SIGNAL = signal.SIGRTMIN + 2


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The handler's only job is to exist: delivery alone makes KVM_RUN return EINTR."""


def install_kick_handler() -> None:
    """Install the no-op KICK_SIGNAL handler (idempotent; main thread only).

    :raises RuntimeError: when called from another thread before it was installed.
    """
    if signal.getsignal(KICK_SIGNAL) is _ignore:
        return  # already there (any thread may ask)
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("install_kick_handler() must be called from the main thread")
    if signal.getsignal(KICK_SIGNAL) is not _ignore:
        signal.signal(KICK_SIGNAL, _ignore)


def kick(vcpu: VcpuFd, thread_ident: int) -> None:
    """Make ``vcpu``'s current or next KVM_RUN (in thread ``thread_ident``) return Interrupted.

    immediate_exit covers the window before the thread enters KVM_RUN; the signal covers
    a thread already inside it.

    :param thread_ident: ``threading.Thread.ident`` of the thread running ``vcpu.run()``.
    :raises RuntimeError: if install_kick_handler() was not called (the default action
        of a real-time signal would kill the process).
    """
    if signal.getsignal(KICK_SIGNAL) is not _ignore:
        raise RuntimeError("kick() before install_kick_handler()")
    vcpu.immediate_exit = True
    signal.pthread_kill(thread_ident, KICK_SIGNAL)
