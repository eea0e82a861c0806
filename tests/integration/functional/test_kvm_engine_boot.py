"""Tier 4: the KVM engine boots the real kernel to the Python init and gets its verdict.

Needs hardware-like KVM (elsewhere tests/conftest.py routes it into the testbed), the
cached default kernel and the initramfs builder.
"""

import hashlib
import io
import os
import threading
import time
import uuid

import pytest

from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from tests.framework.prereq import require
from vmm_proc.engines.kvm import KvmEngine

pytestmark = [pytest.mark.kvm, pytest.mark.slow, pytest.mark.in_testbed]


class Hooks:
    def __init__(self):
        self.streams, self.exits, self.done = {}, [], threading.Event()
        self.lock = threading.Lock()

    def stream(self, name, data):
        with self.lock:
            self.streams[name] = self.streams.get(name, b"") + data

    def exited(self, reason, detail):
        self.exits.append((reason, detail))
        self.done.set()


@pytest.fixture(scope="module")
def guest_inputs():
    from orchestrator.initramfs.builder import build_initramfs
    from orchestrator.kernel.artifacts import KernelError
    from orchestrator.kernel.resolve import resolve_kernel
    from vmm_proc.probe import probe

    result = probe()
    require(result.kind == "hardware", f"needs hardware-like /dev/kvm: {result.reason}")
    try:
        kernel = resolve_kernel(None, fetch_if_missing=False)
    except KernelError as exc:
        require(False, f"no cached kernel: {exc}")
    return kernel, build_initramfs(kernel, modules=["virtio_mmio"])


def _send_inputs(eng, hooks, doc, payload, deadline_s=600):
    """After SYS_RDY, the run document and one file through the engine's bulk port."""
    from guest import transfer
    from guest.wire import FrameDecoder, FrameType

    end = time.monotonic() + deadline_s
    while not hooks.done.is_set() and time.monotonic() < end:
        with hooks.lock:
            bulk = hooks.streams.get("bulk", b"")
        if any(f.type is FrameType.SYS_RDY for f in FrameDecoder().feed(bulk)):
            break
        time.sleep(0.1)
    for frame in transfer.frames(doc, lambda i: io.BytesIO(payload)):
        view = memoryview(frame)
        while view and not hooks.done.is_set():
            view = view[eng.send_bulk(bytes(view), 0.5) :]  # bounded by the device's rx_limit


@pytest.mark.parametrize("image", ["vmlinux", "bzimage"])
def test_real_kernel_reaches_init_and_reports_its_exit(guest_inputs, image):
    from guest import rundoc
    from guest.spec import RunSpec
    from guest.wire import FrameDecoder, FrameType

    kernel, initrd = guest_inputs
    cfg = VmConfig(
        run_id=f"t{uuid.uuid4().hex[:10]}", engine="kvm", kernel=str(kernel.vmlinuz),
        vmlinux=str(kernel.vmlinux) if image == "vmlinux" else "", initrd=str(initrd),
        cmdline="console=ttyS0 panic=-1 quiet",
        topology=Topology(1, 1, 2, 1), mem_mib=512, timeout_s=600,
    )  # fmt: skip
    payload = os.urandom(2 << 20)  # through our device model's receive queue, 4 KiB at a time
    entry = rundoc.FileEntry(
        "payload", "blob", 0o644, len(payload), hashlib.sha256(payload).hexdigest()
    )
    doc = rundoc.build(RunSpec("cgroup-spinners", duration=1.0), files=[entry])
    hooks = Hooks()
    eng = KvmEngine(cfg, hooks)
    try:
        eng.start()
        _send_inputs(eng, hooks, doc, payload)
        assert hooks.done.wait(660)
    finally:
        eng.close()
    reason, detail = hooks.exits[0]
    console = hooks.streams.get("console", b"").decode("utf-8", "replace")
    assert reason is ExitReason.GUEST_EXIT, (detail, console[-3000:])
    dec = FrameDecoder()
    frames = {f.type: f.payload for f in dec.feed(hooks.streams.get("bulk", b"")) + dec.finish()}
    assert frames[FrameType.SYS_RDY]["cpus"] == 2  # the AP came up through INIT/SIPI
    assert FrameType.RESULT in frames
    ack = frames[FrameType.INPUTS_ACK]
    assert ack["ok"] and ack["files"][0]["sha256"] == entry.sha256, ack
    assert frames[FrameType.EXIT]["code"] in (0, 1), frames  # 1: the workload's own verdict
