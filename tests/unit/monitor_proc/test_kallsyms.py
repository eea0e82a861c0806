import json
import time

import pytest

from monitor_proc.kallsyms import KallsymsError, find_kallsyms, load_symbols
from monitor_proc.symbols import SymbolNotFound, parse_system_map

BASE = 0xFFFFFFFF82000000
TEXT = 0xFFFFFFFF81000000


def _decode(blob, text=TEXT):
    return find_kallsyms(blob, lambda off: BASE + off, text)


@pytest.mark.parametrize(
    "layout,align", [("pcrel", 4), ("pcrel", 8), ("relbase", 8), ("old_relbase", 8), ("seqs", 8)]
)
def test_layouts_decode_every_symbol(kallsyms_builder, sample_symbols, layout, align):
    syms = sample_symbols(700)
    blob = kallsyms_builder(syms, layout=layout, base_va=BASE, align=align)
    tables, got = _decode(blob)
    assert tables.num_syms == 700
    assert got == syms
    assert tables.encoding == ("pcrel" if layout == "pcrel" else "relbase")


def test_absolute_percpu_symbols(kallsyms_builder, sample_symbols):
    percpu = [("fixed_percpu_data", 0, "D"), ("runqueues_pcpu", 0x32100, "D")]
    syms = percpu + sample_symbols(600)
    blob = kallsyms_builder(syms, layout="abs_percpu", base_va=BASE, align=8)
    tables, got = _decode(blob)
    assert tables.encoding == "abs_percpu"
    assert got == syms


def test_long_names_use_two_byte_lengths(kallsyms_builder, sample_symbols):
    syms = sample_symbols(300)
    syms.append(("z" * 200 + "_long", syms[-1][1] + 0x10, "t"))  # compressed length > 127
    tables, got = _decode(kallsyms_builder(syms, layout="pcrel", base_va=BASE))
    assert got[-1] == syms[-1]


def test_wrong_text_address_is_rejected(kallsyms_builder, sample_symbols):
    blob = kallsyms_builder(sample_symbols(700), layout="pcrel", base_va=BASE)
    with pytest.raises(KallsymsError):
        _decode(blob, text=TEXT + 0x1000)


def test_garbage_has_no_tables():
    with pytest.raises(KallsymsError):
        _decode(bytes(range(256)) * 64)


def test_corrupt_marker_is_rejected(kallsyms_builder, sample_symbols):
    blob = bytearray(kallsyms_builder(sample_symbols(700), layout="pcrel", base_va=BASE))
    tables, _ = _decode(bytes(blob))
    blob[tables.markers_off + 4] ^= 0x01  # second marker off by one
    with pytest.raises(KallsymsError):
        _decode(bytes(blob))


def test_system_map_stub_is_ignored_and_real_one_used(tmp_path):
    stub = tmp_path / "System.map"
    stub.write_text("ffffffffffffffff B The real System.map is in the -dbg package\n")
    assert parse_system_map(stub) is None
    real = tmp_path / "System.map.real"
    real.write_text("".join(f"ffffffff81{i:06x} T f{i}\n" for i in range(2000)))
    table = parse_system_map(real)
    assert table.address("f17") == 0xFFFFFFFF81000011
    with pytest.raises(SymbolNotFound, match="'nope' not found in System.map"):
        table.address("nope")


# -- the real kernel ----------------------------------------------------------------------


def test_real_kernel_symbols_and_cache(real_vmlinux, tmp_path):
    t0 = time.perf_counter()
    cold = load_symbols(real_vmlinux, cache_dir=tmp_path)
    t1 = time.perf_counter()
    warm = load_symbols(real_vmlinux, cache_dir=tmp_path)
    t2 = time.perf_counter()
    print(f"kallsyms cold {t1 - t0:.2f}s, cached {t2 - t1:.2f}s, {len(cold)} symbols")
    assert len(cold) > 50_000 and len(warm) == len(cold)
    assert cold.address("_text") == 0xFFFFFFFF81000000
    for name in ("runqueues", "__per_cpu_offset", "page_offset_base", "schedule"):
        assert warm.address(name) == cold.address(name)
    assert cold.lookup(cold.address("schedule") + 3) == ("schedule", 3)
    (cache,) = tmp_path.glob("*.json")
    assert json.loads(cache.read_text())["symbols"]["schedule"][1] in "Tt"
    with pytest.raises(SymbolNotFound):
        cold.address("no_such_symbol_anywhere")


def test_real_kernel_percpu_symbol_matches_btf(real_vmlinux):
    from monitor_proc.btf import Btf

    syms = load_symbols(real_vmlinux)
    off, size = Btf.load(real_vmlinux).datasec_var(".data..percpu", "runqueues")
    start = syms.address("__per_cpu_start")
    assert syms.address("runqueues") - start == off  # non-zero-based per-CPU (x86 >= 6.15)
    assert size > 1000


def test_names_that_are_not_symbols_are_rejected(kallsyms_builder, sample_symbols):
    syms = [(f"bad name {i}", a, "?") for i, (_, a, _) in enumerate(sample_symbols(700))]
    syms[0] = ("_text", TEXT, "T")
    with pytest.raises(KallsymsError):
        _decode(kallsyms_builder(syms, layout="pcrel", base_va=BASE))
