"""Tier 3: the run's inputs go host -> guest over the bulk port after SYS_RDY (QEMU engine, TCG)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.framework.prereq import require
from tests.framework.run_checks import assert_complete_run
from tests.framework.schedlab_cli import default_kernel_or_skip, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    return default_kernel_or_skip()


def test_a_5mb_file_arrives_intact_and_the_cmdline_stays_short(
    kernel, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 << 20))
    want = hashlib.sha256(big.read_bytes()).hexdigest()
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "1",
            "-i",
            str(big),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 0, run.stderr[-2000:]
    r = run.result
    run_dir = assert_complete_run(r, cpus=2)
    inputs = r["inputs"]
    assert inputs["acked"] and inputs["file_bytes"] == 5 << 20 and inputs["entropy"] == "ioctl"
    # What the guest computed over the bytes it wrote, at the path it installed them.
    msgs = [json.loads(line) for line in (run_dir / "messages.jsonl").read_text().splitlines()]
    (ack,) = [m["payload"] for m in msgs if m["type"] == "INPUTS_ACK"]
    assert ack["ok"] and ack["files"] == [
        {
            "kind": "include",
            "name": "big.bin",
            "path": "/run/schedlab/inputs/include/big.bin",
            "size": 5 << 20,
            "sha256": want,
        }
    ]
    types = [m["type"] for m in msgs]
    assert types.index("INPUTS_ACK") < types.index("RESULT")
    cmdline = json.loads((run_dir / "vm-config.json").read_text())["cmdline"]
    assert "schedlab." not in cmdline and len(cmdline) < 200, cmdline
    assert r["timings"]["inputs_ms"] > 0
    with capsys.disabled():
        print(
            f"\nhost->guest under TCG: 5 MiB in {inputs['transfer_ms']:.0f} ms, "
            f"{inputs['mb_per_s']} MB/s (guest receive {inputs['guest_recv_ms']:.0f} ms)"
        )
