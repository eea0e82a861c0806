"""The BPF plans against every cached real kernel's BTF (7.2 and trixie's 6.12): each
structure the BPF helpers read resolves, at the offsets BTF gives."""

from pathlib import Path

import pytest

from monitor_proc.helpers import bpf_map, bpf_prog, btf_object, xarray
from monitor_proc.program import Program
from tests.framework.prereq import missing


def _kernels() -> list[Path]:
    from schedlab_shared.cache import kernels_dir

    d = kernels_dir()
    return sorted(d.glob("*/vmlinux")) if d.is_dir() else []


@pytest.mark.parametrize(
    "vmlinux", _kernels() or [None], ids=lambda p: p.parent.name if p else "none"
)
def test_bpf_plans_resolve(vmlinux: Path | None) -> None:
    if vmlinux is None:
        missing("no kernel in ~/.cache/schedlab/kernels")
    prog = Program(vmlinux, memory=None)
    p = bpf_prog._plan(prog)
    assert p is not None and p.aux_verified_off is not None
    assert p.types[27] == "STRUCT_OPS" and p.aux_name[1] == 16  # BPF_OBJ_NAME_LEN
    m = bpf_map._plan(prog)
    assert m is not None and m.types[2] == "ARRAY" and m.types[1] == "HASH"
    assert m.array_value == prog.struct("bpf_array").size  # the values follow the header
    assert m.bucket_size == 16 and m.elem_key == prog.struct("htab_elem").size
    assert xarray._plan(prog).chunk == 64  # XA_CHUNK_SIZE on x86_64
    assert btf_object._plan(prog).base_off is not None
