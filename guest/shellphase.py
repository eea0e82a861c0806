"""The shell phase: a command in place of the scenario, relayed over the shell port.

``schedlab shell`` (interactive: busybox's ``sh`` on a pty) and ``schedlab shell --exec
CMD`` (``sh -c CMD`` on pipes, stdout and stderr apart) run here, after the scheduler phase,
so the command finds the scheduler under test attached. Bytes travel in
:mod:`guest.wire` frames on their own virtio-console port (:data:`~guest.wire.SHELL_PORT_NAME`),
never the UART: SHELL_READY, SHELL_OUT/SHELL_ERR, SHELL_EXIT to the host; SHELL_IN,
SHELL_EOF, SHELL_WINCH, SHELL_SIGNAL from it. A pty makes Ctrl-C a byte the line discipline
turns into SIGINT for the guest's foreground job, and gives busybox's shell job control.

The session ends when the command exits (its output drained, bounded) or the host asks the
guest to stop (``stop``): then its process group gets SIGHUP, SIGKILL a second later.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
import time

from guest import boot, wire
from guest.channels import BulkChannel
from guest.rundoc import BUSYBOX, INPUTS_DIR
from guest.rundoc import BUSYBOX_APPLETS_FILE as APPLETS_FILE
from guest.wire import FrameType

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    import threading

    from guest.env import Env
    from guest.reporter import Reporter
    from guest.rundoc import Session

__all__ = (
    "APPLETS_FILE",
    "BUSYBOX",
    "INCLUDE_DIR",
    "SHELL_ENV_FILE",
    "ShellError",
    "ShellPhase",
    "exit_words",
    "shell_env",
)

APPLET_DIR = "/usr/local/bin"
#: Where ``-i FILE`` shows up (the transfer installs it under ``INPUTS_DIR/include``).
INCLUDE_DIR = "/include-files"
#: Sourced by the shell: busybox's sh runs its own applets before PATH (a "standalone"
#: build), so an included executable named like an applet (xz, top) gets a function.
SHELL_ENV_FILE = "/etc/schedlab-shell.sh"
_PATH = f"{INCLUDE_DIR}:/usr/local/sbin:{APPLET_DIR}:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_PENDING_IN = 256 << 10  # host bytes held for the command's stdin before the port waits
_DRAIN_S = 2.0  # after the command exits: output still in flight (a background job may hold it)
_KILL_GRACE_S = 1.0
_SIGDEF = (
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE,
    signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
)  # fmt: skip


class ShellError(Exception):
    """The session could not start (no shell port, no pty, no such command)."""


def shell_env(root: str, session: Session) -> dict[str, str]:
    """The command's environment: busybox's applets and ``-i`` files on PATH, the
    transferred libraries on LD_LIBRARY_PATH."""
    env = {"PATH": _PATH, "HOME": "/root", "SHELL": "/bin/sh", "PS1": "schedlab:\\w# "}
    env["ENV"] = SHELL_ENV_FILE  # read by an interactive sh
    env["TERM"] = session.term or ("xterm" if session.tty else "dumb")
    if os.path.isdir(os.path.join(root, INPUTS_DIR.lstrip("/"), "lib")):
        env["LD_LIBRARY_PATH"] = f"{INPUTS_DIR}/lib"
    return env


def exit_words(code: int, sig: int) -> str:
    """``exited 3`` / ``killed by SIGKILL``."""
    if sig:
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exited {code}"


def _identifier(name: str) -> bool:
    """A name sh accepts for a function."""
    return bool(name) and not name[0].isdigit() and all(c.isalnum() or c == "_" for c in name)


def _prepare_root(env: Env) -> None:
    """busybox's applets linked into APPLET_DIR, ``/include-files``, ``/root``, devpts, and
    :data:`SHELL_ENV_FILE`."""
    root = env.root
    applets = os.path.join(root, APPLETS_FILE.lstrip("/"))
    bindir = os.path.join(root, APPLET_DIR.lstrip("/"))
    os.makedirs(bindir, exist_ok=True)
    try:
        with open(applets) as f:
            names = f.read().split()
    except OSError:
        names = []
    for name in names:
        if "/" in name or name in (".", ".."):
            continue
        if not any(os.path.lexists(os.path.join(root, d, name)) for d in ("usr/bin", "usr/sbin")):
            try:
                os.symlink(BUSYBOX, os.path.join(bindir, name))
            except FileExistsError:
                pass
    include = os.path.join(root, INCLUDE_DIR.lstrip("/"))
    target = f"{INPUTS_DIR}/include"
    installed = os.path.join(root, target.lstrip("/"))
    if not os.path.lexists(include):
        if os.path.isdir(installed):
            os.symlink(target, include)
        else:
            os.makedirs(include, exist_ok=True)
    applet_names = set(names)
    lines = [
        f'{n}() {{ {INCLUDE_DIR}/{n} "$@"; }}\n'
        for n in (sorted(os.listdir(installed)) if os.path.isdir(installed) else [])
        if n in applet_names and os.access(os.path.join(installed, n), os.X_OK)
    ]  # only identifiers below: sh refuses other function names
    etc = os.path.join(root, SHELL_ENV_FILE.lstrip("/"))
    os.makedirs(os.path.dirname(etc), exist_ok=True)
    with open(etc, "w") as f:
        f.write("# schedlab shell: included executables before busybox's applets\n")
        f.writelines(ln for ln in lines if _identifier(ln.split("(")[0]))
    os.makedirs(os.path.join(root, "root"), exist_ok=True)
    pts = os.path.join(root, "dev/pts")
    if not os.path.exists(os.path.join(pts, "ptmx")):
        os.makedirs(pts, exist_ok=True)
        env.system.mount("devpts", pts, "devpts")


def _which(root: str, name: str, path: str) -> str:
    """``name`` looked up on ``path`` (a name with a ``/`` as is); ENOENT if nowhere."""
    if "/" in name:
        return name
    for d in path.split(":"):
        cand = os.path.join(d, name)
        if os.access(os.path.join(root, cand.lstrip("/")), os.X_OK):
            return cand
    raise FileNotFoundError(errno.ENOENT, "not found on PATH", name)


class ShellPhase:
    """One shell or exec session on the shell port.

    :param env: the init's environment.
    :param out: the reporter (COM2 notes).
    :param session: the run document's ``session``.
    :param stop: set when the host asks the guest to stop (or the scheduler exited).
    """

    def __init__(self, env: Env, out: Reporter, session: Session, stop: threading.Event) -> None:
        self.env = env
        self.out = out
        self.session = session
        self.stop = stop
        self.port: BulkChannel | None = None
        self.pid = 0
        self._fds: dict[int, FrameType] = {}  # output fd -> its frame type
        self._stdin = -1  # where host bytes go (the pty master, or the stdin pipe)
        self._master = -1
        self._pending = b""
        self._eof = False
        self._decoder = wire.FrameDecoder(
            max_frame=wire.SHELL_CHUNK + 64, accept=wire.SHELL_TO_GUEST
        )

    # -- setup -------------------------------------------------------------------------

    def open(self) -> None:
        """Find and open the shell port, prepare the root, start the command.

        :raises ShellError: one line.
        """
        dev = boot.find_bulk_port(self.env.root, self.env.bulk_timeout_s, wire.SHELL_PORT_NAME)
        if dev is None:
            raise ShellError(f"no virtio-serial port named {wire.SHELL_PORT_NAME}")
        try:
            fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as e:
            raise ShellError(f"{dev}: {e.strerror}") from None
        self.port = BulkChannel(fd, self.out.com2)
        try:
            _prepare_root(self.env)
        except OSError as e:
            raise ShellError(f"preparing the guest for the shell: {e}") from None
        argv = list(self.session.argv) or ["sh"]
        if len(argv) == 3 and argv[:2] == ["sh", "-c"]:  # a non-interactive sh reads no ENV
            argv[2] = f". {SHELL_ENV_FILE}\n{argv[2]}"
        try:
            self._spawn(argv, shell_env(self.env.root, self.session))
        except OSError as e:
            raise ShellError(f"cannot run {argv[0]!r}: {e.strerror or e}") from None
        self.port.send(FrameType.SHELL_READY, {"pid": self.pid, "tty": bool(self.session.tty)})

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        if self.session.tty:
            master, slave = os.openpty()
            try:
                self._winch(master, self.session.rows, self.session.cols)
                actions = [
                    (os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),  # the ctty
                    (os.POSIX_SPAWN_DUP2, 0, 1),
                    (os.POSIX_SPAWN_DUP2, 0, 2),
                ]
                self.pid = self._posix_spawn(argv, env, actions)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self._master = self._stdin = master
            self._fds[master] = FrameType.SHELL_OUT
            return
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        try:
            self.pid = self._posix_spawn(argv, env, actions)
        except BaseException:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        os.set_blocking(in_w, False)
        self._stdin = in_w
        self._fds[out_r] = FrameType.SHELL_OUT
        self._fds[err_r] = FrameType.SHELL_ERR

    def _posix_spawn(self, argv: list[str], env: dict[str, str], actions: list) -> int:  # noqa: ANN401
        # posix_spawnp would search this process's PATH, not the command's.
        path = _which(self.env.root, argv[0], env["PATH"])
        return os.posix_spawn(
            path, argv, env, file_actions=actions, setsid=True, setsigdef=_SIGDEF,
            setsigmask=(),
        )  # fmt: skip

    # -- the relay ---------------------------------------------------------------------

    def run(self) -> tuple[int, int]:
        """Relay until the command exited and its output is drained; send SHELL_EXIT.

        :return: ``(exit code or -1, killing signal or 0)``.
        """
        assert self.port is not None
        status: int | None = None
        drain_until = 0.0
        kill_at = 0.0
        poller = select.poll()
        polled: dict[int, int] = {}
        while True:
            if status is None:
                status = self._reap()
                if status is not None:
                    drain_until = time.monotonic() + _DRAIN_S
            if status is not None and (not self._fds or time.monotonic() > drain_until):
                break
            if self.stop.is_set() and status is None:
                kill_at = self._hangup(kill_at)
            want = self._want()
            for fd in set(polled) - set(want):
                poller.unregister(fd)
                del polled[fd]
            for fd, ev in want.items():
                if polled.get(fd) != ev:
                    poller.register(fd, ev)
                    polled[fd] = ev
            for fd, ev in poller.poll(50 if status is not None else 200):
                self._ready(fd, ev)
        for fd in list(self._fds):
            self._close_out(fd)
        self._close_stdin()
        code, sig = self._split(status)
        self.port.send(FrameType.SHELL_EXIT, {"code": code, "signal": sig})
        return code, sig

    def _want(self) -> dict[int, int]:
        assert self.port is not None
        want = {fd: select.POLLIN for fd in self._fds}
        if len(self._pending) < _MAX_PENDING_IN:  # else the host waits: bounded memory
            want[self.port.fd] = select.POLLIN
        if self._pending and self._stdin >= 0:
            want[self._stdin] = want.get(self._stdin, 0) | select.POLLOUT
        return want

    def _ready(self, fd: int, ev: int) -> None:
        assert self.port is not None
        if fd == self.port.fd:
            self._from_host()
            return
        if ev & select.POLLOUT and fd == self._stdin:
            self._to_stdin()
        if fd in self._fds and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = os.read(fd, wire.SHELL_CHUNK)
            except OSError:  # EIO: the pty's last slave fd closed
                data = b""
            if data:
                self.port.send(self._fds[fd], {"data": data})
            else:
                self._close_out(fd)

    def _from_host(self) -> None:
        assert self.port is not None
        try:
            data = os.read(self.port.fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.out.com2.line(f"shell port read failed: {e.strerror}")
            time.sleep(0.05)
            return
        if not data:  # the host side is not connected: virtio-serial reads 0
            time.sleep(0.05)
            return
        for frame in self._decoder.feed(data):
            p = frame.payload
            if frame.type is FrameType.SHELL_IN:
                self._pending += p["data"]
                self._to_stdin()
            elif frame.type is FrameType.SHELL_EOF:
                self._eof = True
                self._to_stdin()
            elif frame.type is FrameType.SHELL_WINCH and self._master >= 0:
                self._winch(self._master, p["rows"], p["cols"])
            elif frame.type is FrameType.SHELL_SIGNAL and self.pid:
                try:
                    os.killpg(self.pid, p["signal"])
                except (ProcessLookupError, PermissionError):
                    pass

    def _to_stdin(self) -> None:
        if self._stdin < 0:
            self._pending = b""
            return
        try:
            while self._pending:
                n = os.write(self._stdin, self._pending[:65536])
                self._pending = self._pending[n:]
        except BlockingIOError:
            return
        except OSError:  # the command closed its stdin (EPIPE): what is left goes nowhere
            self._pending = b""
            self._close_stdin()
            return
        if self._eof and not self._pending:
            if self._master >= 0:  # a pty has no half close: the line discipline's EOF
                eof = termios.tcgetattr(self._master)[6][termios.VEOF]
                os.write(self._master, eof if isinstance(eof, bytes) else bytes([eof]))
                self._eof = False
            else:
                self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin >= 0 and self._stdin != self._master:
            os.close(self._stdin)
        if self._stdin != self._master:
            self._stdin = -1

    def _close_out(self, fd: int) -> None:
        if self._fds.pop(fd, None) is not None:
            if fd == self._master:
                self._stdin = -1
                self._master = -1
            os.close(fd)

    @staticmethod
    def _winch(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _reap(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        return status if pid == self.pid else None

    def _hangup(self, kill_at: float) -> float:
        """The host asked to stop: SIGHUP the command's group, SIGKILL it a moment later."""
        now = time.monotonic()
        if kill_at and now < kill_at:
            return kill_at
        sig = signal.SIGKILL if kill_at else signal.SIGHUP
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        return now + _KILL_GRACE_S if not kill_at else now + 3600

    @staticmethod
    def _split(status: int | None) -> tuple[int, int]:
        if status is None:
            return -1, 0
        if os.WIFSIGNALED(status):
            return -1, os.WTERMSIG(status)
        return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1), 0

    def close(self) -> None:
        """Kill what is left of the command's group, close the port (never raises)."""
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except OSError:
                pass
        for fd in list(self._fds):
            self._close_out(fd)
        self._close_stdin()
        if self.port is not None:
            self.port.close()
