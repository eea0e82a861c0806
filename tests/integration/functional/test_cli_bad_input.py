"""Bad input: one clear line, exit 2, no traceback (these never boot anything)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework.schedlab_cli import run_cli


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("schedlab:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--topology", "1,1,0,1"], "cores must be"),
        (["--topology", "2,2"], "nor N,L,C,T"),
        (["--topology", "8,8,8,8"], "it stops at 64 vCPUs"),
        (["--engine", "xen"], "'xen' is not one of 'auto', 'kvm', 'qemu'"),
        (["--duration", "soon"], "'soon' is not a valid float"),
        (["--no-such-option"], "No such option '--no-such-option'"),
        (["--duration", "0"], "--duration"),
        (["--inject", "kill:qemu@1"], "--inject"),
        (["--kernel", "/nonexistent/vmlinuz"], "/nonexistent/vmlinuz"),
        (["--performance"], "--performance needs the KVM engine (this run uses qemu)"),
        (["--snapshot"], "--snapshot needs the KVM engine (this run uses qemu)"),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], needle: str) -> None:
    run = run_cli(
        ["run", "--engine", "qemu", *args] if "--engine" not in args else ["run", *args],
        tmp_path,
        timeout=120,
    )
    assert run.code == 2
    assert needle in _one_error_line(run.stderr)


def test_not_a_kernel(tmp_path: Path) -> None:
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"\x7fNOPE" + b"\0" * 4096)
    run = run_cli(["run", "--engine", "qemu", "--kernel", str(bogus)], tmp_path, timeout=120)
    assert run.code == 2
    assert "not a Linux kernel" in _one_error_line(run.stderr)


@pytest.mark.parametrize(("name", "needle"), [(".hidden", "starts with '.'"), ("a b", "rename it")])
def test_an_include_the_guest_cannot_name(tmp_path: Path, name: str, needle: str) -> None:
    bad = tmp_path / name
    bad.write_text("x")
    run = run_cli(["run", "--engine", "qemu", "-i", str(bad)], tmp_path, timeout=120)
    assert run.code == 2
    assert needle in _one_error_line(run.stderr)


def test_a_missing_include(tmp_path: Path) -> None:
    run = run_cli(["run", "--engine", "qemu", "-i", str(tmp_path / "nope")], tmp_path, timeout=120)
    assert run.code == 2 and "Traceback" not in run.stderr and "nope" in run.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["read", "scx_qmap.bss", "zz"], "bpf read: key 'zz' is not a non-negative integer"),
        (["read", "m", "0x"], "key '0x' is not a non-negative integer"),
        (["write", "m", "0", "nr_dispatched"], "'nr_dispatched' is not FIELD=VALUE"),
        (["write", "m", "0", "=3"], "'=3' is not FIELD=VALUE"),
        (["write", "m", "0", "x=soon"], "x: value 'soon' is not an integer or true/false"),
        (["write", "m", "-1", "x=1"], "No such option '-1'"),
        (["write", "m", "0"], "Missing argument 'FIELD=VALUE'"),
        (["read"], "Missing argument 'MAP'"),
        (["links"], "No such command 'links'"),
        (["maps"], "no endpoints.json"),
        (["read", "m", "7"], "no endpoints.json"),
    ],
)
def test_attach_bpf_bad_input(tmp_path: Path, args: list[str], needle: str) -> None:
    run = run_cli(["attach", str(tmp_path / "no-run"), "bpf", *args], tmp_path, timeout=60)
    assert run.code == 2
    assert needle in _one_error_line(run.stderr)


def test_attach_bpf_to_a_run_without_a_monitor_or_a_dead_one(tmp_path: Path) -> None:
    import json

    ep = {
        "run_id": "r",
        "vmm_ctl": f"ipc://{tmp_path}/v",
        "vmm_pub": f"ipc://{tmp_path}/vp",
        "collector_ctl": f"ipc://{tmp_path}/c",
        "collector_pub": f"ipc://{tmp_path}/cp",
        "monitors": [],
    }
    (tmp_path / "endpoints.json").write_text(json.dumps(ep))
    run = run_cli(["attach", str(tmp_path), "bpf", "progs"], tmp_path, timeout=60)
    assert run.code == 2 and "--monitors 0" in _one_error_line(run.stderr)
    ep["monitors"] = [[f"ipc://{tmp_path}/gone-ctl", f"ipc://{tmp_path}/gone-pub"]]
    (tmp_path / "endpoints.json").write_text(json.dumps(ep))
    run = run_cli(["attach", str(tmp_path), "bpf", "maps"], tmp_path, timeout=60)
    assert run.code == 2 and "no reply" in _one_error_line(run.stderr)
