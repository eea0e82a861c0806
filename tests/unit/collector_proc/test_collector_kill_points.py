"""SIGKILL at any point, inside a checkpoint save included, loses and duplicates nothing.

A real collector subprocess follows a fake VMM that keeps emitting console lines and
bulk frames (real ones, hostile ones, garbage, split at random chunk boundaries). It is
killed again and again, each time at a named point (collector_proc/crashpoint.py) or at
a random moment, and restarted; at the end every file holds each emitted byte once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import zmq

from collector_proc.crashpoint import ENV, POINTS
from guest.noise import HOSTILE, hostile_frames, real_marker
from guest.wire import FrameType, encode_frame
from schedlab_shared.bus import collector as proto
from schedlab_shared.bus.client import BusClient
from tests.framework.fake_vmm import FakeVmm

ROUNDS = 360  # ~22 s of paced stream: 16 collector starts outlasted 7 s on a loaded host


def _start(tmp: Path, ep: dict[str, str], crash: str = "") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash:
        env[ENV] = crash
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector_proc",
            "--vm-id",
            "k1",
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
        env=env,
    )


def _stream(rng: random.Random) -> tuple[list[tuple[str, bytes]], bytes]:
    """What the fake VMM emits: (stream, chunk) pairs, and the expected guest stdout."""
    out: list[tuple[str, bytes]] = []
    bulk, stdout = bytearray(), bytearray()
    bulk += encode_frame(FrameType.SYS_RDY, {"kernel": "7.2", "cpus": 2, "boot_ns": 1})
    for i in range(ROUNDS):
        out.append(("console", f"console line {i}\n".encode()))
        data = f"stdout {i}\n".encode()
        stdout += data
        bulk += encode_frame(FrameType.STDOUT, {"data": data})
        if i % 10 == 0:
            bulk += hostile_frames(i) + b"\x00garbage\xffSL\x01"
    bulk += encode_frame(FrameType.RESULT, {"passed": True, "reason": "ok"})
    bulk += encode_frame(FrameType.EXIT, {"code": 0})
    pos, chunks = 0, []
    while pos < len(bulk):  # random chunk boundaries: kills land mid-frame too
        n = rng.choice((1, 7, 64, 300, 1500))
        chunks.append(("bulk", bytes(bulk[pos : pos + n])))
        pos += n
    # Interleave console lines among the bulk chunks, order kept within each stream.
    merged, step = [], max(1, len(chunks) // len(out))
    for k, c in enumerate(chunks):
        merged.append(c)
        if k % step == 0 and out:
            merged.append(out.pop(0))
    return merged + out, bytes(stdout)


def _status(client: BusClient) -> proto.CollectorStatusReply | None:
    try:
        return client.request(proto.CollectorStatus(), timeout_s=0.5)
    except Exception:
        return None


def test_sigkill_anywhere_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(6)
    ep = {k: f"ipc://{tmp_path}/{k}" for k in ("vctl", "vpub", "cctl", "cpub")}
    emitted, stdout = _stream(rng)
    vm = FakeVmm("k1", ep["vctl"], ep["vpub"])
    release, stalled, held = threading.Event(), threading.Event(), 40

    def feed() -> None:  # paced so that every collector sees chunks arrive live
        for k, (stream, data) in enumerate(emitted):
            if k == len(emitted) - held:
                stalled.set()
                release.wait(120)  # the tail goes out once the kills are done
            vm.emit(stream, data)
            if not release.is_set():  # once the kills are done, the rest goes out at once
                time.sleep(0.003)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    schedule = [f"{p}:{n}" for n in (2, 6) for p in POINTS] + [
        "",
        "",
    ]  # "": a kill at a random moment
    ctx = zmq.Context()
    client = BusClient(ctx, ep["cctl"], timeout_s=0.5)
    proc = None
    killed_at = []
    try:
        for crash in schedule:
            proc = _start(tmp_path, ep, crash)
            if crash:
                code = proc.wait(30)
                assert code == -signal.SIGKILL, (
                    f"{crash}: exit {code}, see {tmp_path}/collector.err"
                )
            else:
                time.sleep(rng.uniform(0.3, 0.9))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            killed_at.append(crash or "random")
        assert not stalled.is_set(), "the kills outlasted the stream: make it longer"
        release.set()
        feeder.join(60)
        vm.exit()
        proc = _start(tmp_path, ep)
        deadline = time.monotonic() + 30
        while not ((st := _status(client)) is not None and st.complete):
            assert time.monotonic() < deadline, "the last collector did not drain the streams"
            time.sleep(0.05)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        client.close()
        ctx.term()
        vm.close()
    assert len(killed_at) == len(schedule)
    run = tmp_path / "run"
    for stream, name in (("console", "console.log"), ("bulk", "bulk.raw")):
        assert (run / name).read_bytes() == b"".join(d for s, d in emitted if s == stream), name
    assert (run / "guest-stdout.log").read_bytes() == stdout
    msgs = [json.loads(x) for x in (run / "messages.jsonl").read_text().splitlines()]
    assert [m["index"] for m in msgs] == list(range(len(msgs)))
    assert [m["type"] for m in msgs].count("STDOUT") == ROUNDS
    logs = [m["payload"]["msg"] for m in msgs if m["type"] == "LOG"]
    assert logs == [real_marker(i, k) for i in range(0, ROUNDS, 10) for k in range(len(HOSTILE))]
    assert msgs[0]["type"] == "SYS_RDY" and msgs[-1]["type"] == "EXIT"
    assert st.result == {"passed": True, "reason": "ok"} and st.exit_code == 0
    d = st.decoder
    assert d["frames"] == len(msgs) and d["internal_errors"] == 0
    rounds = len(range(0, ROUNDS, 10))
    for kind, n in Counter(k for k, _, _ in HOSTILE).items():
        assert d[kind] == rounds * n, kind
    rejected = (run / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == d["rejected"] == rounds * len(HOSTILE)
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]
