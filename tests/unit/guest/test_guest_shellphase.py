"""The guest's shell phase on the host: a real command on pipes or a pty, the port a socket."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from guest import wire
from guest.channels import Com2
from guest.env import Env
from guest.rundoc import Session
from guest.shellphase import ShellPhase, exit_words, shell_env
from guest.wire import FrameType


class _Out:
    def __init__(self, tmp: Path) -> None:
        self.com2 = Com2(str(tmp / "com2"))


def _phase(tmp: Path, session: Session, stop: threading.Event | None = None):
    from guest.channels import BulkChannel

    guest_end, host_end = socket.socketpair()
    env = Env(system=None, root=str(tmp), pid1=False)
    phase = ShellPhase(env, _Out(tmp), session, stop or threading.Event())
    phase.port = BulkChannel(os.dup(guest_end.fileno()), phase.out.com2)
    guest_end.close()
    return phase, host_end


def _frames(host_end: socket.socket) -> list:
    host_end.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := host_end.recv(65536):
        data += chunk
    dec = wire.FrameDecoder(accept=wire.SHELL_TO_HOST)
    return dec.feed(data) + dec.finish()


def _bytes(frames: list, ftype: FrameType) -> bytes:
    return b"".join(f.payload["data"] for f in frames if f.type is ftype)


def test_exec_on_pipes_keeps_stdout_and_stderr_apart_and_gets_stdin_and_status(tmp_path):
    script = "echo out; echo err >&2; read x; echo got $x; exit 3"
    phase, host = _phase(tmp_path, Session("exec", ("/bin/sh", "-c", script)))
    phase._spawn(list(phase.session.argv), {"PATH": "/usr/bin:/bin"})
    host.sendall(wire.encode_frame(FrameType.SHELL_IN, {"data": b"hi\n"}))
    host.sendall(wire.encode_frame(FrameType.SHELL_EOF, {}))
    assert phase.run() == (3, 0)
    phase.close()
    frames = _frames(host)
    assert _bytes(frames, FrameType.SHELL_OUT) == b"out\ngot hi\n"
    assert _bytes(frames, FrameType.SHELL_ERR) == b"err\n"
    assert frames[-1].type is FrameType.SHELL_EXIT and frames[-1].payload == {
        "code": 3,
        "signal": 0,
    }


def test_a_pty_gets_the_window_size_and_a_killing_signal_is_reported(tmp_path):
    phase, host = _phase(
        tmp_path, Session("shell", ("/bin/sh", "-c", "stty size; kill -KILL $$"), True, 33, 77)
    )
    phase._spawn(list(phase.session.argv), {"PATH": "/usr/bin:/bin"})
    assert phase.run() == (-1, signal.SIGKILL)
    phase.close()
    frames = _frames(host)
    assert b"33 77" in _bytes(frames, FrameType.SHELL_OUT)
    assert exit_words(-1, 9) == "killed by SIGKILL" and exit_words(3, 0) == "exited 3"


def test_hostile_host_bytes_are_bounded_and_ignored(tmp_path):
    phase, host = _phase(tmp_path, Session("exec", ("/bin/sh", "-c", "cat; exit 0")))
    phase._spawn(list(phase.session.argv), {"PATH": "/usr/bin:/bin"})
    host.sendall(os.urandom(5000))
    # a guest -> host type, and a frame bigger than the decoder's cap: both skipped
    host.sendall(wire.encode_frame(FrameType.SHELL_OUT, {"data": b"no"}))
    big = wire.encode_frame(FrameType.SHELL_IN, {"data": b"x" * 1000})
    big = big[:4] + (wire.SHELL_CHUNK + 1000).to_bytes(4, "little") + big[8:]
    host.sendall(big)
    host.sendall(wire.encode_frame(FrameType.SHELL_IN, {"data": b"fine\n"}))
    host.sendall(wire.encode_frame(FrameType.SHELL_EOF, {}))
    assert phase.run() == (0, 0)
    phase.close()
    assert phase._decoder.stats.unknown_type == 1
    assert len(phase._decoder.pending) <= wire.HEADER_SIZE + wire.SHELL_CHUNK + 64
    assert _bytes(_frames(host), FrameType.SHELL_OUT).endswith(b"fine\n")


def test_a_host_interrupt_reaches_the_exec_commands_group(tmp_path):
    # --exec's Ctrl-C: the trap proves the command saw it, then it dies of it (130 on the host)
    script = "trap 'echo got-INT; trap - INT; kill -INT $$' INT; echo started; sleep 30"
    phase, host = _phase(tmp_path, Session("exec", ("/bin/sh", "-c", script)))
    phase._spawn(list(phase.session.argv), {"PATH": "/usr/bin:/bin"})
    threading.Timer(
        0.5, host.sendall, [wire.encode_frame(FrameType.SHELL_SIGNAL, {"signal": 2})]
    ).start()
    assert phase.run() == (-1, signal.SIGINT)
    phase.close()
    assert _bytes(_frames(host), FrameType.SHELL_OUT) == b"started\ngot-INT\n"


def test_a_host_stop_hangs_the_command_up(tmp_path):
    stop = threading.Event()
    phase, host = _phase(tmp_path, Session("exec", ("/bin/sh", "-c", "sleep 30")), stop)
    phase._spawn(list(phase.session.argv), {"PATH": "/usr/bin:/bin"})
    threading.Timer(0.3, stop.set).start()
    assert phase.run() == (-1, signal.SIGHUP)
    phase.close()
    host.close()


def test_the_environment_puts_includes_and_applets_on_path(tmp_path):
    env = shell_env(str(tmp_path), Session("shell", (), True, term="screen"))
    assert env["PATH"].startswith("/include-files:") and "/usr/local/bin" in env["PATH"]
    assert env["TERM"] == "screen" and "LD_LIBRARY_PATH" not in env
    (tmp_path / "run/schedlab/inputs/lib").mkdir(parents=True)
    assert shell_env(str(tmp_path), Session("exec", ("x",)))["LD_LIBRARY_PATH"] == (
        "/run/schedlab/inputs/lib"
    )


@pytest.mark.parametrize(
    ("session", "field"),
    [
        ({"mode": "exec"}, "session.argv"),
        ({"mode": "login"}, "session.mode"),
        ({"mode": "run", "argv": ["x"]}, "session.argv"),
        ({"mode": "shell", "rows": 0}, "session.rows"),
        ({"mode": "shell", "term": "x\x1b[2J"}, "session.term"),
        ({"mode": "exec", "argv": ["a" * 40000]}, "session.argv[0]"),
        ({"mode": "shell", "extra": 1}, "session.extra"),
    ],
)
def test_the_run_document_refuses_a_bad_session(session, field):
    from guest import rundoc
    from guest.spec import RunSpec, SpecError

    doc = rundoc.build(RunSpec("cgroup-spinners"), entropy=bytes(32))
    doc["session"] = session
    with pytest.raises(SpecError) as e:
        rundoc.validate(doc)
    assert e.value.key == field


def test_the_run_document_carries_a_session_both_ways():
    from guest import rundoc
    from guest.spec import RunSpec

    s = Session("exec", ("sh", "-c", "true"), False, 24, 80, "")
    doc = rundoc.build(RunSpec("cgroup-spinners"), entropy=bytes(32), session=s)
    got = rundoc.validate(doc)
    assert got.session == s and got.session.interactive
    assert rundoc.validate(got.as_doc()).session == s
    plain = rundoc.validate(rundoc.build(RunSpec("cgroup-spinners"), entropy=bytes(32)))
    assert plain.session.mode == "run" and not plain.session.interactive


def test_the_root_gets_applets_includes_a_function_file_and_devpts(tmp_path):
    from guest.shellphase import _prepare_root

    (tmp_path / "usr/lib/schedlab").mkdir(parents=True)
    (tmp_path / "usr/lib/schedlab/busybox-applets").write_text("sh\nxz\nls\n../evil\n")
    (tmp_path / "usr/bin").mkdir()
    (tmp_path / "usr/bin/ls").write_text("")  # the image's own: no applet link over it
    inc = tmp_path / "run/schedlab/inputs/include"
    inc.mkdir(parents=True)
    for name, mode in (("xz", 0o755), ("sh", 0o644), ("mine", 0o755)):
        (inc / name).write_text("")
        (inc / name).chmod(mode)
    mounts = []
    system = type("S", (), {"mount": lambda _s, *a: mounts.append(a)})()
    _prepare_root(Env(system=system, root=str(tmp_path), pid1=False))
    assert os.readlink(tmp_path / "usr/local/bin/sh") == "/usr/bin/busybox"
    assert not (tmp_path / "usr/local/bin/ls").exists()
    assert not (tmp_path / "usr/local/evil").exists()
    assert os.readlink(tmp_path / "include-files") == "/run/schedlab/inputs/include"
    env_file = (tmp_path / "etc/schedlab-shell.sh").read_text()
    assert 'xz() { /include-files/xz "$@"; }' in env_file
    assert "sh()" not in env_file and "mine()" not in env_file  # not executable / no applet
    assert mounts == [("devpts", str(tmp_path / "dev/pts"), "devpts")]
