"""collector_proc.sched: sched.log, sched_ext_dump.log and the scheduler's lifecycle state."""

from __future__ import annotations

import json
from pathlib import Path

from collector_proc.ingest import Ingest
from guest.wire import FrameType, encode_frame


def _log(stream: str, data: bytes, seq: int, dropped: int = 0, eof: bool = False) -> bytes:
    return encode_frame(
        FrameType.SCHED_LOG,
        {"stream": stream, "data": data, "seq": seq + 1, "dropped": dropped, "eof": eof},
    )


def _dump(data: bytes, trigger: str, part: int) -> bytes:
    return encode_frame(
        FrameType.DUMP,
        {"source": "sched_ext_dump", "data": data, "trigger": trigger, "part": part},
    )


_ATTACH = {
    "status": "attached", "attached": True, "ops": "qmap", "message": "", "attach_ms": 812.5,
    "pid": 91, "exit_status": "", "state": "enabled",
}  # fmt: skip
_EXIT = {
    "t_ns": 9_000_000_000, "trigger": "disabled", "state": "disabling", "exit_status": "",
    "ops": "qmap", "dump_bytes": 34, "headline": "scx_bpf_error: test triggering error",
}  # fmt: skip
_STOP = {
    "status": "exited", "detached": True, "killed": False, "problems": [], "exit_status": "exited 0",
    "state": "disabled", "wait_ms": 0.0,
}  # fmt: skip


def _stream() -> bytes:
    return b"".join(
        [
            encode_frame(FrameType.SYS_RDY, {"kernel": "7.2", "cpus": 2, "boot_ns": 1}),
            encode_frame(FrameType.SCHED_ATTACH, _ATTACH),
            _log("stdout", b"local=1 global=2\n", 0),
            _log("stderr", b"libbpf: loaded\n", 0),
            _log("stdout", b"local=5 global=9\n", 1, dropped=4096),
            _dump(b"CPU 0 : nr_run=1\n", "exit", 0),
            _dump(b"CPU 1 : nr_run=0\n", "exit", 1),
            encode_frame(FrameType.SCHED_EXIT, _EXIT),
            encode_frame(FrameType.SCHED_EXIT, {**_EXIT, "t_ns": 1}),  # a second: not kept
            _log("stderr", b"EXIT: scx_bpf_error (test triggering error)\n", 1, eof=True),
            _dump(b"SysRq dump\n", "sysrq", 0),
            encode_frame(FrameType.SCHED_STOP, _STOP),
        ]
    )


def _run(run: Path, data: bytes, step: int) -> Ingest:
    ing = Ingest(run)
    for i in range(0, len(data), step):
        ing.process("bulk", data[i : i + step])
    return ing


def test_log_dump_and_lifecycle_land_in_their_files(tmp_path: Path) -> None:
    ing = _run(tmp_path / "run", _stream(), 97)
    ing.save()
    run = tmp_path / "run"
    assert (run / "sched.log").read_bytes() == (
        b"local=1 global=2\nlibbpf: loaded\n"
        b"\n[schedlab: 4096 bytes of stdout dropped here]\n"
        b"local=5 global=9\nEXIT: scx_bpf_error (test triggering error)\n"
    )
    assert (run / "sched_ext_dump.log").read_bytes() == (
        b"=== sched_ext_dump (exit) ===\nCPU 0 : nr_run=1\nCPU 1 : nr_run=0\n"
        b"=== sched_ext_dump (sysrq) ===\nSysRq dump\n"
    )
    assert b"CPU 0" not in (run / "dumps.log").read_bytes()
    s = ing.cp.sched
    assert s["attach"] == _ATTACH and s["exit"] == _EXIT
    assert s["stop"]["status"] == "exited"
    assert s["log"]["stderr"] == {"dropped": 0, "eof": True, "bytes": 59}
    assert s["log"]["stdout"]["dropped"] == 4096 and not s["log"]["stdout"]["eof"]
    assert s["dumps"] == {"exit": 34, "sysrq": 11}
    msgs = [json.loads(x) for x in (run / "messages.jsonl").read_text().splitlines()]
    logs = [m for m in msgs if m["type"] == "SCHED_LOG"]
    assert logs[0]["payload"] == {"stream": "stdout", "seq": 1, "dropped": 0, "eof": False}
    assert logs[0]["bytes"] == 17  # the bytes live in sched.log, not in the messages
    assert [m["payload"]["t_ns"] for m in msgs if m["type"] == "SCHED_EXIT"] == [9e9, 1]


def test_state_survives_a_restart_and_a_rolled_back_chunk(tmp_path: Path) -> None:
    data = _stream()
    ref = _run(tmp_path / "ref", data, 50)
    ref.save()
    ing = _run(tmp_path / "run", data[: len(data) // 2], 50)
    ing.save()
    ing.close()
    again = Ingest(tmp_path / "run")  # from the checkpoint
    real = again.files.append

    def fail_once(name: str, blob: bytes, armed=[True]) -> None:  # noqa: B006
        real(name, blob)
        if name == "sched.log" and armed[0]:
            armed[0] = False
            raise OSError(28, "No space left on device (test)")

    again.files.append = fail_once
    rest = data[len(data) // 2 :]
    try:
        again.process("bulk", rest)
    except OSError:
        again.process("bulk", rest)  # the replay after the failed chunk
    again.save()
    assert again.cp.sched == ref.cp.sched
    for name in ("sched.log", "sched_ext_dump.log"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
