"""run_foreground: the child runs in its own session; Ctrl-C is forwarded, nothing outlives us."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from orchestrator.foreground import python_module, run_foreground
from tests.framework.schedlab_cli import ROOT

# A child that reports the signal it got, then exits 0 (as monitor_proc does on SIGINT).
_CHILD = textwrap.dedent("""
    import signal, sys, time
    def stop(sig, _f):
        print(f"child got {signal.Signals(sig).name}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print("child ready", flush=True)
    time.sleep(60)
""")


def _parent(child_src: str, stop_wait_s: float = 10.0) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys
        from orchestrator.foreground import run_foreground
        sys.exit(run_foreground([sys.executable, "-c", {child_src!r}], stop_wait_s={stop_wait_s}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )


def test_the_child_s_exit_status_is_returned():
    assert run_foreground([sys.executable, "-c", "raise SystemExit(4)"]) == 4
    assert run_foreground(python_module("json.tool", "--help")) == 0


def test_ctrl_c_is_forwarded_and_the_command_ends_interrupted():
    parent = _parent(_CHILD)
    assert parent.stdout.readline().strip() == "child ready"
    parent.send_signal(signal.SIGINT)  # what the terminal's Ctrl-C does to our process group
    out, _ = parent.communicate(timeout=20)
    assert out.strip() == "child got SIGINT" and parent.returncode == 130


def test_sigterm_is_forwarded_too():
    parent = _parent(_CHILD)
    assert parent.stdout.readline().strip() == "child ready"
    parent.terminate()
    out, _ = parent.communicate(timeout=20)
    assert out.strip() == "child got SIGINT" and parent.returncode == 130


def test_a_child_that_ignores_the_signal_is_killed_after_the_wait():
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('child ready', flush=True)\ntime.sleep(60)"
    parent = _parent(stubborn, stop_wait_s=0.5)
    assert parent.stdout.readline().strip() == "child ready"
    t0 = time.monotonic()
    parent.send_signal(signal.SIGINT)
    parent.communicate(timeout=20)
    assert parent.returncode == 130 and time.monotonic() - t0 < 10
    probe = subprocess.run(["pgrep", "-f", "signal.SIG_IGN"], capture_output=True, text=True)
    assert probe.stdout.strip() == "", "the stubborn child outlived its parent"
