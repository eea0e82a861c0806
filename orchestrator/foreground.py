"""Run a schedlab process (``python -m monitor_proc ...``) as a foreground child we own.

The child gets its own session, so the terminal's Ctrl-C reaches only us: we forward it
(SIGINT), give the child time to save its state and go, then kill it. It also dies with us
(its ``die_with_parent``) if we are killed outright. Nothing outlives the command.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence

from schedlab_shared.exitcodes import RunExit

__all__ = ("python_module", "run_foreground")

_STOP_WAIT_S = 10.0


def _stop(proc: subprocess.Popen[bytes], sig: int, wait_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_foreground(argv: Sequence[str], stop_wait_s: float = _STOP_WAIT_S) -> int:
    """Run ``argv`` (stdout and stderr shared with us) until it exits.

    :return: its exit status, or 130 (RunExit.INTERRUPTED) after Ctrl-C or SIGTERM.
    """
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc, signal.SIGINT, stop_wait_s)
        return RunExit.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc, signal.SIGTERM, stop_wait_s)  # a no-op once it exited


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def python_module(module: str, *args: str) -> list[str]:
    """The argv that runs ``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
