"""Tie a process's life to its parent's: if supervisord (or the VMM, for QEMU) dies without
stopping us, the kernel sends us a signal instead of leaving an orphan behind."""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = ("die_with_parent",)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask for ``sig`` when the parent exits; if it already has, send it now."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)
