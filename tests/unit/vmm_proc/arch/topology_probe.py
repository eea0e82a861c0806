"""Boot the cached kernel with the KVM engine for each topology given; print what Linux sees.

Run inside the testbed by test_topology_in_testbed.py (it needs hardware-like KVM):
``python tests/unit/vmm_proc/arch/topology_probe.py KERNEL_DIR 1,2,3,2 2,1,1,2``.
Prints one JSON object per topology: ``{"spec": ..., "exit": ..., "cpus": {cpu: {...}}}``
with the sibling lists of sysfs (thread, LLC, die, package) and the NUMA node.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from schedlab_shared.topology import Topology  # noqa: E402
from schedlab_shared.vm_config import VmConfig  # noqa: E402
from tests.unit.vmm_proc.boot.test_boot_in_qemu import _cpio  # noqa: E402
from vmm_proc.engines.kvm.engine import KvmEngine  # noqa: E402

INIT = r"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
cd /sys/devices/system/cpu
for c in cpu[0-9]*; do
  L=$($B ls -d $c/cache/index* | $B tail -1)
  echo "TOPO $c $($B cat $c/topology/thread_siblings_list) $($B cat $L/shared_cpu_list) \
$($B cat $c/topology/die_cpus_list) $($B cat $c/topology/package_cpus_list) \
$($B basename $($B ls -d $c/node*))"
done
$B poweroff -f
"""


class _Hooks:
    def __init__(self) -> None:
        self.console, self.exits, self.done = b"", [], threading.Event()

    def stream(self, name: str, data: bytes) -> None:
        if name == "console":
            self.console += data

    def exited(self, reason: object, detail: str) -> None:
        self.exits.append(f"{reason}: {detail}")
        self.done.set()


def _initrd(path: Path) -> None:
    d, f = 0o040755, 0o100755
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    path.write_bytes(
        _cpio(
            [
                ("bin", d, b"", 0, 0),
                ("proc", d, b"", 0, 0),
                ("sys", d, b"", 0, 0),
                ("dev", d, b"", 0, 0),
                ("dev/console", 0o020600, b"", 5, 1),
                ("bin/busybox", f, busybox, 0, 0),
                ("init", f, INIT.encode(), 0, 0),
            ]
        )
    )


def probe(kernel_dir: Path, spec: str, initrd: Path) -> dict:
    hooks = _Hooks()
    cfg = VmConfig(
        run_id=f"h3topo{uuid.uuid4().hex[:8]}",
        engine="kvm",
        kernel=str(kernel_dir / "vmlinuz"),
        initrd=str(initrd),
        cmdline="console=ttyS0 quiet loglevel=1 nokaslr panic=-1",
        vmlinux=str(kernel_dir / "vmlinux"),
        topology=Topology.parse(spec),
        mem_mib=512,
        timeout_s=600,
    )
    engine = KvmEngine(cfg, hooks)
    try:
        engine.start()
        hooks.done.wait(620)
    finally:
        engine.close()
    cpus = {}
    for line in hooks.console.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 7 and parts[0] == "TOPO":
            thread, llc, die, pkg, node = parts[2:]
            cpus[parts[1]] = {"thread": thread, "llc": llc, "die": die, "pkg": pkg, "node": node}
    return {"spec": spec, "exit": hooks.exits, "cpus": cpus}


def main() -> None:
    kernel_dir = Path(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="schedlab-h3-topo-") as tmp:  # L1's private /tmp
        initrd = Path(tmp, "initrd.cpio")
        _initrd(initrd)
        for spec in sys.argv[2:]:
            print(json.dumps(probe(kernel_dir, spec, initrd)), flush=True)


if __name__ == "__main__":
    main()
