"""External programs and Python callables as workloads: output, exit code, metrics.

:class:`Program` runs one program with its output captured (bounded: the head and the tail
of each stream) and reaps it with its resource usage; :func:`extract_metrics` reads figures
from what it printed. Programs sent with the run's inputs are at
``/run/schedlab/inputs/payload/<name>`` and find their libraries in ``.../inputs/lib``
(:func:`payload_env`). Work types here:

``payload``
    a program sent with the inputs (``name``, ``args``), stress-ng first; its work units are
    the bogo-ops (or other ``*ops``) figures when it prints them, else 1 for a clean exit.
``custom``
    ``callable="module:function"``: ``function(ctl)`` runs in the worker, with the module
    imported from the run's ``include`` inputs (or the guest's own path); it loops on
    ``ctl.running()``, counts work with ``ctl.unit()`` and may return a map of metrics.
    ``command="prog arg ..."``: an external command, treated like a payload.
"""

from __future__ import annotations

import os
import select
import signal
import time

from guest.rundoc import INPUTS_DIR
from guest.worktypes import kind

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

    from guest.workmeter import Ctl

__all__ = ("OUTPUT_KEEP", "Program", "extract_metrics", "payload_env", "resolve_program")

OUTPUT_KEEP = 2048  #: bytes kept from the head and from the tail of each output stream
_STOP_GRACE_S = 2.0
_METRICS_CAP = 64


def payload_env() -> dict[str, str]:
    """The environment of a payload: the guest's, with the sent libraries first."""
    env = dict(os.environ)
    lib = f"{INPUTS_DIR}/lib"
    env["LD_LIBRARY_PATH"] = lib + (
        ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else ""
    )
    env.setdefault("PATH", "/usr/bin:/bin")
    return env


def resolve_program(name: str) -> str:
    """A payload name -> its path: a sent payload first, else the name as given."""
    if "/" not in name:
        sent = f"{INPUTS_DIR}/payload/{name}"
        if os.path.exists(sent):
            return sent
    return name


class _Stream:
    """Bounded capture: the first and last :data:`OUTPUT_KEEP` bytes, and the total."""

    __slots__ = ("fd", "head", "tail", "total")

    def __init__(self, fd: int) -> None:
        self.fd, self.head, self.tail, self.total = fd, b"", b"", 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if len(self.head) < OUTPUT_KEEP:
            take = OUTPUT_KEEP - len(self.head)
            self.head += data[:take]
            data = data[take:]
        self.tail = (self.tail + data)[-OUTPUT_KEEP:]

    def text(self) -> str:
        gap = self.total - len(self.head) - len(self.tail)
        mid = f"\n[... {gap} bytes ...]\n".encode() if gap > 0 else b""
        return (self.head + mid + self.tail).decode(errors="replace")


class Program:
    """One external program, its output captured; never outlives :meth:`stop`.

    :param argv: the command; ``argv[0]`` is resolved by :func:`resolve_program`.
    :raises OSError: it could not be started (the message names it).
    """

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = [resolve_program(argv[0]), *argv[1:]]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ]
            self.pid = os.posix_spawnp(
                self.argv[0],
                self.argv,
                env if env is not None else payload_env(),
                file_actions=actions,
                setsid=True,
            )
        except OSError as e:
            for fd in (out_r, err_r):
                os.close(fd)
            raise OSError(e.errno, f"cannot start {self.argv[0]}: {e.strerror}") from None
        finally:
            os.close(out_w)
            os.close(err_w)
        self.out, self.err = _Stream(out_r), _Stream(err_r)
        for s in (self.out, self.err):
            os.set_blocking(s.fd, False)
        self.started = time.monotonic()
        self.status: int | None = None
        self.rusage: Any = None

    def pump(self, timeout_s: float) -> None:
        """Take output for up to ``timeout_s``; reap the program if it ended."""
        fds = [s.fd for s in (self.out, self.err) if s.fd >= 0]
        if fds:
            ready, _, _ = select.select(fds, [], [], max(0.0, timeout_s))
            for s in (self.out, self.err):
                if s.fd in ready:
                    self._read(s)
        elif self.status is None:
            time.sleep(min(timeout_s, 0.01))
        self._reap(os.WNOHANG)

    def _read(self, s: _Stream) -> None:
        while s.fd >= 0:
            try:
                data = os.read(s.fd, 65536)
            except BlockingIOError:
                return
            if not data:
                os.close(s.fd)
                s.fd = -1
                return
            s.feed(data)

    def _reap(self, flags: int) -> None:
        if self.status is not None:
            return
        try:
            pid, status, usage = os.wait4(self.pid, flags)
        except ChildProcessError:
            self.status = -1
            return
        if pid == self.pid:
            self.status, self.rusage = status, usage

    @property
    def done(self) -> bool:
        return self.status is not None and self.out.fd < 0 and self.err.fd < 0

    def stop(self) -> None:
        """SIGINT (stress-ng reports its metrics on it), then SIGTERM, then SIGKILL."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.status is not None:
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            end = time.monotonic() + _STOP_GRACE_S
            while self.status is None and time.monotonic() < end:
                self.pump(0.05)
        self._reap(0)
        end = time.monotonic() + _STOP_GRACE_S  # output left in the pipes
        while (self.out.fd >= 0 or self.err.fd >= 0) and time.monotonic() < end:
            self.pump(0.05)
        for s in (self.out, self.err):
            if s.fd >= 0:
                os.close(s.fd)
                s.fd = -1

    def result(self) -> dict[str, Any]:
        """Exit code (or signal), wall and child CPU time, output head/tail and sizes."""
        st = self.status
        out: dict[str, Any] = {"argv": " ".join(self.argv)[:1024], "exit_code": None, "signal": ""}
        if st is not None and st >= 0:
            if os.WIFEXITED(st):
                out["exit_code"] = os.WEXITSTATUS(st)
            elif os.WIFSIGNALED(st):
                out["signal"] = signal.Signals(os.WTERMSIG(st)).name
        out["wall_s"] = round(time.monotonic() - self.started, 3)
        if self.rusage is not None:
            out["cpu_s"] = round(self.rusage.ru_utime + self.rusage.ru_stime, 3)
        out.update(
            stdout=self.out.text(),
            stderr=self.err.text(),
            stdout_bytes=self.out.total,
            stderr_bytes=self.err.total,
        )
        return out


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if v == v and abs(v) != float("inf") else None


def _stress_ng(text: str) -> dict[str, Any]:
    """``--metrics-brief`` rows: ``... [pid] <stressor> <bogo ops> <real> <usr> <sys> <ops/s> ...``."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        _, sep, rest = line.partition("] ")
        words = rest.split()
        if not sep or len(words) < 6 or not words[1].isdigit():
            continue
        figs = [_number(w) for w in words[1:7]]
        if any(f is None for f in figs[:5]):
            continue
        out[words[0][:64]] = {
            "bogo_ops": int(words[1]),
            "real_s": figs[1],
            "usr_s": figs[2],
            "sys_s": figs[3],
            "bogo_ops_per_s": figs[4],
        }
        if len(out) >= _METRICS_CAP:
            break
    return out


