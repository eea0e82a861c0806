"""run_in_testbed against a fake QEMU: streaming, exit status, boot retries, timeouts, cleanup."""

import io
import os
import stat
import sys
from pathlib import Path

import pytest

from orchestrator.testbed import job, run
from orchestrator.testbed.l1kernel import L1Kernel
from orchestrator.testbed.run import QEMU_ENV, TCG_THREADS_ENV, TestbedError, run_in_testbed

FAKE = Path(__file__).with_name("fake_l1_qemu.py")
REPO = Path(__file__).resolve().parents[4]


class FakeL1:
    def __init__(self, tmp_path, monkeypatch):
        self.tmp, self.mp = tmp_path, monkeypatch
        self.testbed = tmp_path / "cache" / "tools" / "testbed"

    @property
    def pids(self):
        path = self.tmp / "pids"
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def __call__(self, mode, **kw):
        self.mp.setenv("FAKE_L1_MODE", mode)
        out, err = io.BytesIO(), io.BytesIO()
        kw.setdefault("timeout", 60)
        return run_in_testbed(["true"], stdout=out, stderr=err, **kw), out, err


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "HIDDEN_PREFIXES", (Path("/proc"),))  # tmp_path is under /tmp
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    kernel = L1Kernel("p", "1", "r", tmp_path / "vmlinuz", ())
    monkeypatch.setattr(run, "ensure_l1_kernel", lambda **_kw: kernel)
    monkeypatch.setattr(run, "ensure_initramfs", lambda _k: tmp_path / "initrd")
    wrapper = tmp_path / "qemu"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} {FAKE} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(QEMU_ENV, str(wrapper))
    monkeypatch.setenv("FAKE_L1_PIDS", str(tmp_path / "pids"))
    return FakeL1(tmp_path, monkeypatch)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def _files(base):
    return sorted(
        p.name for d in ("jobs", "logs") if (base / d).is_dir() for p in (base / d).iterdir()
    )


def test_streams_and_exit_code(fake):
    r, out, err = fake("ok")
    assert (r.exit_code, out.getvalue(), err.getvalue(), r.attempts) == (7, b"out\n", b"err\n", 1)
    assert r.l1_uptime_s == 1.5 and r.l1_boot_s is not None
    assert _files(fake.testbed) == []


def test_large_output_is_complete(fake):
    r, out, _ = fake("big")
    assert r.exit_code == 7
    assert out.getvalue() == bytes(range(256)) * 20000


def test_boot_crash_is_retried(fake, capsys):
    r, out, _ = fake("crash-once")
    assert r.attempts == 2 and r.exit_code == 7 and out.getvalue() == b"out\n"
    assert "retrying (2/3)" in capsys.readouterr().err
    assert len(fake.pids) == 2


def test_boot_crash_every_time_gives_up(fake):
    with pytest.raises(TestbedError, match="L1 did not boot") as info:
        fake("crash-always")
    assert len(fake.pids) == 3
    assert info.value.console_log is not None and info.value.console_log.parent.is_dir()
    assert not info.value.timed_out


def test_reported_l1_error_is_not_retried(fake):
    with pytest.raises(TestbedError, match="insmod kvm_amd.ko failed"):
        fake("l1-error")
    assert len(fake.pids) == 1


def test_crash_while_cmd_runs_is_not_retried(fake):
    with pytest.raises(TestbedError, match="without reporting"):
        fake("crash-after-ready")
    assert len(fake.pids) == 1


def test_timeout_kills_qemu(fake):
    with pytest.raises(TestbedError, match=r"timed out after 2 s \(CMD running\)") as info:
        fake("hang", timeout=2)
    assert info.value.timed_out
    assert fake.pids and not any(_alive(p) for p in fake.pids)
    assert not (fake.testbed / "jobs").exists() or not any((fake.testbed / "jobs").iterdir())


def test_broken_stdout_does_not_lose_the_exit_code(fake, monkeypatch):
    class Broken(io.BytesIO):
        def write(self, _b):
            raise BrokenPipeError

    monkeypatch.setenv("FAKE_L1_MODE", "ok")
    err = io.BytesIO()
    r = run_in_testbed(["true"], timeout=60, stdout=Broken(), stderr=err)
    assert r.exit_code == 7 and err.getvalue() == b"err\n"


def test_keep_log_keeps_only_the_console_log(fake):
    r, _, _ = fake("ok", keep_log=True)
    assert r.console_log is not None and r.console_log.name in _files(fake.testbed)
    assert _files(fake.testbed) == [r.console_log.name]


def test_tcg_threads_from_argument_and_environment(fake, monkeypatch):
    argv_file = fake.tmp / "pids.argv"
    fake("ok")
    assert "tcg,thread=multi" in argv_file.read_text().split("\n")
    monkeypatch.setenv(TCG_THREADS_ENV, "single")
    fake("ok")
    assert "tcg,thread=single" in argv_file.read_text().split("\n")
    fake("ok", tcg_threads="multi")
    assert "tcg,thread=multi" in argv_file.read_text().split("\n")
    with pytest.raises(ValueError):
        fake("ok", tcg_threads="dual")


def test_argv_shares_root_read_only_and_job_dir(fake):
    fake("ok")
    virtfs = [a for a in (fake.tmp / "pids.argv").read_text().split("\n") if a.startswith("local,")]
    assert virtfs[0].startswith("local,path=/,mount_tag=hostroot,") and virtfs[0].endswith(
        "readonly=on"
    )
    assert "mount_tag=schedlab_job" in virtfs[1] and virtfs[1].endswith("readonly=on")
    # Outside a git tree the project share is the cwd; the cache is shared too.
    assert virtfs[2].startswith(f"local,path={fake.tmp.resolve()},mount_tag=share0,")
    assert virtfs[3].startswith(f"local,path={(fake.tmp / 'cache').resolve()},mount_tag=share1,")
    assert not any(v.endswith("readonly=on") for v in virtfs[2:]) and len(virtfs) == 4
