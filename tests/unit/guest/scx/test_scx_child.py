"""guest/scx/child.py with real processes: pipes, pidfd exit, status, reaping by others."""

import os
import signal
import sys
import time

import pytest

from guest.scx.child import Child, describe_status


def read_all(fd):
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out


def py(code):
    return [sys.executable, ["-c", code]]


def spawn_py(code, env=None):
    exe, args = py(code)
    return Child.spawn(exe, args, env)


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def test_output_pipes_and_exit_status():
    c = spawn_py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    assert read_all(c.fds["stdout"]) == b"out\n"
    assert read_all(c.fds["stderr"]) == b"err\n"
    assert c.exited(5)
    assert c.reap() == "exited 3" == c.status
    assert c.reap() == "exited 3"  # idempotent
    c.close()


def test_signal_goes_through_the_pidfd():
    c = spawn_py("import time; time.sleep(60)")
    assert not c.exited(0.05)
    assert c.reap() == ""  # still running
    assert c.signal(signal.SIGTERM)
    assert c.exited(5)
    assert c.reap() == "killed by SIGTERM"
    assert not c.signal(signal.SIGTERM)  # gone: nothing is signalled
    c.close()


def test_status_when_pid1s_reaper_was_faster():
    c = spawn_py("import sys; sys.exit(7)")
    assert c.exited(5)
    pid, raw = os.waitpid(c.pid, 0)  # PID 1's waitpid(-1) loop takes it first
    assert not c.signal(signal.SIGINT)
    assert not c.claim(pid + 1, raw)
    assert c.claim(pid, raw)
    assert c.reap() == "exited 7"
    c2 = spawn_py("pass")
    assert c2.exited(5)
    os.waitpid(c2.pid, 0)
    assert c2.reap() == "unknown (reaped elsewhere)"
    for ch in (c, c2):
        for fd in ch.fds.values():
            os.close(fd)
        ch.close()


def test_child_gets_default_signals_null_stdin_and_own_session():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as if PID 1 ignored SIGINT
    try:
        c = Child.spawn(
            "/bin/sh",
            [
                "-c",
                "read x; echo \"read=$?\"; cut -d' ' -f6 /proc/$$/stat; exec grep SigIgn /proc/self/status",
            ],
        )
    finally:
        signal.signal(signal.SIGINT, old)
    out = read_all(c.fds["stdout"]).decode().split("\n")
    os.close(c.fds["stderr"])
    assert out[0] == "read=1"  # stdin is /dev/null: EOF at once
    assert int(out[1].strip()) == c.pid  # a session of its own
    sigign = int(out[2].split()[1], 16)
    assert not sigign & (1 << (signal.SIGINT - 1)) and not sigign & (1 << (signal.SIGPIPE - 1))
    assert c.exited(5) and c.reap() == "exited 0"
    c.close()


def test_environment_is_the_given_one():
    c = spawn_py("import os; print(sorted(os.environ.items()))", env={"A": "1", "PATH": "/bin"})
    out = read_all(c.fds["stdout"]).decode()
    os.close(c.fds["stderr"])
    got = dict(eval(out))
    got.pop("LC_CTYPE", None)  # PEP 538: the child's own Python may add it
    assert got == {"A": "1", "PATH": "/bin"}
    c.exited(5)
    c.reap()
    c.close()


@pytest.mark.parametrize("make", ["missing", "not_executable"])
def test_spawn_failure_raises_and_leaks_nothing(tmp_path, make):
    path = tmp_path / "sched"
    if make == "not_executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    before = open_fds()
    with pytest.raises(OSError):
        Child.spawn(str(path), [])
    time.sleep(0.01)
    assert open_fds() == before


def test_describe_status():
    assert describe_status(0) == "exited 0"
    assert describe_status(1 << 8) == "exited 1"
    assert describe_status(signal.SIGKILL) == "killed by SIGKILL"
    assert describe_status(signal.SIGSEGV | 0x80) == "killed by SIGSEGV (core dumped)"
