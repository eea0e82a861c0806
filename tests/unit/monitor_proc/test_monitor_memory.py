import mmap

import pytest

from monitor_proc.memory import DumpMemory, FaultError, GuestPhysMemory, ReaderMemory, Region
from tests.framework.fake_memory import FakeGuestMemory

MB = 1 << 20


@pytest.fixture
def ram_file(tmp_path):
    path = tmp_path / "schedlab-ram"
    data = bytearray(3 * MB)
    data[0x1000:0x1004] = b"low!"
    data[MB - 2 : MB + 2] = b"ABCD"  # straddles the first two regions' boundary
    data[2 * MB + 0x1800 : 2 * MB + 0x1804] = b"high"
    path.write_bytes(bytes(data))
    return path


def test_layout_regions_map_file_offsets(ram_file):
    layout = [
        {"gpa": 0, "size": MB, "path": str(ram_file), "offset": 0},
        {"gpa": MB, "size": MB, "path": str(ram_file), "offset": MB},
        {"gpa": 4 << 30, "size": 0x2000, "path": str(ram_file), "offset": 2 * MB + 0x800},
    ]
    with GuestPhysMemory(layout) as mem:
        assert mem.read(0x1000, 4) == b"low!"
        assert mem.read(MB - 2, 4) == b"ABCD"  # spans adjacent regions
        assert mem.read((4 << 30) + 0x1000, 4) == b"high"  # offset not page-aligned
        with pytest.raises(FaultError) as e:
            mem.read(2 * MB - 2, 4)  # runs into the gap
        assert e.value.address == 2 * MB
        with pytest.raises(FaultError):
            mem.read(-1, 1)


def test_mapping_is_read_only_and_live(ram_file):
    with GuestPhysMemory([Region(0, MB, str(ram_file))]) as mem:
        with open(ram_file, "r+b") as f:
            f.seek(0x2000)
            f.write(b"new")
            f.flush()
        assert mem.read(0x2000, 3) == b"new"  # MAP_SHARED sees writers
        assert mem._maps[0][1].closed is False
        with pytest.raises(TypeError):
            mem._maps[0][1][0] = 1  # PROT_READ


@pytest.mark.parametrize(
    "bad",
    [
        {"gpa": 0, "size": 4096},
        {"gpa": -1, "size": 4096, "path": "x", "offset": 0},
        {"gpa": 0, "size": 0, "path": "x", "offset": 0},
        {"gpa": "0", "size": 4096, "path": "x", "offset": 0},
        {"gpa": True, "size": 4096, "path": "x", "offset": 0},
    ],
)
def test_malformed_regions_are_rejected(bad):
    with pytest.raises(ValueError):
        Region.from_dict(bad)


def test_short_file_and_overlap_are_rejected(ram_file):
    with pytest.raises(ValueError, match="shorter"):
        GuestPhysMemory([Region(0, 4 * MB, str(ram_file))])
    with pytest.raises(ValueError, match="overlap"):
        GuestPhysMemory([Region(0, MB, str(ram_file)), Region(MB - 4096, MB, str(ram_file))])


def test_dump_memory(ram_file):
    with DumpMemory(ram_file) as mem:
        assert mem.read(0x1000, 4) == b"low!"
        with pytest.raises(FaultError):
            mem.read(3 * MB - 1, 2)


def test_reader_memory_adapts_fake_guest_memory():
    fake = FakeGuestMemory(2 * mmap.PAGESIZE)
    fake.write(8, b"xy")
    mem = ReaderMemory(fake.read)
    assert mem.read(8, 2) == b"xy"
    with pytest.raises(FaultError) as e:
        mem.read(2 * mmap.PAGESIZE - 1, 2)
    assert e.value.address == 2 * mmap.PAGESIZE - 1
