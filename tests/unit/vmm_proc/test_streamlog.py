import pytest

from vmm_proc.streamlog import ReplayGone, StreamLog


def test_append_and_replay_in_order() -> None:
    lg = StreamLog()
    for i in range(5):
        assert lg.append(bytes([i]) * 10) == i
    assert [s for s, _ in lg.replay(2, 1 << 20)] == [2, 3, 4]
    assert lg.replay(5, 100) == []
    assert [s for s, _ in lg.replay(0, 25)] == [0, 1]  # about max_bytes, whole chunks
    assert [s for s, _ in lg.replay(0, 1)] == [0]  # never zero when data exists


def test_eviction_keeps_bytes_bounded_and_says_gone() -> None:
    lg = StreamLog(retain_bytes=30)
    for _ in range(10):
        lg.append(b"x" * 10)
    assert lg.first_seq == 7 and lg.total_bytes == 100
    with pytest.raises(ReplayGone):
        lg.replay(3, 100)
    assert [s for s, _ in lg.replay(7, 100)] == [7, 8, 9]
