"""Process control through supervisord and its XML-RPC interface.

supervisord runs in its own session (so a terminal Ctrl-C reaches only the orchestrator,
which then tears down in order) and dies with the orchestrator (PR_SET_PDEATHSIG), stopping
its programs, so nothing outlives a killed orchestrator.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from schedlab_shared.exitcodes import ProcExit
from schedlab_shared.parentdeath import die_with_parent
from schedlab_shared.run_layout import SUPERVISORD_LOG

__all__ = ("Program", "ProgramHistory", "Supervisor", "SupervisorError", "program_history")

_ACTIVE_STATES = {"STARTING", "RUNNING", "BACKOFF", "STOPPING"}
_STOP_POLL_S = 0.02


class SupervisorError(Exception):
    """supervisord failed to start or to answer."""


@dataclass(frozen=True)
class Program:
    """One supervised process."""

    name: str
    argv: list[str]
    log: Path
    restart: bool = True  # restart on an unexpected exit (ProcExit.expected() are expected)
    env: dict[str, str] = field(default_factory=dict)
    autostart: bool = False  # spawned by supervisord as it starts (no RPC round trip)
    priority: int = 999  # autostart order: lower first

    def section(self) -> str:
        def q(arg: str) -> str:
            # supervisord splits with shlex: quote each argument; '%' is its expansion marker.
            return "'" + arg.replace("'", "'\"'\"'").replace("%", "%%") + "'"

        lines = [
            f"[program:{self.name}]",
            "command=" + " ".join(q(a) for a in self.argv),
            f"autostart={'true' if self.autostart else 'false'}",
            f"priority={self.priority}",
            f"autorestart={'unexpected' if self.restart else 'false'}",
            "exitcodes=" + ",".join(str(int(c)) for c in ProcExit.expected()),
            "startsecs=0",
            "startretries=5",
            "stopwaitsecs=15",
            "stopsignal=TERM",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={str(self.log).replace('%', '%%')}",
            "stdout_logfile_maxbytes=0",
        ]
        if self.env:
            env = ",".join(f'{k}="{v}"' for k, v in self.env.items())
            lines.append(f"environment={env.replace('%', '%%')}")
        return "\n".join(lines) + "\n"


@dataclass
class ProgramHistory:
    """How often supervisord started a program, and whether it gave up on it."""

    spawns: int = 0
    gave_up: bool = False

    @property
    def restarts(self) -> int:
        return max(0, self.spawns - 1)


_SPAWNED = re.compile(r" INFO spawned: '([^']+)' with pid \d+$")
_GAVE_UP = re.compile(r" INFO gave up: (\S+) entered FATAL state")


def program_history(log: Path) -> dict[str, ProgramHistory]:
    """Spawns and give-ups per program, from supervisord's own log (it keeps no counter)."""
    out: dict[str, ProgramHistory] = {}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if m := _SPAWNED.search(line):
            out.setdefault(m.group(1), ProgramHistory()).spawns += 1
        elif m := _GAVE_UP.search(line):
            out.setdefault(m.group(1), ProgramHistory()).gave_up = True
    return out


def _die_with_parent() -> None:
    die_with_parent(signal.SIGTERM)


class Supervisor:
    """A private supervisord for one run, controlled over a unix-socket XML-RPC."""

    def __init__(self, runtime_dir: Path, log_dir: Path, programs: list[Program]) -> None:
        self.runtime_dir = runtime_dir
        self.sock = runtime_dir / "supervisor.sock"
        self.conf = runtime_dir / "supervisord.conf"
        self.programs = {p.name: p for p in programs}
        self.log = log_dir / SUPERVISORD_LOG
        self._write_conf(log_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self._rpc = self._proxy()

    def _proxy(self) -> Any:  # XML-RPC answers are untyped; Any, not the Marshallable union
        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{self.sock}")
        )

    def _write_conf(self, log_dir: Path) -> None:
        head = f"""[unix_http_server]
file={self.sock}
chmod=0700

[supervisord]
nodaemon=true
logfile={self.log}
logfile_maxbytes=0
pidfile={self.runtime_dir / "supervisord.pid"}
childlogdir={log_dir}
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

"""
        self.conf.write_text(head + "\n".join(p.section() for p in self.programs.values()))

    def start(self, timeout_s: float = 15.0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise SupervisorError(f"supervisord exited at start: {err.strip()[-300:]}")
            try:
                if self._rpc.supervisor.getState()["statename"] == "RUNNING":
                    return
            except (OSError, xmlrpc.client.Fault, http.client.HTTPException):
                self._rpc = self._proxy()  # a failed call leaves the transport unusable
            time.sleep(0.05)
        raise SupervisorError("supervisord did not come up in time")

    def start_program(self, name: str) -> None:
        self._rpc.supervisor.startProcess(name, True)

    def info(self, name: str) -> dict:
        return self._rpc.supervisor.getProcessInfo(name)

    def pid(self, name: str) -> int:
        return int(self.info(name)["pid"])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to a program (fault injection); returns the pid that got it."""
        pid = self.pid(name)
        if pid:
            os.kill(pid, sig)
        return pid

    def history(self) -> dict[str, ProgramHistory]:
        """Spawns and give-ups of every program so far."""
        return program_history(self.log)

    def stop_program(self, name: str) -> None:
        try:
            self._rpc.supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as exc:
            if "NOT_RUNNING" not in exc.faultString:
                raise

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every program, then supervisord; escalate to SIGKILL rather than hang."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            try:
                self._stop_all(timeout_s)
                self._rpc.supervisor.shutdown()
            except (OSError, xmlrpc.client.Fault, http.client.HTTPException):
                self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=5.0)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def _stop_all(self, timeout_s: float) -> None:
        """SIGTERM every running program, then poll until all have stopped.

        supervisord wakes only on I/O or after a 1 s select timeout (a SIGCHLD does not
        interrupt it), and a waiting stopAllProcesses reply is rechecked on that tick:
        each poll here is the I/O that makes it reap at once.
        """
        calls = [
            {"methodName": "supervisor.stopProcess", "params": [name, False]}
            for name in self.programs
        ]
        self._rpc.system.multicall(calls)  # NOT_RUNNING faults come back as entries: fine
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {i["statename"] for i in self._rpc.supervisor.getAllProcessInfo()}
            if not states & _ACTIVE_STATES:
                return
            time.sleep(_STOP_POLL_S)
