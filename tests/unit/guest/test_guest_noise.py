from guest import wire
from guest.noise import noise_round


def test_noise_is_counted_and_real_frames_survive() -> None:
    dec = wire.FrameDecoder()
    real = [wire.encode_frame(wire.FrameType.EXIT, {"code": i}) for i in range(5)]
    stream = b"".join(noise_round(i) + real[i] for i in range(5))
    frames = [f for k in range(0, len(stream), 7) for f in dec.feed(stream[k : k + 7])]
    frames += dec.finish()
    codes = [f.payload["code"] for f in frames if f.type is wire.FrameType.EXIT]
    assert codes == [0, 1, 2, 3, 4]
    s = dec.stats
    assert s.bad_crc >= 5 and s.unknown_type == 5 and s.oversize >= 5 and s.garbage_bytes > 0
