"""guest/transfer.py: the host -> guest sequence of the run's inputs and the guest's answer."""

import hashlib
import io

import pytest

from guest import rundoc, transfer, wire
from guest.rundoc import FileEntry, Scheduler
from guest.spec import RunSpec
from guest.transfer import InputsParser, TransferError, check_ack
from guest.wire import FrameDecoder, FrameType

SPEC = RunSpec("cgroup-spinners", duration=0.5)


def entry(kind, name, data, mode=0o644):
    return FileEntry(kind, name, mode, len(data), hashlib.sha256(data).hexdigest())


def make(files):
    """(doc, frames bytes) for [(kind, name, data), ...]."""
    entries = [entry(k, n, d) for k, n, d in files]
    doc = rundoc.build(SPEC, files=entries, entropy=bytes(32))
    blob = b"".join(transfer.frames(doc, lambda i: io.BytesIO(files[i][2]), chunk=1000))
    return doc, blob


def parse(blob):
    d = FrameDecoder(accept=wire.HOST_TO_GUEST)
    frames = d.feed(blob) + d.finish()
    assert d.stats.garbage_bytes == 0
    return frames


def events(frames):
    p = InputsParser()
    out = [p.feed(f) for f in frames]
    return p, out


def test_round_trip_two_files():
    a, b = b"A" * 2500, b""
    doc, blob = make([("scheduler", "scx", a), ("include", "empty", b)])
    p, ev = events(parse(blob))
    assert p.done and p.bytes == 2500
    assert [e[0] for e in ev] == ["run", "begin", "chunk", "chunk", "chunk", "end", "begin", "end"]
    assert b"".join(e[2] for e in ev if e[0] == "chunk") == a
    assert ev[0][1].files[0].name == "scx"


def test_run_without_files_is_done_at_once():
    doc = rundoc.build(SPEC, entropy=bytes(32))
    p, ev = events(parse(b"".join(transfer.frames(doc, lambda i: None))))
    assert p.done and [e[0] for e in ev] == ["run"]


def frame(ftype, payload):
    return wire.decode_frame(wire.encode_frame(ftype, payload))


def fresh(files=(("payload", "p", b"x" * 10),)):
    doc, blob = make(list(files))
    return parse(blob)


