"""StatusLog: the host's reading of L1's status port (untrusted, bounded)."""

from orchestrator.testbed.protocol import MAX_STATUS_BYTES, StatusLog


def test_full_sequence_split_across_reads():
    s = StatusLog()
    for chunk in (b"phase mod", b"ules\nphase mounts\nphase ready 4", b".25\nex", b"it 7\n"):
        s.feed(chunk)
    assert s.phases == ["modules", "mounts", "ready"]
    assert s.ready_uptime_s == 4.25
    assert s.exit_code == 7
    assert s.errors == []


def test_error_line_and_no_exit():
    s = StatusLog()
    s.feed(b"phase modules\nl1-error insmod kvm_amd.ko failed\n")
    assert s.errors == ["insmod kvm_amd.ko failed"]
    assert s.exit_code is None


def test_partial_last_line_is_not_interpreted():
    s = StatusLog()
    s.feed(b"exit 3")
    assert s.exit_code is None
    s.feed(b"\n")
    assert s.exit_code == 3


def test_first_exit_wins_and_out_of_range_ignored():
    s = StatusLog()
    s.feed(b"exit 300\nexit 1\nexit 2\n")
    assert s.exit_code == 1


def test_garbage_ignored():
    s = StatusLog()
    s.feed(b"\xff\xfe junk\nexit -1\nexit 1a\nphase ready abc\n")
    assert s.exit_code is None
    assert s.ready_uptime_s is None
    assert s.phases == ["ready"]


def test_input_is_bounded():
    s = StatusLog()
    s.feed(b"x" * (MAX_STATUS_BYTES + 10))
    s.feed(b"\nexit 5\n")  # beyond the cap: dropped
    assert s.exit_code is None
    assert len(s._buf) <= 512
