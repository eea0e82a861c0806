"""guest/scx/log_pump.py with real pipes: forwarding, bounds, drops, and a blocked port."""

import os
import threading
import time

from guest.scx import log_pump
from guest.scx.log_pump import LogPump
from guest.wire import FrameType


def pipes():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return {"stdout": out_r, "stderr": err_r}, out_w, err_w


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def test_forwards_both_streams_then_eof_frames(recorder):
    rec = recorder
    fds, out_w, err_w = pipes()
    pump = LogPump(fds, rec)
    pump.start()
    write_all(out_w, b"hello\n")
    write_all(err_w, b"libbpf: loading\n")
    write_all(out_w, b"world\n")
    os.close(out_w)
    os.close(err_w)
    assert pump.wait_eof(5)
    pump.stop(5)
    assert rec.log("stdout") == b"hello\nworld\n"
    assert rec.log("stderr") == b"libbpf: loading\n"
    frames = rec.of(FrameType.SCHED_LOG)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    tail = frames[-2:]
    assert {f["stream"] for f in tail} == {"stdout", "stderr"}
    assert all(f["eof"] and f["data"] == b"" and f["dropped"] == 0 for f in tail)
    assert not any(f["eof"] for f in frames[:-2])
    assert sorted(pump.head().splitlines()) == [b"hello", b"libbpf: loading", b"world"]


def test_exit_line_and_debug_dump_split_across_writes(recorder):
    rec = recorder
    fds, out_w, err_w = pipes()
    pump = LogPump(fds, rec)
    pump.start()
    text = (
        b"stats: enq=3\n\nDEBUG DUMP\n" + b"=" * 80 + b"\n\nqmap: root\nCPU 0   : nr_run=1\n\n"
        + b"=" * 80 + b"\n\nEXIT: scx_bpf_error (test triggering error)\n"
    )  # fmt: skip
    for i in range(0, len(text), 7):
        write_all(err_w, text[i : i + 7])
        time.sleep(0.001)
    assert pump.exit_seen.wait(5)
    assert pump.exit_line == ("scx_bpf_error", "test triggering error")
    assert pump.debug_dump() == "qmap: root\nCPU 0   : nr_run=1"
    os.close(out_w)
    os.close(err_w)
    pump.stop(5)
    assert rec.log("stderr") == text


def test_exit_line_without_final_newline_counts_at_eof(recorder):
    fds, out_w, err_w = pipes()
    pump = LogPump(fds, recorder)
    pump.start()
    write_all(err_w, b"EXIT: unregistered from user space")
    assert not pump.exit_seen.wait(0.2)
    os.close(err_w)
    os.close(out_w)
    assert pump.exit_seen.wait(5)
    assert pump.exit_line == ("unregistered from user space", "")
    pump.stop(5)


def test_a_blocked_bulk_port_never_blocks_the_writer(recorder):
    """The scheduler writes 8 MiB while the port is stuck: it finishes, the oldest is dropped."""
    release = threading.Event()
    rec = recorder

    def stuck_send(ftype, payload):
        release.wait()
        return rec(ftype, payload)

    fds, out_w, err_w = pipes()
    cap = 256 * 1024
    pump = LogPump(fds, stuck_send, queue_bytes=cap)
    pump.start()
    total = 8 << 20
    line = b"y" * 1023 + b"\n"
    lines = [f"{i:07d}".encode() + line[7:] for i in range(total // len(line))] + [b"LAST\n"]
    t0 = time.monotonic()
    for ln in lines:
        write_all(out_w, ln)
    wrote_s = time.monotonic() - t0
    assert wrote_s < 10
    os.close(out_w)
    os.close(err_w)
    assert pump.wait_eof(5)
    release.set()
    pump.stop(10)
    got = rec.log("stdout")
    written = b"".join(lines)
    # at most what was in flight when the port blocked plus the queue: the newest, intact
    assert len(got) <= cap + 2 * log_pump.CHUNK
    assert got.endswith(written[-cap // 2 :])
    dropped = pump.dropped["stdout"]
    assert dropped > 0 and dropped + len(got) == len(written)
    eof = [f for f in rec.of(FrameType.SCHED_LOG) if f["eof"] and f["stream"] == "stdout"]
    assert eof[0]["dropped"] == dropped
    assert all(len(f["data"]) <= log_pump.CHUNK for f in rec.of(FrameType.SCHED_LOG))


def test_total_bound_and_send_failures_are_counted():
    calls = []

    def flaky(ftype, payload):
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("port gone")
        return len(calls) % 2 == 0

    fds, out_w, err_w = pipes()
    pump = LogPump(fds, flaky, total_bytes=100_000, chunk=4096)
    pump.start()
    for _ in range(75):
        write_all(out_w, b"z" * 4000)
        time.sleep(0.0005)
    os.close(out_w)
    os.close(err_w)
    pump.wait_eof(5)
    pump.stop(5)
    delivered = sum(len(p["data"]) for i, p in enumerate(calls) if i and (i + 1) % 2 == 0)
    assert pump.forwarded <= 100_000
    assert delivered + pump.dropped["stdout"] == 300_000
    assert delivered < 100_000


def test_output_text_keeps_head_and_tail(recorder):
    fds, out_w, err_w = pipes()
    pump = LogPump(fds, recorder)
    pump.start()
    lines = [f"line {i:06d}\n".encode() for i in range(20_000)]  # ~240 KB
    write_all(err_w, b"".join(lines))
    os.close(out_w)
    os.close(err_w)
    pump.wait_eof(5)
    pump.stop(5)
    text = pump.output_text()
    assert text.startswith("line 000000\n") and text.endswith("line 019999\n")
    assert "bytes of output left out" in text
    assert len(text) < log_pump.HEAD_BYTES + log_pump.TAIL_BYTES + 100
    for ln in text.splitlines():
        assert ln.startswith("line ") and len(ln) == 11 or ln.startswith("[... ")


def test_stop_is_bounded_when_a_pipe_stays_open(recorder):
    fds, out_w, err_w = pipes()
    pump = LogPump(fds, recorder)
    pump.start()
    t0 = time.monotonic()
    pump.stop(2)
    assert time.monotonic() - t0 < 1.0
    assert pump.eof.is_set()
    for fd in fds.values():  # the pump closed its read ends
        try:
            os.fstat(fd)
            closed = False
        except OSError:
            closed = True
        assert closed
    os.close(out_w)
    os.close(err_w)
