"""The terminal watcher: a SIGKILLed ``schedlab shell`` still leaves the terminal as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

from orchestrator.terminal import RawTerminal

ROOT = Path(__file__).resolve().parents[3]
# A stand-in for the shell: raw mode on its stdin (a pty), then it waits to be killed.
_CHILD = r"""
import json, sys, time
from orchestrator.terminal import RawTerminal
t = RawTerminal(0)
t.enter()
print(json.dumps({"guard": t._guard.proc.pid if t._guard else 0}), flush=True)
time.sleep(60)
"""


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def _raw_child(slave: int) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD], cwd=ROOT, stdin=slave, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    guard = json.loads(proc.stdout.readline())["guard"]
    assert guard > 0
    return proc, guard


def test_a_sigkilled_shell_gets_its_terminal_restored_by_the_watcher():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        proc, guard = _raw_child(slave)
        assert termios.tcgetattr(slave) != before  # raw now: the restore below is real
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _gone(guard)
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_the_watcher_leaves_settings_someone_else_made_after_the_kill():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        proc, guard = _raw_child(slave)
        other = termios.tcgetattr(slave)
        other[3] |= termios.ICANON  # e.g. the parent shell's own settings, applied first
        termios.tcsetattr(slave, termios.TCSANOW, other)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _gone(guard)
        now = termios.tcgetattr(slave)
        assert now != before and now[3] & termios.ICANON
    finally:
        os.close(master)
        os.close(slave)


def test_an_orderly_restore_releases_the_watcher_which_touches_nothing():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        term = RawTerminal(slave)
        term.enter()
        guard = term._guard
        assert guard is not None
        term.restore()
        assert guard.proc.poll() is not None  # released and gone
        later = termios.tcgetattr(slave)
        later[3] &= ~termios.ECHO  # what the user's shell does next stays
        termios.tcsetattr(slave, termios.TCSANOW, later)
        time.sleep(0.2)
        assert termios.tcgetattr(slave) == later != before
    finally:
        os.close(master)
        os.close(slave)
