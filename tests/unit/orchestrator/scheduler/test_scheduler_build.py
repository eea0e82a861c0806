"""ExampleBuilder's pieces that need no compiler: ops names, failure lines, kernel checks, -h."""

import shutil
from pathlib import Path

import pytest
from conftest import make_kernel

from orchestrator.scheduler.build import ExampleBuilder, _failure_line, ops_name
from orchestrator.scheduler.errors import SchedulerBuildError
from orchestrator.scheduler.hostrun import SYSFS_BTF, BtfError, run_help, write_raw_btf
from tests.framework.prereq import require


def test_ops_name():
    src = 'SCX_OPS_DEFINE(qmap_ops,\n\t.flags = 0,\n\t.timeout_ms = 5000U,\n\t.name\t\t= "qmap");\n'
    assert ops_name(src) == "qmap"
    assert ops_name("no ops here") is None
    assert ops_name('.name = "a" ... .name = "b"') is None  # ambiguous: say nothing


def test_failure_line(tmp_path):
    log = tmp_path / "log"
    log.write_text(
        "  CC  libbpf.o\nscx_qmap.bpf.c:12:3: error: use of undeclared identifier 'x'\n"
        "1 error generated.\nmake: *** [Makefile:190: x.bpf.o] Error 1\n"
    )
    assert _failure_line(log) == "scx_qmap.bpf.c:12:3: error: use of undeclared identifier 'x'"
    log.write_text("all good\nbut then it stopped\n\n")
    assert _failure_line(log) == "but then it stopped"
    assert _failure_line(tmp_path / "missing") == "?"


def test_kernel_without_sched_ext_or_vmlinux(tmp_path):
    builder = ExampleBuilder()
    with pytest.raises(SchedulerBuildError, match=r"has no sched_ext \(CONFIG_SCHED_CLASS_EXT\)"):
        builder._check_kernel(make_kernel(tmp_path, sched_ext=False))
    k = make_kernel(tmp_path)
    k = type(k)(**{**k.__dict__, "vmlinux": None})
    with pytest.raises(SchedulerBuildError, match="has no vmlinux"):
        builder._check_kernel(k)


def test_raw_btf_needs_a_btf_section(tmp_path):
    with pytest.raises(BtfError, match="cannot read its ELF sections"):
        write_raw_btf(make_kernel(tmp_path).vmlinux, tmp_path / "btf")
    require(Path("/bin/true").is_file(), "/bin/true missing")
    with pytest.raises(BtfError, match="no .BTF section"):
        write_raw_btf(Path("/bin/true").resolve(), tmp_path / "btf")


def test_help_runs_against_the_given_btf(tmp_path):
    require(
        Path(SYSFS_BTF).exists() and shutil.which("unshare") is not None,
        f"needs {SYSFS_BTF} and unshare(1) for a private mount namespace",
    )
    btf = tmp_path / "btf"
    btf.write_bytes(b"\x9f\xeb\x01\x00 target kernel BTF\n")
    probe = tmp_path / "probe"
    probe.write_text('#!/bin/sh\necho "args: $*"\ncat /sys/kernel/btf/vmlinux\n')
    probe.chmod(0o755)
    run = run_help(probe, btf)
    assert run.namespaced and run.returncode == 0, run.output
    assert "args: -h" in run.output and "target kernel BTF" in run.output
    plain = run_help(probe, None)  # no BTF given: the host's own is seen
    assert not plain.namespaced and "target kernel BTF" not in plain.output
