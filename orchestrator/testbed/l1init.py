"""The L1 initramfs: busybox-static, the init script below, and the L1 kernel's modules.

The init loads the modules (kvm_amd gives L1 a hardware-semantics /dev/kvm), mounts the host
root read-only at ``/host`` and the writable shares listed in the job directory over their
own paths inside it, then chroots and runs the job's ``cmd.sh`` with stdout/stderr on their
virtio ports. The result goes on the status port (see :mod:`orchestrator.testbed.protocol`);
whatever happens, the init powers L1 off.

>>> path = ensure_initramfs(ensure_l1_kernel())
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from orchestrator.initramfs.cpio import CpioArchive
from orchestrator.testbed.l1kernel import L1Kernel, testbed_dir
from orchestrator.testbed.protocol import JOB_TAG, PORT_STATUS, PORT_STDERR, PORT_STDOUT, ROOT_TAG

__all__ = ("BUSYBOX", "CHROOT_SCRIPT", "build_initramfs", "ensure_initramfs", "init_script")

#: busybox-static's binary (Debian package busybox-static).
BUSYBOX = Path("/bin/busybox")
#: Where the init copies the job's cmd.sh inside the chroot (on its private /tmp tmpfs).
CHROOT_SCRIPT = "/tmp/.schedlab-testbed-cmd.sh"
#: Initramfs images of other versions unused for this long are deleted.
_STALE_S = 24 * 3600.0
_9P = "trans=virtio,version=9p2000.L,msize=512000,cache=loose"

_INIT = r"""#!/bin/sh
# schedlab testbed L1 init: report on the status port, always power off.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts

port() {
    for d in /sys/class/virtio-ports/*; do
        [ "$(cat "$d/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }
    done
    return 1
}
halt_l1() { sync; umount -a -r 2>/dev/null; poweroff -f; sleep 10; }
i=0
until STATUS=$(port @PORT_STATUS@); do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "testbed: no status port" >/dev/console; halt_l1; }
    sleep 0.1
done
status() { echo "$*" >"$STATUS"; }
fail() { status "l1-error $*"; halt_l1; }
OUT=$(port @PORT_STDOUT@) || fail "no stdout port"
ERR=$(port @PORT_STDERR@) || fail "no stderr port"

status "phase modules"
for m in /lib/modules/*.ko; do
    insmod "$m" || fail "insmod ${m##*/} failed"
done
[ -c /dev/kvm ] || fail "kvm_amd loaded but L1 has no /dev/kvm (SVM missing?)"
[ "$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null)" = Y ] ||
    fail "kvm_amd has no nested paging (QEMU lacks -cpu ...,+npt?)"

status "phase mounts"
mount -t 9p -o @OPTS@,ro @ROOT_TAG@ /host || fail "cannot mount the host root (9p)"
mount -t 9p -o @OPTS@,ro @JOB_TAG@ /job || fail "cannot mount the job directory (9p)"
TAB=$(printf '\t')
while IFS="$TAB" read -r tag path; do
    [ -n "$tag" ] || continue
    mount -t 9p -o @OPTS@,rw "$tag" "/host$path" || fail "cannot mount share $tag at $path"
done </job/mounts
for d in proc sys dev; do
    mount --bind "/$d" "/host/$d" || fail "cannot bind /$d into the chroot"
done
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "cannot mount tmpfs on /tmp"
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm || fail "cannot mount tmpfs on /dev/shm"
cp /job/cmd.sh /host@CHROOT_SCRIPT@ || fail "cannot copy the job script"

# Wait (bounded) for the CRNG: its static-key flip must not race with CMD (see run.py).
i=0
until dmesg | grep -q "crng init done"; do
    i=$((i + 1)); [ $i -gt 50 ] && break
    sleep 0.1
done
status "phase ready $(cut -d' ' -f1 /proc/uptime)"
env -i chroot /host /bin/sh @CHROOT_SCRIPT@ </dev/null >"$OUT" 2>"$ERR"
rc=$?
sync
status "exit $rc"
halt_l1
"""


def init_script() -> str:
    """The L1 ``/init`` (a busybox sh script) with port names and mount options filled in."""
    text = _INIT
    for key, value in {
        "@PORT_STATUS@": PORT_STATUS, "@PORT_STDOUT@": PORT_STDOUT, "@PORT_STDERR@": PORT_STDERR,
        "@ROOT_TAG@": ROOT_TAG, "@JOB_TAG@": JOB_TAG, "@OPTS@": _9P, "@CHROOT_SCRIPT@": CHROOT_SCRIPT,
    }.items():  # fmt: skip
        text = text.replace(key, value)
    return text


def build_initramfs(kernel: L1Kernel, busybox: Path = BUSYBOX) -> bytes:
    """The uncompressed newc initramfs for L1.

    Modules are stored as ``/lib/modules/NN-name.ko`` so a shell glob loads them in order.
    """
    a = CpioArchive()
    for d in ("bin", "dev", "proc", "sys", "tmp", "host", "job", "lib", "lib/modules"):
        a.add_dir(d)
    a.add_file("bin/busybox", busybox.read_bytes(), mode=0o755)
    a.add_symlink("bin/sh", "busybox")
    a.add_file("init", init_script().encode(), mode=0o755)
    for i, ko in enumerate(kernel.modules):
        a.add_file(f"lib/modules/{i:02d}-{ko.name}", ko.read_bytes())
    return a.to_bytes()


def ensure_initramfs(kernel: L1Kernel, busybox: Path = BUSYBOX) -> Path:
    """Build (or reuse) the initramfs for ``kernel``, cached under :func:`testbed_dir` by content hash.

    :raises FileNotFoundError: busybox-static is not installed.
    """
    if not busybox.is_file():
        raise FileNotFoundError(f"{busybox} not found: install the Debian package busybox-static")
    data = build_initramfs(kernel, busybox)
    path = testbed_dir() / f"initramfs-{hashlib.sha256(data).hexdigest()[:16]}.cpio"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    os.utime(path)  # marks it in use for the pruning below
    for old in path.parent.glob("initramfs-*.cpio"):
        if old != path and time.time() - old.stat().st_mtime > _STALE_S:
            old.unlink(missing_ok=True)
    return path
