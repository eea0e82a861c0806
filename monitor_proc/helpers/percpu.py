"""Per-CPU variables (:linux:`include/linux/percpu-defs.h`).

On x86_64 a per-CPU symbol was once a small offset into ``.data..percpu`` (zero-based
per-CPU area) and is now a real address inside it (Linux commit "x86/percpu: Remove
zero-based percpu" family, v6.15); either way ``per_cpu_ptr(&var, cpu) = &var +
__per_cpu_offset[cpu]``, so only the symbol's cross-check with BTF depends on the style.
"""

from __future__ import annotations

import logging
import struct

from monitor_proc.btf import BtfError
from monitor_proc.program import BadDataError, Program
from monitor_proc.symbols import SymbolNotFound

__all__ = ("per_cpu_offset", "per_cpu_offsets", "per_cpu_ptr", "percpu_symbol")

log = logging.getLogger(__name__)
_U64 = (1 << 64) - 1


def per_cpu_offset(prog: Program, cpu: int) -> int:
    """``__per_cpu_offset[cpu]``.

    :param cpu: CPU number, below the guest's ``nr_cpu_ids``.
    :raises IndexError: ``cpu`` out of range.
    """
    n = prog.nr_cpu_ids
    if not 0 <= cpu < n:
        raise IndexError(f"cpu {cpu} out of range (nr_cpu_ids = {n})")
    return prog.read_u64(prog.symbol("__per_cpu_offset") + 8 * cpu)


def per_cpu_offsets(prog: Program) -> tuple[int, ...]:
    """``__per_cpu_offset[0 .. nr_cpu_ids)`` in one read.

    >>> per_cpu_offsets(prog)[1] == per_cpu_offset(prog, 1)
    True
    """
    n = prog.nr_cpu_ids
    return struct.unpack(f"<{n}Q", prog.read(prog.symbol("__per_cpu_offset"), 8 * n))


def per_cpu_ptr(prog: Program, ptr: int, cpu: int) -> int:
    """Address of ``cpu``'s copy of a per-CPU variable.

    >>> per_cpu_ptr(prog, percpu_symbol(prog, "runqueues"), 1)

    :param ptr: ``&var`` (symbol address or zero-based offset, as the kernel uses it).
    :param cpu: CPU number.
    :returns: ``void *`` (kernel virtual address)
    """
    return (ptr + per_cpu_offset(prog, cpu)) & _U64


def percpu_symbol(prog: Program, name: str) -> int:
    """``&name`` of a per-CPU variable, checked against BTF's ``.data..percpu`` DATASEC (or
    computed from it when kallsyms lacks the symbol). Memoised in ``prog.cache``.

    :raises BadDataError: symbol and BTF disagree.
    :raises SymbolNotFound: neither source knows the variable.
    """
    key = f"percpu:{name}"
    if key in prog.cache:
        return prog.cache[key]
    start = prog.symbol("__per_cpu_start")
    try:
        btf_off: int | None = prog.btf.datasec_var(".data..percpu", name)[0]
    except BtfError:
        btf_off = None
    try:
        addr = prog.symbol(name)
    except SymbolNotFound:
        if btf_off is None:
            raise
        addr = start + btf_off
    if btf_off is not None and addr - start != btf_off:
        raise BadDataError(
            f"per-CPU {name}: symbol {addr:#x} - __per_cpu_start {start:#x} "
            f"!= BTF offset {btf_off:#x}"
        )
    prog.cache[key] = addr
    return addr
