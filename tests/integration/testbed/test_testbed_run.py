"""The testbed end to end: real QEMU TCG L1 with kvm_amd, the host tree shared over 9p.

Each test boots L1 (about 7-10 s here). Marked slow + testbed.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.testbed.l1kernel import L1KernelError, ensure_l1_kernel
from orchestrator.testbed.l1kernel import testbed_dir as _testbed_dir
from orchestrator.testbed.run import TestbedError, prune_stale_jobs, run_in_testbed
from schedlab_shared.cache import cache_root
from tests.framework.prereq import require

pytestmark = [pytest.mark.slow, pytest.mark.testbed]

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def l1_ready():
    require(
        shutil.which("qemu-system-x86_64") is not None,
        "qemu-system-x86_64 missing (apt-get install qemu-system-x86)",
    )
    require(Path("/bin/busybox").is_file(), "/bin/busybox missing (apt-get install busybox-static)")
    try:
        ensure_l1_kernel()
    except L1KernelError as exc:
        require(False, f"L1 kernel unavailable: {exc}")


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # pytest's tmp dirs live under /tmp, which L1 hides


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _leftovers():
    """Job dirs and logs of this process's runs (other processes may use the testbed too)."""
    base, mine = _testbed_dir(), f"-{os.getpid()}-"
    return {
        p.name
        for d in ("jobs", "logs")
        if (base / d).is_dir()
        for p in (base / d).iterdir()
        if mine in p.name
    }


def test_exit_code_and_output_round_trip(l1_ready, in_repo):
    out, err = io.BytesIO(), io.BytesIO()
    r = run_in_testbed(
        ["sh", "-c", "echo hi; echo oops >&2; exit 7"], timeout=300, stdout=out, stderr=err
    )
    assert r.exit_code == 7
    assert out.getvalue() == b"hi\n"
    assert err.getvalue() == b"oops\n"
    assert r.l1_boot_s is not None and 0 < r.l1_boot_s < r.duration_s


def test_writes_reach_the_host_and_root_is_read_only(l1_ready, in_repo):
    scratch = REPO / ".testbed-scratch" / uuid.uuid4().hex
    cache_file = cache_root() / f"testbed-scratch-{uuid.uuid4().hex}"
    payload = f"written in L1 {uuid.uuid4().hex}"
    script = (
        f"mkdir -p {scratch} && echo '*' > {scratch.parent}/.gitignore && "
        f"printf %s '{payload}' > {scratch}/out.txt && printf cache > {cache_file} && "
        f"head -c 8000000 /dev/urandom > {scratch}/big.bin && sha256sum {scratch}/big.bin && "
        "if touch /usr/.schedlab-testbed-probe 2>/dev/null; then echo ROOT-WRITABLE; fi"
    )
    out = io.BytesIO()
    try:
        r = run_in_testbed(["sh", "-c", script], timeout=300, stdout=out)
        assert r.exit_code == 0
        assert (scratch / "out.txt").read_text() == payload
        assert cache_file.read_text() == "cache"
        # Written back in full before L1 reported (the host kills QEMU right after).
        inside = out.getvalue().split()[0].decode()
        assert hashlib.sha256((scratch / "big.bin").read_bytes()).hexdigest() == inside
        assert b"ROOT-WRITABLE" not in out.getvalue()
        assert not Path("/usr/.schedlab-testbed-probe").exists()
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)
        cache_file.unlink(missing_ok=True)


def _probe_runs(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_dev_kvm_inside_has_hardware_semantics(l1_ready, in_repo):
    # Three probes in one L1, best one counts: TCG on a busy host has slow moments.
    probe = f"{sys.executable} -m vmm_proc.probe --json"
    out = io.BytesIO()
    r = run_in_testbed(["sh", "-c", f"{probe}; {probe}; {probe}"], timeout=600, stdout=out)
    assert r.exit_code == 0, out.getvalue()
    runs = _probe_runs(out.getvalue().decode())
    assert len(runs) == 3, runs
    inside = min(runs, key=lambda p: p["ns_per_iteration"])
    assert inside["kind"] == "hardware", runs
    host = subprocess.run(
        [sys.executable, "-m", "vmm_proc.probe", "--json"], capture_output=True, text=True
    )
    outside = _probe_runs(host.stdout)[0] if host.returncode == 0 else {"kind": "unavailable"}
    if outside["kind"] == "emulated":
        # This machine's nested software hypervisor: CPL0 is ~100x slower than in L1.
        assert outside["ns_per_iteration"] > 20 * inside["ns_per_iteration"], (inside, outside)


def test_nothing_left_behind_after_success(l1_ready, in_repo):
    before = _leftovers()
    pids = []
    r = run_in_testbed(["true"], timeout=300, on_start=lambda p: pids.append(p.pid))
    assert r.exit_code == 0
    assert pids and not any(_alive(p) for p in pids)
    assert _leftovers() - before == set()


def test_timeout_kills_qemu_and_says_so(l1_ready, in_repo):
    before = _leftovers()
    pids = []
    t0 = time.monotonic()
    with pytest.raises(TestbedError) as info:
        run_in_testbed(["sleep", "600"], timeout=40, on_start=lambda p: pids.append(p.pid))
    assert info.value.timed_out and "timed out after 40 s" in str(info.value)
    assert time.monotonic() - t0 < 40 + 30
    assert pids and not any(_alive(p) for p in pids)
    kept = _leftovers() - before  # the console log is kept for diagnosis, the job dir is not
    assert info.value.console_log is not None and info.value.console_log.name in kept
    assert not any(name in {p.name for p in (_testbed_dir() / "jobs").iterdir()} for name in kept)
    for name in kept:
        (_testbed_dir() / "logs" / name).unlink()


def _qemu_children(pid):
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(c) for c in (task / "children").read_text().split()]
    return [k for k in kids if "qemu" in Path(f"/proc/{k}/comm").read_text()]


@pytest.mark.parametrize(
    "sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)]
)
def test_cli_signal_stops_qemu(l1_ready, in_repo, sig, code):
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.testbed", "--", "sleep", "600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        qemu = []
        while not qemu and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            qemu = _qemu_children(proc.pid)
        assert qemu, "QEMU never started"
        time.sleep(3)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == code
        end = time.monotonic() + 10
        while any(_alive(q) for q in qemu) and time.monotonic() < end:
            time.sleep(0.2)
        assert not any(_alive(q) for q in qemu)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        prune_stale_jobs(_testbed_dir() / "jobs")  # a SIGKILLed run cannot clean up itself


def test_cli_passes_exit_code(l1_ready, in_repo):
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.testbed", "--", "sh", "-c", "echo via-cli; exit 3"],
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == b"via-cli\n"
