"""Engine-choice probe: does this /dev/kvm run guest kernel code in hardware or emulate it?

A real-mode (CPL0) micro-guest counts ECX down to zero between two port writes; the time
between the two exits divided by the count is the cost of one ``dec; jnz`` iteration.
Measured (FACTS §3): hardware KVM ~0.5 ns, KVM inside QEMU TCG ~9 ns, the nested software
hypervisor of the dev machines ~2100 ns. Hardware-class speed selects the KVM engine.

``python -m vmm_proc.probe [--json]`` prints the result.
"""

from __future__ import annotations

import argparse
import sys
import time

from schedlab_shared.kvm_probe import ProbeResult
from vmm_proc.kvm.errors import KvmError
from vmm_proc.kvm.exits import Hlt, IoOut
from vmm_proc.kvm.minivm import CODE_ADDR, MiniVm

__all__ = ("classify", "main", "probe")

# Above this many ns per iteration CPL0 code is emulated: 10x the KVM-in-TCG testbed,
# 20x under the emulating host.
HARDWARE_MAX_NS = 100.0
# Short first pass (~40 ms when emulated); a longer one only to refine a fast answer
# (hardware ~1 ms, testbed ~20 ms).
SHORT_ITERATIONS = 20_000
LONG_ITERATIONS = 2_000_000
SHORT_PASSES = 3
_MARK_PORT = 0x10
# Real mode: out 0x10,al; 1: dec ecx; jnz 1b; out 0x10,al; hlt
LOOP_CODE = bytes.fromhex("e610664975fce610f4")


def classify(ns_per_iteration: float | None, error: str = "") -> ProbeResult:
    """Turn a measurement (or the error that prevented it) into a ProbeResult."""
    if ns_per_iteration is None:
        return ProbeResult("unavailable", None, error or "no measurement")
    figure = f"CPL0 loop at {ns_per_iteration:.1f} ns/iteration"
    if ns_per_iteration < HARDWARE_MAX_NS:
        return ProbeResult("hardware", ns_per_iteration, f"{figure}: hardware-assisted KVM")
    return ProbeResult(
        "emulated",
        ns_per_iteration,
        f"{figure}: /dev/kvm emulates kernel-mode guest code (>= {HARDWARE_MAX_NS:.0f} ns)",
    )


def _measure(vm: MiniVm, iterations: int) -> float:
    """ns per iteration of the loop, timed between its two port writes."""
    cpu = vm.vcpus[0]
    vm.real_mode(0, CODE_ADDR, rcx=iterations)
    first = cpu.run()
    if not (isinstance(first, IoOut) and first.port == _MARK_PORT):
        raise RuntimeError(f"probe guest: unexpected first exit {first}")
    start = time.perf_counter_ns()
    second = cpu.run()
    elapsed = time.perf_counter_ns() - start
    if not isinstance(second, IoOut) or second.port != _MARK_PORT:
        raise RuntimeError(f"probe guest: unexpected exit {second}")
    last = cpu.run()
    if not isinstance(last, Hlt):
        raise RuntimeError(f"probe guest: expected HLT, got {last}")
    return elapsed / iterations


def probe(short: int = SHORT_ITERATIONS, long: int = LONG_ITERATIONS) -> ProbeResult:
    """Run the probe on /dev/kvm; never raises for a missing or broken KVM."""
    try:
        with MiniVm(mem_size=1 << 20, name="probe") as vm:
            vm.load(CODE_ADDR, LOOP_CODE)
            # Best of a few: a busy host can stall one pass of a KVM-in-TCG testbed by
            # 100x, while an emulating /dev/kvm is never fast.
            ns = _measure(vm, short)
            for _ in range(SHORT_PASSES - 1):
                if ns < HARDWARE_MAX_NS:
                    break
                ns = min(ns, _measure(vm, short))
            if ns < HARDWARE_MAX_NS:
                ns = _measure(vm, long)
    except KvmError as e:
        return classify(None, f"/dev/kvm unusable: {e}")
    except (OSError, RuntimeError) as e:
        return classify(None, f"probe failed: {e}")
    return classify(ns)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: print the result as one line, or as JSON with --json."""
    parser = argparse.ArgumentParser(prog="python -m vmm_proc.probe", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args(argv)
    result = probe()
    if args.json:
        print(result.to_json())
    else:
        print(f"{result.kind}: {result.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
