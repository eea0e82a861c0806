import dataclasses

import pytest

from vmm_proc.kvm.exits import Hlt, IoIn, IoOut, MmioRead, MmioWrite, Unsupported


def test_io_in_reply_passes_exact_length_to_sink():
    got = []
    exit_ = IoIn(0x60, 2, 3, got.append)
    exit_.reply(b"abcdef")
    assert got == [b"abcdef"]


@pytest.mark.parametrize("data", [b"", b"abc", b"abcdefg"])
def test_io_in_reply_rejects_wrong_length(data):
    got = []
    with pytest.raises(ValueError, match="0x60"):
        IoIn(0x60, 2, 3, got.append).reply(data)
    assert got == []


def test_mmio_read_reply_checks_length():
    got = []
    MmioRead(0xFEE00000, 4, got.append).reply(b"\1\2\3\4")
    assert got == [b"\1\2\3\4"]
    with pytest.raises(ValueError):
        MmioRead(0xFEE00000, 4, got.append).reply(b"\1")


def test_exits_are_frozen_and_compare_by_value():
    assert IoOut(0x3F8, 1, 1, b"A") == IoOut(0x3F8, 1, 1, b"A")
    assert IoIn(1, 1, 1, print) == IoIn(1, 1, 1, len)  # the sink is not part of the value
    assert MmioWrite(0x1000, b"x") != MmioWrite(0x1000, b"y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        IoOut(0x3F8, 1, 1, b"A").port = 0  # type: ignore[misc]


def test_match_dispatch():
    def kind(e):
        match e:
            case IoOut(port=0x3F8, data=data):
                return f"serial {data!r}"
            case Hlt():
                return "hlt"
            case Unsupported(reason=r):
                return f"unsupported {r}"
        return "other"

    assert kind(IoOut(0x3F8, 1, 1, b"A")) == "serial b'A'"
    assert kind(Hlt()) == "hlt"
    assert kind(Unsupported(99)) == "unsupported 99"
