"""The collector writes each stream exactly once, across SIGKILLs, and decodes guest frames."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from guest.wire import FrameType, encode_frame
from schedlab_shared.bus import collector as proto
from schedlab_shared.bus.client import BusClient
from tests.framework.fake_vmm import FakeVmm


def _start_collector(tmp: Path, vm_id: str, ep: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector_proc",
            "--vm-id",
            vm_id,
            "--vm-ctl",
            ep["vctl"],
            "--vm-pub",
            ep["vpub"],
            "--run-dir",
            str(tmp / "run"),
            "--ctl",
            ep["cctl"],
            "--pub",
            ep["cpub"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "collector.err", "ab"),
    )


def _status(client: BusClient) -> proto.CollectorStatusReply | None:
    try:
        return client.request(proto.CollectorStatus(), timeout_s=0.5)
    except Exception:
        return None


def _wait(pred, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def endpoints(tmp_path: Path) -> dict[str, str]:
    return {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "cpub")}


def test_streams_and_frames_survive_collector_kills(
    tmp_path: Path, endpoints: dict[str, str]
) -> None:
    vm = FakeVmm("t1", endpoints["vctl"], endpoints["vpub"])
    ctx = zmq.Context()
    client = BusClient(ctx, endpoints["cctl"], timeout_s=0.5)
    proc = _start_collector(tmp_path, "t1", endpoints)
    console, bulk_expected_stdout = bytearray(), bytearray()
    try:
        vm.emit("bulk", encode_frame(FrameType.SYS_RDY, {"kernel": "7.2", "cpus": 2, "boot_ns": 1}))
        for i in range(300):
            line = f"console line {i}\n".encode()
            console += line
            vm.emit("console", line)
            out = f"stdout {i}\n".encode()
            bulk_expected_stdout += out
            frame = encode_frame(FrameType.STDOUT, {"data": out})
            # Split frames across chunks so restarts land mid-frame too.
            vm.emit("bulk", frame[:5])
            vm.emit("bulk", frame[5:])
            if i % 50 == 0:
                vm.emit("bulk", b"\x00garbage\xffSL\x01")  # resync fodder, counted
            if i in (100, 200):
                vm.wait_flushed()
                time.sleep(0.2)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = _start_collector(tmp_path, "t1", endpoints)
            time.sleep(0.002)
        vm.emit("bulk", encode_frame(FrameType.RESULT, {"passed": True, "reason": "ok"}))
        vm.emit("bulk", encode_frame(FrameType.EXIT, {"code": 0}))
        vm.exit()
        _wait(lambda: (s := _status(client)) is not None and s.complete)
        st = _status(client)
        assert st is not None
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()
        ctx.term()
        vm.close()
    run = tmp_path / "run"
    assert (run / "console.log").read_bytes() == bytes(console)
    assert (run / "guest-stdout.log").read_bytes() == bytes(bulk_expected_stdout)
    msgs = [json.loads(x) for x in (run / "messages.jsonl").read_text().splitlines()]
    assert [m["index"] for m in msgs] == list(range(len(msgs)))
    assert [m["type"] for m in msgs].count("STDOUT") == 300
    assert msgs[0]["type"] == "SYS_RDY" and msgs[-1]["type"] == "EXIT"
    assert st.result == {"passed": True, "reason": "ok"} and st.exit_code == 0
    assert st.decoder["garbage_bytes"] > 0 and st.decoder["frames"] == len(msgs)
    assert st.vm_exited and st.vm_exit_reason == "guest-exit"


def test_evicted_chunks_are_counted_as_gaps(tmp_path: Path, endpoints: dict[str, str]) -> None:
    vm = FakeVmm("t2", endpoints["vctl"], endpoints["vpub"], retain_bytes=64)
    for _ in range(20):
        vm.emit("console", b"x" * 32)
    vm.wait_flushed()
    ctx = zmq.Context()
    client = BusClient(ctx, endpoints["cctl"], timeout_s=0.5)
    proc = _start_collector(tmp_path, "t2", endpoints)
    try:
        vm.exit()
        _wait(lambda: (s := _status(client)) is not None and s.complete)
        st = _status(client)
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()
        ctx.term()
        vm.close()
    assert st is not None and st.decoder["gaps"] == 18
    assert (tmp_path / "run" / "console.log").read_bytes() == b"x" * 64
    assert not [p for p in os.listdir(tmp_path / "run") if p.endswith(".tmp")]