def test_hostile_sequences():
    good = fresh()
    run, begin, chunk, end = good
    cases = [
        ([begin], "expected RUN first"),
        ([run, run], "a second RUN"),
        ([run, chunk], "before its FILE_BEGIN"),
        ([run, begin, begin], "a second FILE_BEGIN"),
        ([run, frame(FrameType.FILE_BEGIN, {**begin.payload, "index": 1})], "expected file 0"),
        (
            [run, frame(FrameType.FILE_BEGIN, {**begin.payload, "size": 11})],
            "differs from files[0]",
        ),
        ([run, frame(FrameType.FILE_BEGIN, {**begin.payload, "name": "../x"})], "name"),
        ([run, frame(FrameType.FILE_BEGIN, {**begin.payload, "extra": 1})], "unknown field"),
        ([run, begin, frame(FrameType.FILE_CHUNK, {**chunk.payload, "offset": 1})], "expected 0"),
        (
            [run, begin, frame(FrameType.FILE_CHUNK, {**chunk.payload, "data": b"x" * 11})],
            "more than its 10 bytes",
        ),
        (
            [run, begin, frame(FrameType.FILE_CHUNK, {**chunk.payload, "data": b"x" * 5}), end],
            "truncated, 5 of 10",
        ),
        ([run, begin, chunk, end, end], "after the last input"),
        ([frame(FrameType.RUN, {"doc": {**run.payload["doc"], "version": 9}})], "bad run document"),
    ]
    for seq, msg in cases:
        p = InputsParser()
        with pytest.raises(TransferError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            for f in seq:
                p.feed(f)


def test_out_of_range_fields_are_refused_by_the_frame_schema():
    begin = fresh()[1].payload
    for bad in ({"index": -1}, {"index": 256}, {"mode": 0o1000}, {"sha256": "0" * 65}):
        with pytest.raises(wire.WireError):
            wire.encode_frame(FrameType.FILE_BEGIN, {**begin, **bad})


def test_oversize_chunk_rejected():
    data = b"z" * (transfer.MAX_CHUNK + 1)
    doc = rundoc.build(SPEC, files=[entry("payload", "big", data)], entropy=bytes(32))
    frames = parse(
        b"".join(transfer.frames(doc, lambda i: io.BytesIO(data), chunk=transfer.MAX_CHUNK + 1))
    )
    p = InputsParser()
    p.feed(frames[0])
    p.feed(frames[1])
    with pytest.raises(TransferError, match="> 262144"):
        p.feed(frames[2])


def test_sender_notices_a_file_that_changed_size():
    e = entry("payload", "p", b"x" * 10)
    doc = rundoc.build(SPEC, files=[e], entropy=bytes(32))
    with pytest.raises(TransferError, match="shorter"):
        list(transfer.frames(doc, lambda i: io.BytesIO(b"x" * 5)))
    with pytest.raises(TransferError, match="longer"):
        list(transfer.frames(doc, lambda i: io.BytesIO(b"x" * 11)))


def test_the_guest_decoder_refuses_guest_to_host_types_and_the_host_the_reverse():
    log = wire.encode_frame(FrameType.LOG, {"level": "info", "msg": "x"})
    run = wire.encode_frame(FrameType.RUN, {"doc": {}})
    g = FrameDecoder(accept=wire.HOST_TO_GUEST)
    assert g.feed(log) == [] and g.stats.unknown_type == 1
    h = FrameDecoder(accept=wire.GUEST_TO_HOST)
    assert h.feed(run) == [] and h.stats.unknown_type == 1
    every = wire.GUEST_TO_HOST | wire.HOST_TO_GUEST | wire.SHELL_TO_HOST | wire.SHELL_TO_GUEST
    assert every == set(FrameType)
    assert not (wire.SHELL_TO_HOST | wire.SHELL_TO_GUEST) & (
        wire.GUEST_TO_HOST | wire.HOST_TO_GUEST
    )


# -- the ack -----------------------------------------------------------------------------

E = entry("scheduler", "scx", b"bin", 0o755)


def test_ack_round_trip():
    payload = transfer.ack_ok([(E, E.sha256)], 3, 5_000_000, "ioctl")
    wire.decode_frame(wire.encode_frame(FrameType.INPUTS_ACK, payload))
    ack = check_ack(payload, [E])
    assert ack.ok and ack.files[0].path == E.path and ack.recv_ms == 5.0 and ack.entropy == "ioctl"


@pytest.mark.parametrize(
    "payload,msg",
    [
        ("nope", "malformed"),
        ({"ok": 1}, "malformed"),
        ({"ok": False, "error": "x" * 5000, "files": []}, "x" * 1000),
        ({"ok": False, "error": "", "files": []}, "no reason"),
        ({"ok": True, "error": "", "files": []}, "acknowledged 0 files of 1"),
        ({"ok": True, "error": "", "files": "x"}, "acknowledged no files"),
        (
            {
                "ok": True,
                "error": "",
                "files": [{**transfer.ack_ok([(E, "0" * 64)], 1, 1, "")["files"][0]}],
            },
            "differs",
        ),
        (
            {
                "ok": True,
                "error": "",
                "files": [
                    {
                        **transfer.ack_ok([(E, E.sha256)], 1, 1, "")["files"][0],
                        "path": "/etc/passwd",
                    }
                ],
            },
            "differs",
        ),
    ],
)
def test_hostile_acks_become_errors(payload, msg):
    ack = check_ack(payload, [E])
    assert not ack.ok and msg in ack.error and len(ack.error) <= transfer.MAX_ERROR


def test_ack_numbers_bounded():
    payload = {
        **transfer.ack_ok([(E, E.sha256)], 3, 1, "x" * 5000),
        "bytes": -5,
        "recv_ns": 1 << 70,
    }
    ack = check_ack(payload, [E])
    assert ack.ok and ack.bytes == 0 and ack.recv_ms == 0 and len(ack.entropy) == 1000


def test_error_ack_is_bounded():
    assert len(transfer.ack_error("e" * 9999)["error"]) == transfer.MAX_ERROR


def test_scheduler_in_inputs():
    doc = rundoc.build(SPEC, files=[E], scheduler=Scheduler(E.path, ("-f",)), entropy=bytes(32))
    p, ev = events(parse(b"".join(transfer.frames(doc, lambda i: io.BytesIO(b"bin")))))
    assert p.done and ev[0][1].scheduler.path == "/run/schedlab/inputs/scheduler/scx"


def test_wire_schemas_bound_what_rundoc_bounds():
    assert wire._XFER_FILES == rundoc.MAX_FILES and wire._XFER_TEXT == transfer.MAX_ERROR
    payload = transfer.ack_ok([(E, E.sha256)], 3, 1, "ioctl", {"reads": 1, "wait_ns": 2})
    wire.check_payload(FrameType.INPUTS_ACK, payload)
    for bad in ({**payload, "error": "e" * 1001}, {**payload, "files": [{"kind": 1}]}):
        with pytest.raises(wire.WireError):
            wire.check_payload(FrameType.INPUTS_ACK, bad)
    with pytest.raises(wire.WireError):
        wire.check_payload(FrameType.FILE_CHUNK, {"index": 256, "offset": 0, "data": b""})
