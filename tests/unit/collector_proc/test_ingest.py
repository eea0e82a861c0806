"""collector_proc.ingest: transactional chunks, rejections with reasons, messages on disk."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from collector_proc.ingest import Ingest
from collector_proc.rundir import FILES
from guest.noise import HOSTILE, hostile_frames, real_marker
from guest.wire import FrameType, encode_frame


def _chunks() -> list[tuple[str, bytes]]:
    bulk = encode_frame(FrameType.SYS_RDY, {"kernel": "7.2", "cpus": 2, "boot_ns": 1})
    for i in range(20):
        bulk += encode_frame(FrameType.STDOUT, {"data": f"out {i}\n".encode()})
        bulk += encode_frame(FrameType.DUMP, {"source": "kmsg", "data": f"<6>k {i}\n".encode()})
    bulk += hostile_frames(0)
    bulk += encode_frame(FrameType.RESULT, {"passed": True, "reason": "ok", "workers": []})
    bulk += encode_frame(FrameType.EXIT, {"code": 0})
    out = [("bulk", bulk[i : i + 333]) for i in range(0, len(bulk), 333)]
    return [c for k, c in enumerate(out) for c in ((c, ("console", f"c{k}\n".encode())))]


_TIMED = ("messages.jsonl", "rejected.jsonl")  # their records carry the host's clock


def _files(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in FILES if name not in _TIMED}


def _records(run: Path) -> dict[str, list[dict]]:
    out = {}
    for name in _TIMED:
        out[name] = [json.loads(x) for x in (run / name).read_text().splitlines()]
        for m in out[name]:
            m.pop("host_time")
    return out


def _reference(tmp_path: Path) -> Path:
    ing = Ingest(tmp_path / "ref")
    for name, data in _chunks():
        ing.process(name, data)
    ing.finish()
    ing.save()
    ing.close()
    return tmp_path / "ref"


@pytest.mark.parametrize(
    "fail_on", ["messages.jsonl", "guest-stdout.log", "kernel.log", "rejected.jsonl"]
)
def test_a_chunk_that_raises_leaves_no_trace(tmp_path: Path, fail_on: str) -> None:
    ref = _reference(tmp_path)
    ing = Ingest(tmp_path / "run")
    real_append, armed = ing.files.append, [True]

    def append(name: str, data: bytes) -> None:
        real_append(name, data)  # written, then the failure: the worst moment
        if name == fail_on and armed[0]:
            armed[0] = False
            raise OSError(28, "No space left on device (test)")

    chunks = _chunks()
    failed_at = None
    for k, (name, data) in enumerate(chunks):
        ing.files.append = append
        try:
            ing.process(name, data)
        except OSError:
            failed_at = k
            ing.save()  # what the service's finally does: it must hold no half chunk
            ing.close()
            ing = Ingest(tmp_path / "run")  # the restart; the chunk is replayed
            real_append = ing.files.append
            ing.process(name, data)
    assert failed_at is not None
    ing.finish()
    ing.save()
    ing.close()
    assert _files(tmp_path / "run") == _files(ref)
    assert _records(tmp_path / "run") == _records(ref)


def test_rollback_without_restart_then_retry(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    ing = Ingest(tmp_path / "run")
    real_render, calls = ing._render, []

    def render(frame):  # noqa: ANN001, ANN202
        calls.append(frame)
        if len(calls) == 30:
            raise KeyboardInterrupt  # not an Exception: the chunk must still roll back
        return real_render(frame)

    ing._render = render
    for name, data in _chunks():
        try:
            ing.process(name, data)
        except KeyboardInterrupt:
            ing.process(name, data)
    ing.finish()
    ing.save()
    ing.close()
    assert len(calls) > 30
    assert _files(tmp_path / "run") == _files(ref)
    assert _records(tmp_path / "run") == _records(ref)


def test_hostile_frames_are_counted_and_explained(tmp_path: Path) -> None:
    ing = Ingest(tmp_path / "run")
    for name, data in _chunks():
        ing.process(name, data)
    ing.finish()
    c = ing.counters()
    for kind, n in Counter(k for k, _, _ in HOSTILE).items():
        assert c[kind] == n, kind
    assert c["rejected"] == len(HOSTILE) and c["internal_errors"] == 0
    ing.save()
    recs = [json.loads(x) for x in (tmp_path / "run/rejected.jsonl").read_text().splitlines()]
    assert [(r["kind"]) for r in recs] == [k for k, _, _ in HOSTILE]
    assert [(r["type"]) for r in recs] == [t.name for _, t, _ in HOSTILE]
    forged = recs[[k for k, (_, t, _) in enumerate(HOSTILE) if t is FrameType.RESULT][1]]
    assert forged["field"] == "workers[0].work_units" and "missing" in forged["reason"]
    assert ing.cp.result == {"passed": True, "reason": "ok", "workers": []}  # not the forged one
    logs = [m["payload"]["msg"] for m in ing.messages(0, 10_000) if m["type"] == "LOG"]
    assert logs == [real_marker(0, k) for k in range(len(HOSTILE))]
    ing.close()


def test_a_frame_the_collector_fails_on_is_counted_and_skipped(tmp_path: Path) -> None:
    ing = Ingest(tmp_path / "run")
    real_render = ing._render

    def render(frame):  # noqa: ANN001, ANN202
        if frame.type is FrameType.DUMP:
            raise ValueError("a bug in the collector (test)")
        return real_render(frame)

    ing._render = render
    for name, data in _chunks():
        ing.process(name, data)
    assert ing.cp.internal_errors == 20
    assert (tmp_path / "run/kernel.log").read_bytes() == b""
    assert [m["type"] for m in ing.messages(0, 10_000)].count("STDOUT") == 20
    ing.close()


def test_messages_are_served_from_disk_across_reopen(tmp_path: Path) -> None:
    big = ["\x01" * 60_000] * 16  # JSON escapes each as \u0001: one line of ~5.8 MB
    ing = Ingest(tmp_path / "run")
    ing.process("bulk", encode_frame(FrameType.PHASE, {"name": "a", "t_ns": 1}))
    ing.process("bulk", encode_frame(FrameType.PHASE, {"name": "big", "t_ns": 2, "x": big}))
    ing.process("bulk", encode_frame(FrameType.PHASE, {"name": "c", "t_ns": 3}))
    before = ing.messages(0, 10)
    ing.save()
    ing.close()
    ing = Ingest(tmp_path / "run")
    assert ing.message_count == 3 and ing.messages(0, 10) == before
    assert [m["payload"]["name"] for m in ing.messages(1, 2)] == ["big", "c"]
    assert ing.messages(1, 1)[0]["payload"]["x"] == big
    assert ing.messages(3, 5) == [] and ing.messages(-4, 1) == before[:1]
    ing.close()
