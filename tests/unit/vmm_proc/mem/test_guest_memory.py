import os
import struct
import subprocess
import sys
import uuid

import pytest

from vmm_proc.mem import PCI_HOLE_END, PCI_HOLE_START, GuestMemory, GuestMemoryError, split_ram


@pytest.fixture
def shm_path():
    path = f"/dev/shm/schedlab-test-{uuid.uuid4().hex[:12]}-mem"
    yield path
    assert not os.path.exists(path), "GuestMemory left its file behind"


def test_read_write_roundtrip(shm_path):
    with GuestMemory.create(shm_path, 1 << 20) as mem:
        mem.write(0x1000, b"schedlab")
        assert mem.read(0x1000, 8) == b"schedlab"
        assert mem.read(0, 4) == b"\0\0\0\0"


def test_struct_and_int_helpers(shm_path):
    with GuestMemory.create(shm_path, 1 << 20) as mem:
        mem.write_struct(0x200, "<IQ", 0xDEADBEEF, 1 << 40)
        assert mem.read_struct(0x200, "<IQ") == (0xDEADBEEF, 1 << 40)
        assert mem.read_struct(0x200, struct.Struct("<H")) == (0xBEEF,)
        mem.write_int(0x300, 2, 0x1234)
        assert mem.read(0x300, 2) == b"\x34\x12"
        assert mem.read_int(0x300, 2) == 0x1234


@pytest.mark.parametrize(
    ("gpa", "size", "completed"),
    [
        ((1 << 20) - 4, 8, 4),  # runs off the end
        (1 << 20, 1, 0),  # starts at the end
        (-1, 1, 0),
        (0, -1, 0),
        (1 << 64, 1, 0),
    ],
)
def test_out_of_range_raises_with_counts(shm_path, gpa, size, completed):
    with GuestMemory.create(shm_path, 1 << 20) as mem:
        with pytest.raises(GuestMemoryError) as info:
            mem.read(gpa, size)
        assert (info.value.addr, info.value.expected, info.value.completed) == (
            gpa,
            size,
            completed,
        )
        if size > 0:
            with pytest.raises(GuestMemoryError):
                mem.write(gpa, b"x" * size)


def test_zero_length_access_at_end_is_allowed(shm_path):
    with GuestMemory.create(shm_path, 1 << 20) as mem:
        assert mem.read(1 << 20, 0) == b""


def test_split_ram_below_hole_is_one_region():
    assert split_ram(256 << 20) == [(0, 256 << 20, 0)]


def test_split_ram_above_hole_continues_at_4g():
    size = PCI_HOLE_START + (512 << 20)
    assert split_ram(size) == [(0, PCI_HOLE_START, 0), (PCI_HOLE_END, 512 << 20, PCI_HOLE_START)]


def test_hole_split_mapping(shm_path):
    # 3 GiB + 2 MiB of sparse tmpfs file: only touched pages cost memory.
    size = PCI_HOLE_START + (2 << 20)
    with GuestMemory.create(shm_path, size) as mem:
        assert [(r.gpa, r.size, r.offset) for r in mem.regions] == split_ram(size)
        mem.write(PCI_HOLE_END + 16, b"high")
        assert mem.read(PCI_HOLE_END + 16, 4) == b"high"
        assert mem.file_offset(PCI_HOLE_END + 16, 4) == PCI_HOLE_START + 16
        with pytest.raises(GuestMemoryError):
            mem.read(PCI_HOLE_START, 1)  # inside the hole
        with pytest.raises(GuestMemoryError) as info:
            mem.read(PCI_HOLE_START - 2, 4)  # crosses into the hole
        assert info.value.completed == 2
        assert mem.host_address(PCI_HOLE_END) == mem.regions[1].host_addr


def test_layout_names_file_and_offsets(shm_path):
    with GuestMemory.create(shm_path, 1 << 20) as mem:
        assert mem.layout() == [{"gpa": 0, "size": 1 << 20, "path": shm_path, "offset": 0}]


def test_close_unmaps_unlinks_and_is_idempotent(shm_path):
    mem = GuestMemory.create(shm_path, 1 << 20)
    assert os.path.exists(shm_path)
    mem.close()
    mem.close()
    assert mem.closed
    assert not os.path.exists(shm_path)
    with pytest.raises(GuestMemoryError):
        mem.read(0, 1)


def test_existing_file_is_refused_and_kept(shm_path):
    with open(shm_path, "wb") as f:
        f.write(b"other")
    try:
        with pytest.raises(FileExistsError):
            GuestMemory.create(shm_path, 1 << 20)
        assert os.path.getsize(shm_path) == 5
    finally:
        os.unlink(shm_path)


@pytest.mark.parametrize("size", [0, -4096, 100])
def test_bad_size_rejected(shm_path, size):
    with pytest.raises(ValueError):
        GuestMemory.create(shm_path, size)


def test_name_must_carry_prefix():
    with pytest.raises(ValueError, match="schedlab-"):
        GuestMemory.create("/dev/shm/other-mem", 1 << 20)


def test_second_process_sees_writes(shm_path):
    with GuestMemory.create(shm_path, 1 << 20) as mem:
        mem.write(0x4000, b"\xa5" * 16)
        (region,) = mem.layout()
        code = (
            "import mmap,sys\n"
            "f=open(sys.argv[1],'rb'); m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\n"
            "sys.stdout.write(m[int(sys.argv[2]):int(sys.argv[2])+16].hex())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, region["path"], str(0x4000)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert out == "a5" * 16
