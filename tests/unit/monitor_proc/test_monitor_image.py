import hashlib

import pytest

from monitor_proc.helpers.sched import rq_sample
from monitor_proc.image import ImageError, KernelImage
from monitor_proc.kallsyms import load_symbols
from monitor_proc.memory import ReaderMemory
from monitor_proc.program import Program

TEXT = 0xFFFF_FFFF_8100_0000


def test_image_sections_segments_and_build_id(synthetic_vmlinux):
    path, _ = synthetic_vmlinux()
    img = KernelImage.open(path)
    try:
        assert img.section(".text").vaddr == TEXT
        assert img.build_id == "1234" * 10
        assert img.cache_key() == "1234" * 10
        assert img.offset_to_vaddr(0x1000) == TEXT
        assert img.vaddr_to_offset(TEXT + 0x100) == 0x1100
        assert img.vaddr_to_offset(TEXT - 1) is None
        assert img.section_bytes(".BTF")[:2] == b"\x9f\xeb"
        with pytest.raises(ImageError):
            img.section(".nope")
    finally:
        img.close()


def test_without_build_id_the_key_is_the_file_hash(synthetic_vmlinux):
    path, _ = synthetic_vmlinux(build_id=None)
    img = KernelImage.open(path)
    try:
        assert img.build_id is None
        assert img.cache_key() == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        img.close()


def test_not_an_elf(tmp_path):
    bad = tmp_path / "vmlinux"
    bad.write_bytes(b"MZ" + b"\0" * 200)
    with pytest.raises(ImageError):
        KernelImage.open(bad)


def test_load_symbols_recovers_then_uses_the_cache(synthetic_vmlinux, tmp_path):
    path, g = synthetic_vmlinux()
    cache = tmp_path / "cache"
    table = load_symbols(path, cache_dir=cache)
    assert table.address("runqueues") == g.syms["runqueues"]
    cache_file = cache / ("1234" * 10 + ".json")
    assert cache_file.is_file()
    path.write_bytes(path.read_bytes()[:0x1000])  # the image is no longer readable...
    with pytest.raises(ImageError):
        KernelImage.open(path)
    cache_file.write_text("{not json")  # ...and a corrupt cache is not used
    with pytest.raises(ImageError):
        load_symbols(path, cache_dir=cache)


def test_cached_table_is_used_without_decoding(synthetic_vmlinux, tmp_path, monkeypatch):
    path, g = synthetic_vmlinux()
    load_symbols(path, cache_dir=tmp_path)
    import monitor_proc.kallsyms as ks

    monkeypatch.setattr(ks, "_recover", lambda image: pytest.fail("cache not used"))
    assert load_symbols(path, cache_dir=tmp_path).address("phys_base") == g.syms["phys_base"]


def test_real_system_map_wins(tmp_path):
    sm = tmp_path / "System.map"
    sm.write_text("".join(f"ffffffff81{i:06x} T f{i}\n" for i in range(1500)))
    table = load_symbols(tmp_path / "does-not-exist", system_map=sm)
    assert table.address("f2") == 0xFFFFFFFF81000002


def test_program_end_to_end_from_a_synthetic_vmlinux(synthetic_vmlinux, tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDLAB_CACHE", str(tmp_path / "cache"))
    path, g = synthetic_vmlinux(levels=5, phys_base=0x400000)
    prog = Program(path, ReaderMemory(g.mem.read))
    assert prog.translator.layout.phys_base == 0x400000
    assert rq_sample(prog, 1)["curr_comm"] == "task1"
    assert (tmp_path / "cache" / "symbols" / ("1234" * 10 + ".json")).is_file()
