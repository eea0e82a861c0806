"""What a SIGKILLed orchestrator cannot remove itself: its runtime directory, its run's
guest RAM files in /dev/shm and the run directory's endpoints file.

supervisord dies with the orchestrator and stops its programs (orchestrator.supervise), but
the orchestrator's own ``finally`` never runs after SIGKILL. So each session starts one small
process in its own session that holds the read end of a pipe whose only write end the
orchestrator keeps: when the orchestrator is gone, however it died, the read returns EOF and
the reaper removes those paths (nothing, after a normal teardown already did), waiting a
bounded time for the VMM to go first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ("Reaper", "start_reaper")

_SCRIPT = r"""
import glob, os, shutil, sys, time
runtime, endpoints, shm_glob = sys.argv[1:4]
try:
    while sys.stdin.buffer.read(4096):
        pass
except OSError:
    pass
deadline = time.monotonic() + 20.0  # supervisord stops the VMM, which unlinks its RAM
while glob.glob(shm_glob) and time.monotonic() < deadline:
    time.sleep(0.2)
shutil.rmtree(runtime, ignore_errors=True)
for p in [endpoints, *glob.glob(shm_glob)]:
    try:
        os.unlink(p)
    except OSError:
        pass
"""


class Reaper:
    """The running reaper; :meth:`release` lets it finish now (after a clean teardown)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def release(self, wait_s: float = 5.0) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_reaper(runtime: Path, endpoints: Path, shm_glob: str) -> Reaper:
    """Start the reaper for one session (it does nothing until the pipe closes)."""
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", _SCRIPT, str(runtime), str(endpoints), shm_glob],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C or SIGHUP does not reach it
        close_fds=True,
    )
    return Reaper(proc)