def _key_values(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.splitlines():
        for sep in (":", "="):
            k, s, v = line.partition(sep)
            num = _number(v.strip()) if s else None
            if num is not None and k.strip() and len(k.strip()) <= 64:
                out[k.strip()] = num
                break
        if len(out) >= _METRICS_CAP:
            break
    return out


def _last_json(text: str) -> dict[str, Any]:
    import json  # json pulls in re: only workers that parse JSON pay for it

    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict):
                return dict(list(v.items())[:_METRICS_CAP])
    return {}


def extract_metrics(how: str, stdout: str, stderr: str) -> dict[str, Any]:
    """Figures from a program's output.

    :param how: ``none``; ``json`` (the last line of stdout that is a JSON object);
        ``kv`` (``name: number`` / ``name=number`` lines of stdout); ``stress-ng``
        (``--metrics-brief`` rows, on stderr or stdout, per stressor).
    """
    if how == "json":
        return _last_json(stdout)
    if how == "kv":
        return _key_values(stdout)
    if how == "stress-ng":
        return _stress_ng(stderr) or _stress_ng(stdout)
    return {}


def _units(metrics: dict[str, Any], exit_code: Any) -> int:
    ops = [v["bogo_ops"] for v in metrics.values() if isinstance(v, dict) and "bogo_ops" in v]
    ops += [int(v) for k, v in metrics.items() if k.endswith("ops") and isinstance(v, (int, float))]
    if ops:
        return max(0, int(sum(ops)))
    return 1 if exit_code == 0 else 0


def _run_program(ctl: Ctl, argv: list[str], how: str) -> None:
    # A wrapper calls a work type once per step phase: the program runs once, in the first
    # call; later calls of the same worker (its "state" carries on) wait for their end.
    state = ctl.args.get("state")
    if isinstance(state, dict) and state.get("program"):
        while ctl.running():
            ctl.lib.sl_sleep_until(ctl.m, ctl.deadline())
        return
    if isinstance(state, dict):
        state["program"] = True
    prog = Program(argv)
    try:
        while ctl.running() and not prog.done:
            prog.pump(0.05)
    finally:
        prog.stop()
    res = prog.result()
    res["metrics"] = extract_metrics(how, res["stdout"], res["stderr"])
    ctl.extra.update(res)
    ctl.unit(_units(res["metrics"], res["exit_code"]))
    while ctl.running():  # the program ended early: the worker's time runs out idle
        ctl.lib.sl_sleep_until(ctl.m, ctl.deadline())


def _split(text: str) -> list[str]:
    import shlex  # only payload workers need it

    return shlex.split(text)


@kind("payload")
def _payload(ctl: Ctl, p: dict[str, Any]) -> None:
    """A program sent with the run's inputs, run for the worker's time."""
    argv = [p["name"], *_split(p["args"])]
    dur = ctl.args.get("duration_s")
    if p["name"] == "stress-ng" and dur is not None and not {"-t", "--timeout"} & set(argv):
        argv += ["--timeout", f"{max(1, round(float(dur)))}s"]
    _run_program(ctl, argv, p["metrics"])


@kind("custom")
def _custom(ctl: Ctl, p: dict[str, Any]) -> None:
    """A Python callable (``module:function``) or an external command."""
    if bool(p["callable"]) == bool(p["command"]):
        raise ValueError("custom: give exactly one of callable (module:function) or command")
    if p["command"]:
        _run_program(ctl, _split(p["command"]), p["metrics"])
        return
    import importlib
    import sys

    mod, _, fn = p["callable"].partition(":")
    if not mod or not fn:
        raise ValueError(f"custom: callable {p['callable'][:80]!r} is not module:function")
    include = f"{INPUTS_DIR}/include"
    if include not in sys.path:
        sys.path.insert(0, include)
    out = getattr(importlib.import_module(mod), fn)(ctl)
    if isinstance(out, dict):
        ctl.extra["result"] = out
