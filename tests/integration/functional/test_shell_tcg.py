"""Tier 3: ``schedlab shell`` under QEMU TCG, by script (``--exec``) and by hand (tmux).

Each test is one boot with several checks; each ends with nothing left behind.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedlab_shared import run_layout
from tests.framework.prereq import require_tool
from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, leftovers

pytestmark = pytest.mark.slow

TEN_MB = 10 << 20


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    return default_kernel_or_skip()


def _runtime_dirs() -> set[str]:
    return {p for p in os.listdir("/tmp") if p.startswith("schedlab-run-")}


def _shell(args: list[str], run_dir: Path, stdin: bytes | None = b"", timeout: float = 400):
    """Run ``schedlab shell --engine qemu ARGS`` with pipes only (no TTY anywhere)."""
    before = _runtime_dirs()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "shell", "--engine", "qemu",
         "--run-dir", str(run_dir), *args],
        cwd=ROOT, input=stdin, capture_output=True, timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )  # fmt: skip
    result = json.loads((run_dir / "result.json").read_text())
    assert leftovers(result["run_id"]) == []
    assert _runtime_dirs() - before == set()
    return proc, result


def test_exec_pipes_stdin_through_and_keeps_stdout_stderr_and_status(kernel, tmp_path: Path):
    proc, result = _shell(
        ["--exec", "cat; echo to-stderr >&2; exit 3"], tmp_path / "run", stdin=b"piped-in-7\n"
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 3, err[-2000:]
    assert proc.stdout == b"piped-in-7\n"
    assert "to-stderr" in err and "piped-in-7" not in err
    assert "Traceback" not in err
    assert result["verdict"] == "passed"
    assert (tmp_path / "run" / "shell.raw").stat().st_size > 0  # the session's own log


def test_exec_under_a_scheduler_reports_a_killing_signal_and_streams_dmesg(kernel, tmp_path):
    proc, result = _shell(
        ["--scheduler", "scx_simple", "--dmesg", "--exec",
         "cat /sys/kernel/sched_ext/root/ops; kill -KILL $$"],
        tmp_path / "run",
    )  # fmt: skip
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 128 + signal.SIGKILL, err[-2000:]
    assert proc.stdout == b"simple\n"
    assert "Linux version" in err  # the kernel console, live on stderr
    assert result["scheduler"]["attached"] is True
    assert (tmp_path / "run" / "sched.log").exists()


def test_include_runs_a_dynamic_binary_and_10mb_arrive_complete(kernel, tmp_path: Path):
    xz = require_tool("xz", "xz-utils: a dynamically linked binary with its own library")
    proc, result = _shell(
        ["-i", xz, "--exec",
         f"xz --version | head -n 1; up() {{ cut -d' ' -f1 /proc/uptime >&2; }}; up;"
         f" head -c {TEN_MB} /dev/zero | tr '\\0' a >/dev/null; up;"
         f" head -c {TEN_MB} /dev/zero | tr '\\0' a; up; ls /include-files"],
        tmp_path / "run",
    )  # fmt: skip
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-2000:]
    head, _, rest = proc.stdout.partition(b"\n")
    assert head.startswith(b"xz (XZ Utils)")
    assert rest == b"a" * TEN_MB + b"xz\n"
    libs = [f["name"] for f in result["inputs"]["files"] if f["kind"] == "lib"]
    assert any(n.startswith("liblzma") for n in libs), libs
    # The guest's clock: making 10 MiB into /dev/null, then the same through the shell port
    # (its writes wait for the host); the difference is the relay's own cost.
    marks = [float(x) for x in re.findall(r"^(\d+\.\d\d)$", err, re.M)]
    assert len(marks) == 3, err[-2000:]
    make, relay = max(0.01, marks[1] - marks[0]), max(0.01, marks[2] - marks[1])
    print(
        f"\nshell --exec stdout: {TEN_MB / (1 << 20) / relay:.1f} MiB/s ({relay:.2f} s for"
        f" 10 MiB; making them into /dev/null alone took {make:.2f} s under TCG)"
    )


def _pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-pt", session, "-S", "-200"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _wait_pane(session: str, pattern: str, timeout: float, after: int = 0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _pane(session)
        if re.search(pattern, text[after:] if after else text, re.M):
            return text
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} did not show in time:\n{_pane(session)[-3000:]}")


def test_interactive_shell_in_tmux(kernel, tmp_path: Path) -> None:
    require_tool("tmux", "tmux drives the interactive session (apt-get install tmux)")
    run_dir = tmp_path / "run"
    script = tmp_path / "session.sh"
    script.write_text(
        f"cd {ROOT}\n"
        f"stty -g > {tmp_path}/before\n"  # -a wraps at the pane width, which may change
        f"{sys.executable} -m orchestrator.cli shell --engine qemu --run-dir {run_dir}\n"
        f"echo RC=$?\n"
        f"stty -g > {tmp_path}/after\n"
        "sleep 600\n"
    )
    name = f"schedlab-shell-{os.getpid()}"
    before = _runtime_dirs()
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", "bash", str(script)],
        check=True,
    )
    try:
        _wait_pane(name, r"^schedlab:/#\s*$", 240)
        subprocess.run(["tmux", "send-keys", "-t", name, "echo $((6*7)); stty size", "Enter"])
        _wait_pane(name, r"^42\n30 100$", 30)
        subprocess.run(["tmux", "send-keys", "-t", name, "sleep 60", "Enter"])
        time.sleep(1.5)
        subprocess.run(["tmux", "send-keys", "-t", name, "C-c"])
        subprocess.run(["tmux", "send-keys", "-t", name, "echo alive-$((1+1))", "Enter"])
        _wait_pane(name, r"^alive-2$", 15)  # Ctrl-C ended the sleep, not the VM
        subprocess.run(["tmux", "send-keys", "-t", name, "C-a", "x"])
        text = _wait_pane(name, r"^RC=\d+", 60)
        assert "RC=0" in text, text[-2000:]
        assert "left the shell" in text
        _wait_pane(name, r".", 1)
        deadline = time.monotonic() + 10
        while not (tmp_path / "after").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    result = json.loads((run_dir / "result.json").read_text())
    assert leftovers(result["run_id"]) == []
    assert _runtime_dirs() - before == set()


def test_a_shell_killed_from_outside_leaves_nothing(kernel, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    before = _runtime_dirs()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "shell", "--engine", "qemu",
         "--run-dir", str(run_dir), "--exec", "sleep 300"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        shell_log = run_dir / "shell.raw"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
            shell_log.exists() and shell_log.stat().st_size > 0
        ):
            time.sleep(0.3)
        assert shell_log.exists(), "the guest's shell never started"
        run_id = json.loads((run_dir / "vm-config.json").read_text())["run_id"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and (leftovers(run_id) or _runtime_dirs() - before):
        time.sleep(0.5)
    assert leftovers(run_id) == []
    assert _runtime_dirs() - before == set()
    assert not (run_dir / run_layout.ENDPOINTS).exists()


# --exec and Ctrl-C: the first one is the guest command's; the trap shows it arrived there,
# then the command dies of it (130) and the VM shuts down as after any exit.
_TRAPPING = "trap 'echo got-INT; trap - INT; kill -INT $$' INT; echo started; sleep 300"


def _read_until(fd: int, want: bytes, timeout: float) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    return got


def test_exec_sigint_without_a_tty_reaches_the_command_and_ends_with_130(kernel, tmp_path):
    run_dir = tmp_path / "run"
    before = _runtime_dirs()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "shell", "--engine", "qemu",
         "--run-dir", str(run_dir), "--exec", _TRAPPING],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        out = _read_until(proc.stdout.fileno(), b"started\n", 240)
        assert out == b"started\n", out
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err_text = err.decode(errors="replace")
    assert proc.returncode == 130, err_text[-2000:]
    assert out + rest == b"started\ngot-INT\n"
    assert "interrupted; the VM was stopped" not in err_text  # the command's 130, not ours
    assert "Traceback" not in err_text
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] == "passed"  # the guest reported and powered off cleanly
    assert leftovers(result["run_id"]) == []
    assert _runtime_dirs() - before == set()
    print(f"\nSIGINT to exit: {took:.2f} s (the VM's shutdown included)")


def _start_tmux(name: str, script: Path) -> str:
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", "bash", str(script)],
        check=True,
    )
    return subprocess.run(
        ["tmux", "display-message", "-p", "-t", name, "#{pane_tty}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def _wait_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path.read_text()


def test_exec_ctrl_c_on_a_terminal_is_the_commands(kernel, tmp_path: Path) -> None:
    require_tool("tmux", "tmux gives the session a terminal (apt-get install tmux)")
    run_dir = tmp_path / "run"
    script = tmp_path / "session.sh"
    script.write_text(
        f"cd {ROOT}\n"
        f"stty -g > {tmp_path}/before\n"
        f"{sys.executable} -m orchestrator.cli shell --engine qemu --run-dir {run_dir}"
        f" --exec {shlex.quote(_TRAPPING)}\n"  # $$ is the guest's, not this bash's
        "echo RC=$?\n"
        f"stty -g > {tmp_path}/after\n"
        "sleep 600\n"
    )
    name = f"schedlab-shell-int-{os.getpid()}"
    before = _runtime_dirs()
    _start_tmux(name, script)
    try:
        _wait_pane(name, r"^started$", 240)
        subprocess.run(["tmux", "send-keys", "-t", name, "C-c"], check=True)
        text = _wait_pane(name, r"^RC=\d+", 60)
        assert "RC=130" in text, text[-2000:]
        assert re.search(r"^(\^C)?got-INT$", text, re.M), text[-2000:]
        assert "interrupted; the VM was stopped" not in text
        assert _wait_file(tmp_path / "after", 10) == (tmp_path / "before").read_text()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] == "passed"
    assert leftovers(result["run_id"]) == []
    assert _runtime_dirs() - before == set()


def test_a_sigkilled_interactive_shell_leaves_the_terminal_as_it_was(kernel, tmp_path) -> None:
    require_tool("tmux", "tmux drives the interactive session (apt-get install tmux)")
    run_dir = tmp_path / "run"
    pid_file = tmp_path / "pid"
    script = tmp_path / "session.sh"
    script.write_text(
        f"cd {ROOT}\n"
        f"stty -g > {tmp_path}/before\n"
        f'sh -c \'echo $$ > {pid_file}; exec "$0" "$@"\' {sys.executable} -m orchestrator.cli'
        f" shell --engine qemu --run-dir {run_dir}\n"
        "echo RC=$?\n"
        "sleep 1\n"  # the watcher restores within moments of the kill, not before bash's next line
        f"stty -g > {tmp_path}/after\n"
        "sleep 600\n"
    )
    name = f"schedlab-shell-kill-{os.getpid()}"
    before = _runtime_dirs()
    pane_tty = _start_tmux(name, script)
    try:
        _wait_pane(name, r"^schedlab:/#\s*$", 240)
        saved = (tmp_path / "before").read_text().strip()
        during = subprocess.run(
            ["stty", "-g", "-F", pane_tty], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert during != saved  # raw: what the kill would leave behind without the watcher
        run_id = json.loads((run_dir / "vm-config.json").read_text())["run_id"]
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        # bash may print this before the watcher ran (both wake at the kill): maybe raw, so
        # no carriage return and not at a line's start
        text = _wait_pane(name, r"RC=\d+", 30)
        assert "RC=137" in text, text[-2000:]
        assert _wait_file(tmp_path / "after", 10).strip() == saved
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and (leftovers(run_id) or _runtime_dirs() - before):
        time.sleep(0.5)
    assert leftovers(run_id) == []
    assert _runtime_dirs() - before == set()
