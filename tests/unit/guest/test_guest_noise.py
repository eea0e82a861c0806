from collections import Counter

from guest import wire
from guest.noise import HOSTILE, noise_round, real_marker


def test_noise_is_counted_and_real_frames_survive() -> None:
    rejected = []
    dec = wire.FrameDecoder(on_reject=lambda off, t, e: rejected.append((t, e.kind, e.field)))
    real = [wire.encode_frame(wire.FrameType.EXIT, {"code": i}) for i in range(5)]
    stream = b"".join(noise_round(i) + real[i] for i in range(5))
    frames = [f for k in range(0, len(stream), 7) for f in dec.feed(stream[k : k + 7])]
    frames += dec.finish()
    codes = [f.payload["code"] for f in frames if f.type is wire.FrameType.EXIT]
    assert codes == [0, 1, 2, 3, 4]
    markers = [f.payload["msg"] for f in frames if f.type is wire.FrameType.LOG]
    assert markers == [real_marker(i, k) for i in range(5) for k in range(len(HOSTILE))]
    s = dec.stats
    assert s.bad_crc >= 5 and s.unknown_type == 5 and s.oversize >= 5 and s.garbage_bytes > 0
    want = Counter(kind for kind, _, _ in HOSTILE)
    for kind, n in want.items():
        assert getattr(s, kind) == 5 * n, kind
    assert len(rejected) == 5 * (len(HOSTILE) + 1)  # + the unknown type, each round
    assert (int(wire.FrameType.RESULT), "bad_field", "workers[0].work_units") in rejected
