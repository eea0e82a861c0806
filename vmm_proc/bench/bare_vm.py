"""The reference for ``schedlab bench overhead``: a bare VM's lifetime, QEMU start to exit.

The VM runs through the same engine (and so the same QEMU command line) as a schedlab run,
with the image the caller gives (a busybox init that powers off at once); nothing else
runs: no bus, no collector, no monitor. Prints one JSON object:
``{"lifetime_s", "exit_reason", "exit_detail", "console_tail"}``.

``python -m vmm_proc.bench.bare_vm --engine qemu --kernel K --initrd I --cmdline C``
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from schedlab_shared.bus.vmm import ExitReason, Stream
from schedlab_shared.topology import Topology, TopologyError
from schedlab_shared.vm_config import VmConfig

from ..engines.base import EngineError

__all__ = ("BareVmResult", "run_bare_vm", "main")

_TAIL_BYTES = 4096


class _Hooks:
    """EngineHooks that keep the console's tail and wake the waiter on exit."""

    def __init__(self) -> None:
        self.console = bytearray()
        self.exit: tuple[str, str] | None = None
        self.exited_at = 0.0
        self.done = threading.Event()

    def stream(self, name: str, data: bytes) -> None:
        if name == Stream.CONSOLE:
            self.console += data
            del self.console[:-_TAIL_BYTES]

    def exited(self, reason: ExitReason, detail: str) -> None:
        self.exited_at = time.monotonic()
        self.exit = (str(reason), detail)
        self.done.set()


class BareVmResult:
    def __init__(
        self, lifetime_s: float, exit_reason: str, exit_detail: str, console_tail: str
    ) -> None:
        self.lifetime_s = lifetime_s
        self.exit_reason = exit_reason
        self.exit_detail = exit_detail
        self.console_tail = console_tail

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def run_bare_vm(config: VmConfig) -> BareVmResult:
    """Boot ``config`` and wait for the VM to exit; the lifetime ends when the engine
    reports the exit (the QEMU process has been reaped and its streams drained)."""
    from ..service import make_engine

    hooks = _Hooks()
    engine = make_engine(config, hooks)
    t0 = time.monotonic()
    try:
        engine.start()
        if not hooks.done.wait(config.timeout_s + 10.0):
            engine.stop(ExitReason.TIMEOUT)
            hooks.done.wait(10.0)
    finally:
        engine.close()
    reason, detail = hooks.exit or ("error", "the engine never reported an exit")
    end = hooks.exited_at or time.monotonic()
    return BareVmResult(end - t0, reason, detail, hooks.console.decode(errors="replace"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bare_vm", description=__doc__)
    ap.add_argument("--engine", choices=("qemu", "kvm"), default="qemu")
    ap.add_argument("--accel", choices=("tcg", "kvm"), default="tcg", help="QEMU engine only")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--vmlinux", default="", help="KVM engine: the decompressed ELF to boot")
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--cmdline", required=True)
    ap.add_argument("--topology", default="1,1,2,1")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--run-id", default="bare")
    args = ap.parse_args(argv)
    try:
        topo = Topology.parse(args.topology)
    except TopologyError as exc:
        print(f"bare_vm: {exc}", file=sys.stderr)
        return 2
    config = VmConfig(
        run_id=args.run_id,
        engine=args.engine,
        kernel=args.kernel,
        initrd=args.initrd,
        cmdline=args.cmdline,
        topology=topo,
        mem_mib=args.mem,
        timeout_s=args.timeout,
        vmlinux=args.vmlinux,
        qemu_accel=args.accel,
    )
    try:
        result = run_bare_vm(config)
    except EngineError as exc:
        print(f"bare_vm: {exc}", file=sys.stderr)
        return 2
    json.dump(result.as_dict(), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
