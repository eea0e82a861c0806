"""Port-I/O exit round trip of the Python KVM layer against the same loop in C.

The guest (real mode) does ``out`` N times; each exit goes to user space and back.
Both figures include the guest's own ``dec; jnz``, emulated on hosts without hardware
CPL0 (FACTS §6: 13-26 us per exit from Python, 9.6 us from C on the dev machines).

``python -m vmm_proc.bench.exit_latency [--exits N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vmm_proc.kvm.exits import Hlt, IoOut
from vmm_proc.kvm.minivm import CODE_ADDR, MiniVm

__all__ = ("run_exit_benchmark", "main")

# Real mode: 1: out 0x10,al; dec ecx; jnz 1b; hlt
OUT_LOOP = bytes.fromhex("e610664975faf4")
_C_SOURCE = Path(__file__).with_name("exit_ref.c")


def python_exit_ns(exits: int) -> float:
    """Mean ns per IoOut exit of ``VcpuFd.run()`` over ``exits`` exits."""
    with MiniVm(name="bench") as vm:
        vm.load(CODE_ADDR, OUT_LOOP)
        vm.real_mode(0, CODE_ADDR, rcx=exits)
        cpu = vm.vcpus[0]
        seen = 0
        start = time.perf_counter_ns()
        while True:
            ex = cpu.run()
            if type(ex) is IoOut:
                seen += 1
            elif type(ex) is Hlt:
                break
            else:
                raise RuntimeError(f"benchmark guest: unexpected exit {ex}")
        elapsed = time.perf_counter_ns() - start
    if seen != exits:
        raise RuntimeError(f"benchmark guest: {seen} exits, expected {exits}")
    return elapsed / exits


class CReference:
    """exit_ref.c built with gcc in a temporary directory, removed by close().

    :raises RuntimeError: if gcc is missing; CalledProcessError if the build fails.
    """

    def __init__(self) -> None:
        gcc = shutil.which("gcc")
        if gcc is None:
            raise RuntimeError("gcc not found")
        self._tmp = tempfile.TemporaryDirectory(prefix="schedlab-bench-")
        self._exe = os.path.join(self._tmp.name, "exit_ref")
        self._code = os.path.join(self._tmp.name, "guest.bin")
        try:
            Path(self._code).write_bytes(OUT_LOOP)
            subprocess.run(
                [gcc, "-O2", "-o", self._exe, str(_C_SOURCE)],
                check=True,
                capture_output=True,
                text=True,
            )
        except BaseException:
            self.close()
            raise

    def exit_ns(self, exits: int) -> float:
        """Mean ns per exit of one run of the C loop."""
        out = subprocess.run(
            [self._exe, self._code, str(exits)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
        fields = dict(item.split("=") for item in out.split())
        if int(fields["exits"]) != exits:
            raise RuntimeError(f"C reference: {fields['exits']} exits, expected {exits}")
        return int(fields["ns"]) / exits

    def close(self) -> None:
        """Remove the build directory."""
        self._tmp.cleanup()


def run_exit_benchmark(exits: int = 20000, repeats: int = 3) -> dict[str, float | int | str | None]:
    """Alternate the Python and C loops ``repeats`` times and keep each one's best run.

    :return: ``{"exits", "repeats", "python_us_per_exit", "c_us_per_exit", "ratio"}``; the
        C figure and ratio are None, with ``"c_error"`` set, when the reference cannot be
        built or run.
    """
    if exits < 1 or repeats < 1:
        raise ValueError("exits and repeats must be positive")
    python_ns, c_ns = [], []
    c_error = ""
    try:
        ref: CReference | None = CReference()
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        ref, c_error = None, str(e)
    try:
        for _ in range(repeats):
            python_ns.append(python_exit_ns(exits))
            if ref is not None:
                c_ns.append(ref.exit_ns(exits))
    finally:
        if ref is not None:
            ref.close()
    python_us = min(python_ns) / 1000
    c_us = min(c_ns) / 1000 if c_ns else None
    result: dict[str, float | int | str | None] = {
        "exits": exits,
        "repeats": repeats,
        "python_us_per_exit": python_us,
        "c_us_per_exit": c_us,
        "ratio": python_us / c_us if c_us else None,
    }
    if c_error:
        result["c_error"] = c_error
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry: print the figures."""
    parser = argparse.ArgumentParser(prog="python -m vmm_proc.bench.exit_latency")
    parser.add_argument("--exits", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    r = run_exit_benchmark(args.exits, args.repeats)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"exits: {r['exits']} (best of {r['repeats']})")
    print(f"python: {r['python_us_per_exit']:.2f} us/exit")
    if r["c_us_per_exit"] is None:
        print(f"c reference: unavailable ({r.get('c_error')})")
    else:
        print(f"c reference: {r['c_us_per_exit']:.2f} us/exit")
        print(f"ratio python/c: {r['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
